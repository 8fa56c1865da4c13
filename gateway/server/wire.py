"""Serialising response heads and bodies for HTTP/1.1 clients; the server owns framing, filters never do."""

from __future__ import annotations

from http import HTTPStatus

from gateway.headers import Headers

_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_STATUS_LINES: dict[int, bytes] = {code: f"HTTP/1.1 {code} {phrase}\r\n".encode() for code, phrase in _PHRASES.items()}
#: Framing and connection-management fields: computed by the server, never copied from a Response.
FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"


def status_line(status: int, reason: str = "") -> bytes:
    """The status line; an upstream's own reason phrase is kept when it is printable ASCII."""
    if reason and reason != _PHRASES.get(status) and reason.isascii() and reason.isprintable():
        return f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")
    line = _STATUS_LINES.get(status)
    if line is None:
        line = f"HTTP/1.1 {status} {_PHRASES.get(status, 'Unknown')}\r\n".encode()
    return line


def build_head(status: int, reason: str, headers: Headers, framing: str, connection: str | None) -> bytes:
    """Status line, the response's fields minus framing ones, then our framing and Connection fields."""
    lines = [f"{name}: {value}\r\n" for lower, name, value in headers.raw() if lower not in FRAMING]
    lines.append(framing)
    if connection:
        lines.append(f"Connection: {connection}\r\n")
    lines.append("\r\n")
    return status_line(status, reason) + "".join(lines).encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk in chunked transfer coding."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def declared_length(headers: Headers) -> int | None:
    """The Content-Length of a response, when it carries a single valid one."""
    values = headers.get_all("content-length")
    if len(values) != 1 or not (values[0].strip().isascii() and values[0].strip().isdigit()):
        return None
    return int(values[0].strip())
