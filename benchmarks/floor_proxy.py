"""The Python floor: the least a reverse proxy on asyncio Protocols + httptools can do per request.

Not a gateway and not for use: no routing, no filter chain, no limits, no timeouts, no streaming (a response is
buffered until complete), one pooled upstream connection per client connection, no access log or metrics. It
answers "how much of the gateway's CPU per request is Python and the event loop at all, and how much is ours?"
— the figure DESIGN §6 calls the floor — on the machine at hand:

    python -m benchmarks.floor_proxy --listen 127.0.0.1:18600 --upstream 127.0.0.1:8080

then load it like any target (`wrk -t1 -c64 http://127.0.0.1:18600/`) and read its CPU time from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

import httptools
import uvloop


class Upstream(asyncio.Protocol):
    """One keep-alive connection to the upstream; hands each complete response to its client connection."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.parts: list[bytes] = []
        self.status = 200
        self.headers: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.client.upstream_ready(self)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in (b"connection", b"keep-alive", b"content-length", b"transfer-encoding"):
            self.headers.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, data: bytes) -> None:
        self.parts.append(data)

    def on_message_complete(self) -> None:
        body = b"".join(self.parts)
        head = b"HTTP/1.1 %d OK\r\n%bContent-Length: %d\r\n\r\n" % (self.status, b"".join(self.headers), len(body))
        self.parts, self.headers = [], []
        self.client.respond(head + body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class Client(asyncio.Protocol):
    """One client connection: parse a request, send it upstream, write the answer back."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.address = upstream
        self.authority = f"{upstream[0]}:{upstream[1]}".encode()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.upstream: Upstream | None = None
        self.pending: bytes | None = None
        self.url = b""
        self.headers: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        loop = asyncio.get_running_loop()
        loop.create_task(loop.create_connection(lambda: Upstream(self), *self.address))

    def upstream_ready(self, upstream: Upstream) -> None:
        self.upstream = upstream
        if self.pending is not None:
            self._send(self.pending)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in (b"host", b"connection"):
            self.headers.append(b"%s: %s\r\n" % (name, value))

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\n%b\r\n" % (method, self.url, self.authority, b"".join(self.headers))
        self.url, self.headers = b"", []
        if self.upstream is None or self.upstream.transport is None:
            self.pending = head
        else:
            self._send(head)

    def _send(self, head: bytes) -> None:
        assert self.upstream is not None and self.upstream.transport is not None
        self.pending = None
        self.upstream.transport.write(head)

    def respond(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


async def serve(listen: tuple[str, int], upstream: tuple[str, int]) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(upstream), *listen, backlog=4096)
    async with server:
        await server.serve_forever()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", type=_address, required=True)
    parser.add_argument("--upstream", type=_address, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.listen, args.upstream))


if __name__ == "__main__":
    main()
