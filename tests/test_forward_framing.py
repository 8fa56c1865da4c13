"""Forwarding core, framing: both directions streamed, each upstream framing passed on honestly or refused.

Real aiohttp upstreams on 127.0.0.1, and raw asyncio upstreams where the framing must be exotic or broken.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.demo import demo_app
from tests.conftest import StartGateway, StartRaw, StartUpstream
from tests.helpers import api_route, app_serving, reply_with

GUARD = 10.0  # seconds: only a guard against a hang, never a measurement


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n == name), None)


async def read_response(reader: asyncio.StreamReader, *, no_body: bool = False) -> RawResponse:
    """Read one response off a client connection (1xx skipped), honouring its framing exactly."""
    while True:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = [(n.strip().lower(), v.strip()) for n, _, v in (x.partition(":") for x in lines[1:] if x)]
        if not 100 <= status < 200:
            break
    response = RawResponse(status, headers, b"")
    if no_body or status in (204, 304):
        return response
    if response.header("transfer-encoding") == "chunked":
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            assert await reader.readexactly(2) == b"\r\n"
        assert await reader.readuntil(b"\r\n") == b"\r\n"  # no trailers
        response.body = b"".join(parts)
    elif (length := response.header("content-length")) is not None:
        response.body = await reader.readexactly(int(length))
    else:
        response.body = await reader.read()
    return response


async def get_api_x(port: int) -> RawResponse:
    """`GET /api/x` on a fresh client connection to `port`, and the one response read off it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /api/x HTTP/1.1\r\nHost: gw\r\n\r\n")
        return await asyncio.wait_for(read_response(reader), GUARD)
    finally:
        writer.close()


def port_recording_app(ports: list[int], app: web.Application | None = None) -> web.Application:
    """`app` (the demo app by default), recording the upstream-side peer port of every request."""

    @web.middleware
    async def record(request: web.Request, handler: Any) -> Any:
        assert request.transport is not None
        ports.append(int(request.transport.get_extra_info("peername")[1]))
        return await handler(request)

    app = app if app is not None else demo_app()
    app.middlewares.append(record)  # one port = one upstream connection
    return app


# -- upstream response framings -------------------------------------------------------------------------------


