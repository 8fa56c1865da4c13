"""A strict raw HTTP/1.1 client for the conformance tests: heads exactly as sent, bodies by their framing.

aiohttp's client would hide what these tests are about (it re-frames, merges and decodes), so the tests speak
HTTP over a plain asyncio stream. The reader is strict about what it accepts from the gateway (no obs-fold, no
control characters, a valid chunked coding) and reports a body that ends before its framing says it is complete
as `Truncated`: an aborted response, which is what the gateway owes a client when its upstream failed mid-body.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

GUARD = 20.0  # seconds: only a guard against a hang, never a measurement
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(;[^\r\n]*)?")
#: Fields that belong to one hop: the gateway owes the client its own, not the upstream's (docs/routes.md).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)


class Truncated(Exception):
    """The connection ended (EOF or reset) before the body was complete by its own framing."""

    def __init__(self, received: int, detail: str) -> None:
        super().__init__(f"{detail} after {received} body bytes")
        self.received = received


@dataclass
class Head:
    """A response head: status line and fields exactly as sent (names keep their case, values are latin-1)."""

    version: str
    status: int
    reason: str
    fields: list[tuple[str, str]]
    raw: bytes

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [value for n, value in self.fields if n.lower() == key]

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None

    @property
    def chunked(self) -> bool:
        codings = ",".join(self.get_all("transfer-encoding")).lower().split(",")
        return codings[-1].strip() == "chunked"

    @property
    def length(self) -> int | None:
        values = self.get_all("content-length")
        assert len(values) <= 1, f"several Content-Length fields: {values}"
        return int(values[0]) if values else None

    def end_to_end(self, *ignore: str) -> list[tuple[str, str]]:
        """The fields a proxy must pass on as they are: without hop-by-hop ones, framing, and `ignore`d names."""
        named = {t.strip().lower() for v in self.get_all("connection") for t in v.split(",")}
        skip = HOP_BY_HOP | named | {"content-length"} | {n.lower() for n in ignore}
        return [(n, v) for n, v in self.fields if n.lower() not in skip]


def assert_only_own_hop_fields(head: Head) -> None:
    """The hop-by-hop fields of a response from the gateway are its own framing and Connection, nothing passed on."""
    for name, value in head.fields:
        lower = name.lower()
        if lower == "connection":
            assert value.lower() in ("close", "keep-alive"), f"Connection field passed on: {value!r}"
        elif lower == "transfer-encoding":
            assert value == "chunked", f"Transfer-Encoding passed on: {value!r}"
        else:
            assert lower not in HOP_BY_HOP, f"hop-by-hop field passed on: {name}: {value}"


@dataclass
class Reply:
    head: Head
    body: bytes
    trailers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def status(self) -> int:
        return self.head.status


def parse_head(raw: bytes) -> Head:
    """Parse a response head (ending in CRLF CRLF) strictly; an AssertionError names what is malformed."""
    lines = raw[:-4].split(b"\r\n")
    match = re.fullmatch(rb"HTTP/(1\.[01]) ([1-9][0-9]{2}) ?([\t\x20-\x7e\x80-\xff]*)", lines[0])
    assert match is not None, f"malformed status line {lines[0]!r}"
    fields = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        assert colon and _TOKEN.fullmatch(name), f"malformed header line {line!r}"
        value = value.strip(b" \t")
        assert _FIELD_VALUE.fullmatch(value), f"control character in header line {line!r}"
        fields.append((name.decode("latin-1"), value.decode("latin-1")))
    version, status, reason = (g.decode("latin-1") for g in match.groups())
    return Head(version, int(status), reason, fields, raw)


async def read_head(reader: asyncio.StreamReader, *, informational: bool = False) -> Head:
    """The next response head; 1xx heads are skipped unless `informational`. EOF before a head: Truncated."""
    while True:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise Truncated(0, f"connection ended inside a response head {exc.partial[:200]!r}") from exc
        except ConnectionResetError as exc:
            raise Truncated(0, "connection reset before a response head") from exc
        head = parse_head(raw)
        if informational or not 100 <= head.status < 200:
            return head


def has_body(head: Head, method: str) -> bool:
    return not (method == "HEAD" or 100 <= head.status < 200 or head.status in (204, 304))


async def iter_body(reader: asyncio.StreamReader, head: Head, method: str = "GET") -> AsyncIterator[bytes]:
    """The body's bytes as they arrive, by the head's framing; Truncated if the connection ends early."""
    if not has_body(head, method):
        return
    received = 0
    try:
        if head.chunked:
            async for data in _chunks(reader):
                received += len(data)
                yield data
        elif head.length is not None:
            while received < head.length:
                data = await reader.read(min(1 << 16, head.length - received))
                if not data:
                    raise Truncated(received, f"EOF before Content-Length {head.length}")
                received += len(data)
                yield data
        else:
            while data := await reader.read(1 << 16):
                received += len(data)
                yield data
    except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
        raise Truncated(received, f"connection ended inside the body ({exc!r})") from exc


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        line = await reader.readuntil(b"\r\n")
        size = _CHUNK_SIZE.fullmatch(line[:-2])
        assert size is not None, f"malformed chunk-size line {line!r}"
        left = int(size.group(1), 16)
        if left == 0:
            trailer = await reader.readuntil(b"\r\n")
            assert trailer == b"\r\n", f"the gateway sent trailer fields {trailer!r}"
            return
        while left:
            data = await reader.read(min(1 << 16, left))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(data)
            yield data
        crlf = await reader.readexactly(2)
        assert crlf == b"\r\n", f"chunk data not followed by CRLF: {crlf!r}"


async def read_body(reader: asyncio.StreamReader, head: Head, method: str = "GET") -> bytes:
    return b"".join([data async for data in iter_body(reader, head, method)])


async def read_reply(reader: asyncio.StreamReader, method: str = "GET") -> Reply:
    """One whole response (1xx skipped), within the guard."""
    async with asyncio.timeout(GUARD):
        head = await read_head(reader)
        return Reply(head, await read_body(reader, head, method))


async def closed_after(reader: asyncio.StreamReader) -> bytes:
    """Whatever the server still sends before closing (expected: nothing); fails if it never closes."""
    async with asyncio.timeout(GUARD):
        try:
            return await reader.read()
        except ConnectionResetError:
            return b""


def request(
    method: str,
    target: str,
    host: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
) -> bytes:
    """One request as bytes: Content-Length framing when there is a body, nothing added otherwise."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", *(f"{n}: {v}" for n, v in headers)]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


class Conn:
    """One client connection, closed on exit."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def __aenter__(self) -> Conn:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, method: str = "GET") -> Reply:
        return await read_reply(self.reader, method)


async def fetch(port: int, method: str, target: str, host: str, headers: Iterable[tuple[str, str]] = ()) -> Reply:
    """One request on a fresh connection, and its whole response."""
    async with Conn(port) as conn:
        await conn.send(request(method, target, host, headers))
        return await conn.reply(method)


@dataclass
class Digest:
    head: Head
    size: int
    sha256: str


async def read_digest(reader: asyncio.StreamReader, method: str = "GET") -> Digest:
    """One response whose body is hashed as it streams in, never held in memory."""
    async with asyncio.timeout(GUARD * 6):  # tens of MiB through two hops on a busy 2-core machine
        head = await read_head(reader)
        hasher, size = hashlib.sha256(), 0
        async for data in iter_body(reader, head, method):
            hasher.update(data)
            size += len(data)
        return Digest(head, size, hasher.hexdigest())
