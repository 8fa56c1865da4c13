"""Reading requests back with llhttp (httptools), the parser most Python upstreams (aiohttp, uvicorn) use."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ParsedRequest:
    """httptools callbacks: the target, every field in order, the body, and whether the message completed."""

    url: bytes = b""
    fields: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    head_done: bool = False
    complete: bool = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True
