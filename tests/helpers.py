"""Shared test helpers: requests through the gateway, routes.yaml builders, config errors, upstreams, raw sockets.

Fixtures live in conftest.py; everything here is a plain function or class that test modules import.
conftest.py registers this module for pytest's assertion rewriting, so its asserts report like a test's own.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler, LooseHeaders
from multidict import CIMultiDictProxy
from yarl import URL

from gateway.app import Gateway
from gateway.errors import ConfigError
from tests.conftest import GatewayUnderTest, RawHandler, Upstream, status_of

SOCKET_GUARD = 5.0  # seconds: only a guard against a hang on a raw socket, never a measured threshold

# -- requests through the gateway (aiohttp client) ---------------------------------------------------------------


def echoed_header(echo: dict[str, Any], name: str) -> list[str]:
    """Every value of header `name` (any case) in the demo upstream's echo of a request, in order."""
    return [str(v) for k, v in echo["headers"] if str(k).lower() == name.lower()]


@dataclass
class Reply:
    """A response as the aiohttp client received it, read to the end."""

    status: int
    reason: str | None
    headers: CIMultiDictProxy[str]
    raw_headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def seen(self) -> dict[str, Any]:
        """What the demo upstream echoed."""
        return cast(dict[str, Any], json.loads(self.body))

    def upstream_got(self, name: str) -> list[str]:
        """Every value of header `name` as the upstream received it (bytes read as latin-1), in order."""
        return echoed_header(self.seen(), name)

    def values(self, name: str) -> list[bytes]:
        """Every value of response header `name` as bytes on the wire, in order."""
        return [v for k, v in self.raw_headers if k.lower() == name.lower().encode()]


async def fetch(
    gw: GatewayUnderTest,
    path: str,
    *,
    method: str = "GET",
    headers: LooseHeaders = (),
    data: bytes | None = None,
    guard: float = 15,
) -> Reply:
    """Send one request to the gateway, `path` exactly as written (already percent-encoded), and read the reply.

    `guard` is the client's total timeout: only a guard against a hang, never a measurement.
    """
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=guard)) as session,
        session.request(method, URL(gw.url(path), encoded=True), headers=headers, data=data) as resp,
    ):
        return Reply(resp.status, resp.reason, resp.headers, resp.raw_headers, await resp.read())


# -- routes.yaml builders ------------------------------------------------------------------------------------------


def route(upstream: Upstream, predicates: str, filters: str = "[]", *, rid: str = "r", order: int = 0) -> str:
    """One item of a `routes:` list (append it to "routes:"), forwarding to `upstream`."""
    return f"""
  - id: {rid}
    uri: {upstream.url}
    order: {order}
    predicates: {predicates}
    filters: {filters}
"""


def one_route(uri: str, filters: str, predicates: str = '["Path=/**"]', *, rid: str = "r") -> str:
    """A whole routes.yaml with the one route `rid` to `uri` (an upstream URL or `no://op`)."""
    return f"""
routes:
  - id: {rid}
    uri: {uri}
    predicates: {predicates}
    filters: {filters}
"""


def api_route(upstream: int | str, metadata: str = "{}", *, rid: str = "r") -> str:
    """A whole routes.yaml forwarding /api/** (with /api stripped) to `upstream`.

    `upstream` is a port on 127.0.0.1 spoken to over plain HTTP, or a whole URI (https://..., ws://...).
    """
    uri = f"http://127.0.0.1:{upstream}" if isinstance(upstream, int) else upstream
    return f"""
routes:
  - id: {rid}
    uri: {uri}
    predicates: [Path=/api/**]
    filters: [StripPrefix=1]
    metadata: {metadata}
"""


def catch_all(upstream: Upstream) -> str:
    """A whole routes.yaml sending every path to `upstream`, with no filters."""
    return f"""
routes:
  - id: all
    uri: {upstream.url}
    predicates: [Path=/**]
"""