async def test_content_length_response(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB

    async def fixed(request: web.Request) -> web.Response:
        return web.Response(body=payload, content_type="application/octet-stream")

    up = await start_upstream(app_serving("/fixed", fixed))
    gw = await start_gateway(api_route(up.port))
    async with aiohttp.ClientSession() as session, session.get(gw.url("/api/fixed")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(payload))
        assert "Transfer-Encoding" not in resp.headers
        assert await resp.read() == payload


async def test_chunked_download_is_intact(upstream: Any, start_gateway: StartGateway) -> None:
    size = 32 * 1024 * 1024 + 123
    expected = hashlib.sha256()
    pattern = bytes(range(256)) * 256
    for offset in range(0, size, len(pattern)):
        expected.update(pattern[: min(len(pattern), size - offset)])
    gw = await start_gateway(api_route(upstream.port))
    digest, received = hashlib.sha256(), 0
    async with aiohttp.ClientSession() as session, session.get(gw.url(f"/api/bytes/{size}")) as resp:
        assert resp.status == 200
        assert resp.headers["Transfer-Encoding"] == "chunked"
        async for data in resp.content.iter_any():
            digest.update(data)
            received += len(data)
    assert received == size
    assert digest.hexdigest() == expected.hexdigest()


async def test_close_delimited_response(start_raw: StartRaw, start_gateway: StartGateway) -> None:
    body = b"no length, the end is the close\n" * 1000
    port = await start_raw(reply_with(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body))
    gw = await start_gateway(api_route(port))
    response = await get_api_x(gw.port)
    assert response.status == 200
    assert response.body == body  # re-framed for the client, and only after the upstream's EOF ended it


async def test_head_keeps_content_length_and_reuses_the_connection(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    async def doc(request: web.Request) -> web.Response:
        return web.Response(body=b"document body\n" * 100)

    ports: list[int] = []
    # The GET route answers HEAD too, with the GET's Content-Length.
    up = await start_upstream(port_recording_app(ports, app_serving("/doc", doc)))
    gw = await start_gateway(api_route(up.port))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(b"HEAD /api/doc HTTP/1.1\r\nHost: gw\r\n\r\n")
        head = await asyncio.wait_for(read_response(reader, no_body=True), GUARD)
        # If any body bytes followed the HEAD answer, this next response would not parse.
        writer.write(b"GET /api/doc HTTP/1.1\r\nHost: gw\r\n\r\n")
        get = await asyncio.wait_for(read_response(reader), GUARD)
    finally:
        writer.close()
    assert head.status == 200
    assert head.header("content-length") == get.header("content-length") == str(len(get.body))
    assert get.body == b"document body\n" * 100
    assert len(ports) == 2 and ports[0] == ports[1]  # the pooled upstream connection survived the HEAD


async def test_204_and_304_carry_no_body(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    ports: list[int] = []
    up = await start_upstream(port_recording_app(ports))
    gw = await start_gateway(api_route(up.port))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    responses = []
    try:
        for code in (204, 304, 200):
            writer.write(f"GET /api/status/{code} HTTP/1.1\r\nHost: gw\r\n\r\n".encode())
            responses.append(await asyncio.wait_for(read_response(reader), GUARD))
    finally:
        writer.close()
    assert [r.status for r in responses] == [204, 304, 200]
    for response in responses[:2]:
        assert response.header("transfer-encoding") is None
    assert responses[0].header("content-length") is None
    assert responses[2].body == b"status 200\n"  # parsed right after the empty 204/304 messages
    assert len(set(ports)) == 1


async def test_informational_then_final_response(start_raw: StartRaw, start_gateway: StartGateway) -> None:
    port = await start_raw(
        reply_with(
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: yes\r\n\r\nhello"
        )
    )
    gw = await start_gateway(api_route(port))
    response = await get_api_x(gw.port)
    assert response.status == 200
    assert response.header("x-final") == "yes"
    assert response.body == b"hello"


# -- request bodies -------------------------------------------------------------------------------------------


async def test_request_body_with_content_length(upstream: Any, start_gateway: StartGateway) -> None:
    payload = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32 + 7)
    gw = await start_gateway(api_route(upstream.port))
    async with aiohttp.ClientSession() as session, session.post(gw.url("/api/up"), data=io.BytesIO(payload)) as resp:
        assert resp.status == 200
        seen = await resp.json()
    assert seen["body_bytes"] == len(payload)
    assert seen["body_sha256"] == hashlib.sha256(payload).hexdigest()
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert headers["content-length"] == str(len(payload))


async def test_chunked_request_body(upstream: Any, start_gateway: StartGateway) -> None:
    pieces = [bytes([n % 251]) * (n * 997 % 70_000 + 1) for n in range(60)]

    async def generate() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    gw = await start_gateway(api_route(upstream.port))
    async with aiohttp.ClientSession() as session, session.post(gw.url("/api/up"), data=generate()) as resp:
        assert resp.status == 200
        seen = await resp.json()
    whole = b"".join(pieces)
    assert seen["body_bytes"] == len(whole)
    assert seen["body_sha256"] == hashlib.sha256(whole).hexdigest()
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers


async def test_request_body_streams_before_the_client_finishes(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    first_arrived = asyncio.Event()

    async def sink(request: web.Request) -> web.Response:
        first = await request.content.readany()
        first_arrived.set()
        rest = await request.read()
        return web.json_response({"first": len(first), "total": len(first) + len(rest)})

    async def generate() -> AsyncIterator[bytes]:
        yield b"a" * 1000
        await asyncio.wait_for(first_arrived.wait(), GUARD)  # only the upstream seeing it lets us go on
        yield b"b" * 5000

    up = await start_upstream(app_serving("/sink", sink, method="POST"))
    gw = await start_gateway(api_route(up.port))
    async with aiohttp.ClientSession() as session, session.post(gw.url("/api/sink"), data=generate()) as resp:
        assert resp.status == 200
        assert (await resp.json())["total"] == 6000


# -- response streaming ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/event-stream", "application/octet-stream"])
async def test_response_streams_before_the_upstream_finishes(
    content_type: str, start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    client_got_first = asyncio.Event()

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        await response.write(b"id: 1\ndata: first\n\n")
        await asyncio.wait_for(client_got_first.wait(), GUARD)
        await response.write(b"id: 2\ndata: last\n\n")
        await response.write_eof()
        return response

    up = await start_upstream(app_serving("/sse", events))
    gw = await start_gateway(api_route(up.port))
    async with aiohttp.ClientSession() as session, session.get(gw.url("/api/sse")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == content_type
        first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), GUARD)
        assert first == b"id: 1\ndata: first\n\n"
        client_got_first.set()
        assert await asyncio.wait_for(resp.content.read(), GUARD) == b"id: 2\ndata: last\n\n"


async def test_quiet_event_stream_is_exempt_from_the_body_idle_timeout(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    async def quiet(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for n in range(3):
            await asyncio.sleep(0.3)  # quiet for longer than the route's body-idle timeout
            await response.write(f"data: {n}\n\n".encode())
        await response.write_eof()
        return response

    up = await start_upstream(app_serving("/quiet", quiet))
    gw = await start_gateway(api_route(up.port, "{body-idle-timeout: 100}"))
    async with aiohttp.ClientSession() as session, session.get(gw.url("/api/quiet")) as resp:
        assert await asyncio.wait_for(resp.read(), GUARD) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


# -- keep-alive pooling ---------------------------------------------------------------------------------------


async def test_sequential_requests_reuse_one_upstream_connection(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    ports: list[int] = []
    up = await start_upstream(port_recording_app(ports))
    gw = await start_gateway(api_route(up.port))
    # A fresh client connection per request: the upstream pool must not depend on the client's keep-alive.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for n in range(25):
            async with session.get(gw.url(f"/api/n/{n}")) as resp:
                assert resp.status == 200
                await resp.read()
            async with session.post(gw.url(f"/api/p/{n}"), data=b"x" * n) as resp:
                assert resp.status == 200
                await resp.read()
    assert len(ports) == 50
    assert len(set(ports)) == 1


async def test_gzip_body_passes_compressed_and_identical(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    compressed = gzip.compress(b"squeeze me " * 50_000, mtime=0)

    async def zipped(request: web.Request) -> web.Response:
        return web.Response(body=compressed, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    up = await start_upstream(app_serving("/z", zipped))
    gw = await start_gateway(api_route(up.port))
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(gw.url("/api/z"), headers={"Accept-Encoding": "gzip"}) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Content-Length"] == str(len(compressed))
        assert await resp.read() == compressed
