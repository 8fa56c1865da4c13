"""An aiohttp upstream in the test process: large bodies both ways, slow drips, and an upstream dying mid-body."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from tests.conformance.apps import CUT_SENT, conformance_app, pattern, pattern_sha256
from tests.conformance.client import GUARD, Conn, Truncated, iter_body, read_digest, read_head, request
from tests.conformance.compare import HOST
from tests.conformance.conftest import gateway_to
from tests.conftest import GatewayUnderTest, StartGateway, StartUpstream

LARGE = 48 * 1024 * 1024 + 101  # tens of MiB, not a multiple of any buffer size


@pytest.fixture
async def gw(start_upstream: StartUpstream, start_gateway: StartGateway) -> GatewayUnderTest:
    upstream = await start_upstream(conformance_app())
    return await gateway_to(start_gateway, upstream.port)


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_large_response_is_intact(framing: str, gw: GatewayUnderTest) -> None:
    async with Conn(gw.port) as conn:
        await conn.send(request("GET", f"/large?size={LARGE}&framing={framing}", HOST))
        got = await read_digest(conn.reader)
    assert got.head.status == 200
    assert got.head.chunked == (framing == "chunked")
    assert got.head.length == (LARGE if framing == "length" else None)
    assert (got.size, got.sha256) == (LARGE, pattern_sha256(LARGE))


async def _send_pattern(conn: Conn, size: int, chunked: bool) -> None:
    """The request body from a generator, as chunks of the client's own sizes or as raw Content-Length bytes."""
    for piece in pattern(size):
        await conn.send(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
    if chunked:
        await conn.send(b"0\r\n\r\n")


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_large_upload_is_intact(framing: str, gw: GatewayUnderTest) -> None:
    chunked = framing == "chunked"
    fields = [("Transfer-Encoding", "chunked")] if chunked else [("Content-Length", str(LARGE))]
    async with Conn(gw.port) as conn:
        await conn.send(request("POST", "/digest", HOST, fields))
        # Sent while the answer is awaited: the gateway streams the body on, it does not buffer it first.
        sender = asyncio.create_task(_send_pattern(conn, LARGE, chunked))
        try:
            reply = await asyncio.wait_for(conn.reply(), GUARD * 6)
        finally:
            await asyncio.wait_for(sender, GUARD)
    assert reply.status == 200
    assert json.loads(reply.body) == {"size": LARGE, "sha256": pattern_sha256(LARGE)}


async def test_slow_drip_arrives_whole(gw: GatewayUnderTest) -> None:
    async with Conn(gw.port) as conn:
        await conn.send(request("GET", "/drip?n=10", HOST))
        reply = await conn.reply()
    assert reply.head.length == 10
    assert reply.body == b"*" * 10


async def test_each_dripped_byte_reaches_the_client_before_the_next_is_written(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    """Lockstep: the upstream writes byte n+1 only once the client has byte n; a buffering proxy would hang."""
    received: asyncio.Queue[None] = asyncio.Queue()

    async def lockstep(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 5
        await response.prepare(request)
        for index in range(5):
            await response.write(b"%d" % index)
            await asyncio.wait_for(received.get(), GUARD)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/lockstep", lockstep)
    gw = await gateway_to(start_gateway, (await start_upstream(app)).port)
    body = b""
    async with Conn(gw.port) as conn:
        await conn.send(request("GET", "/lockstep", HOST))
        async with asyncio.timeout(GUARD):
            head = await read_head(conn.reader)
            async for data in iter_body(conn.reader, head):
                body += data
                for _ in data:
                    received.put_nowait(None)
    assert body == b"01234"


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_upstream_closing_mid_body_aborts_the_response(framing: str, gw: GatewayUnderTest) -> None:
    body = b""
    async with Conn(gw.port) as conn:
        await conn.send(request("GET", f"/cut?framing={framing}", HOST))
        async with asyncio.timeout(GUARD):
            head = await read_head(conn.reader)
            with pytest.raises(Truncated):  # never a response that looks complete
                async for data in iter_body(conn.reader, head):
                    body += data
    assert head.status == 200
    assert head.chunked == (framing == "chunked")
    assert body == CUT_SENT  # what the upstream sent before it died, and nothing else


async def test_streams_keep_flowing_on_one_connection(gw: GatewayUnderTest) -> None:
    """A chunked response, a Content-Length one and an echo in a row on one client connection."""
    payload = b"echo me\n" * 512
    async with Conn(gw.port) as conn:
        await conn.send(request("GET", "/stream?n=30&size=500", HOST))
        streamed = await conn.reply()
        await conn.send(request("GET", "/large?size=70000&framing=length", HOST))
        fixed = await conn.reply()
        await conn.send(request("POST", "/echo", HOST, body=payload))
        echoed = await conn.reply()
    assert streamed.head.chunked and len(streamed.body) == 30 * 500
    assert fixed.body == b"".join(pattern(70000))
    assert echoed.body == payload