def config_only_route(*, predicates: str | None = None, filters: str | None = None) -> str:
    """A whole routes.yaml with one route to a port nothing listens on: for tests that only load the config."""
    text = "routes:\n  - id: r\n    uri: http://127.0.0.1:9\n"
    if predicates is not None:
        text += f"    predicates: {predicates}\n"
    if filters is not None:
        text += f"    filters: {filters}\n"
    return text


def config_issues(text: str) -> list[tuple[str, str]]:
    """Compile routes YAML in a fresh gateway; return (path, message) of every issue (fails if accepted)."""
    with pytest.raises(ConfigError) as info:
        Gateway().load_text(text, "routes.yaml")
    return [(issue.path, issue.message) for issue in info.value.issues]


# -- upstreams -----------------------------------------------------------------------------------------------------


def app_serving(path: str, handler: Handler, *, method: str = "GET") -> web.Application:
    """An aiohttp app with the one route `method path` (a GET route answers HEAD too, as aiohttp's add_get does)."""
    app = web.Application()
    if method == "GET":
        app.router.add_get(path, handler)
    else:
        app.router.add_route(method, path, handler)
    return app


def reply_with(payload: bytes, *, close: bool = True) -> RawHandler:
    """A raw upstream handler: read one request head, write `payload`, then close (or hold the connection open)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(payload)
        await writer.drain()
        if not close:
            await reader.read()  # hold until the gateway closes its side

    return handler


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- raw sockets ---------------------------------------------------------------------------------------------------


@dataclass
class RawReply:
    data: bytes
    closed: bool  # the server closed the connection (EOF seen before the guard expired)


async def read_until_closed(reader: asyncio.StreamReader, guard: float = SOCKET_GUARD) -> tuple[bytes, bool]:
    """Everything until EOF, and whether EOF (or a reset) came before the guard expired."""
    chunks: list[bytes] = []
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), guard):
            chunks.append(chunk)
    except TimeoutError:
        return b"".join(chunks), False
    except ConnectionResetError:
        pass
    return b"".join(chunks), True


async def converse(port: int, data: bytes, guard: float = SOCKET_GUARD) -> RawReply:
    """Write `data` in one go and read until the server closes (or the guard expires)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return RawReply(*await read_until_closed(reader, guard))
    finally:
        writer.close()


@dataclass
class ParsedResponse:
    status: int
    headers: list[tuple[str, str]]  # (lower-cased name, value)
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for lower, value in self.headers if lower == name), None)


def parse_responses(raw: bytes) -> list[ParsedResponse]:
    """Split a byte stream into HTTP/1.1 responses (Content-Length, chunked or body-less); no HEAD support."""
    out: list[ParsedResponse] = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = [(n.strip().lower(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])]
        fields = dict(headers)
        if status < 200 or status in (204, 304):
            body, raw = b"", rest
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            body, raw = dechunk(rest)
        elif "content-length" in fields:
            size = int(fields["content-length"])
            body, raw = rest[:size], rest[size:]
        else:
            body, raw = rest, b""
        out.append(ParsedResponse(status, headers, body))
    return out


def dechunk(data: bytes) -> tuple[bytes, bytes]:
    """Decode a chunked body at the start of `data`; return (the body, the bytes after it)."""
    body = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            _, _, data = data.partition(b"\r\n")  # no trailers from our upstreams
            return body, data
        body, data = body + data[:size], data[size + 2 :]


def echoed(raw: bytes) -> dict[str, Any]:
    """The demo echo upstream's JSON, from the first response in `raw`."""
    data: dict[str, Any] = json.loads(parse_responses(raw)[0].body)
    return data


def header_names(echo: dict[str, Any]) -> list[str]:
    """The lower-cased names of the headers the demo upstream echoed, in order."""
    return [str(name).lower() for name, _ in echo["headers"]]


def upstream_paths(upstream: Upstream) -> list[str]:
    """The raw path of every request that reached `upstream`, in order."""
    return [hit.raw_path for hit in upstream.hits]


async def barrier(port: int, path: str = "/barrier") -> None:
    """A valid round trip through the gateway and upstream: anything sent earlier has had its turn by now."""
    reply = await converse(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert status_of(reply.data) == 200
