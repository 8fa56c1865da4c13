"""httpbin (Flask/Werkzeug) under gunicorn's threaded worker, through the gateway: streams, drips, status codes."""

from __future__ import annotations

import json

import pytest

from tests.conformance import servers
from tests.conformance.client import Conn, fetch, read_head, request
from tests.conformance.compare import HOST, assert_transparent
from tests.conformance.conftest import gateway_to
from tests.conftest import GatewayUnderTest, StartGateway


@pytest.fixture
async def gw(httpbin: servers.Service, start_gateway: StartGateway) -> GatewayUnderTest:
    return await gateway_to(start_gateway, httpbin.port)


async def fetch_both(httpbin: servers.Service, gw: GatewayUnderTest, target: str) -> tuple[bytes, bytes]:
    """Direct, then through the gateway, compared by `assert_transparent`; never both at once: httpbin's seeded
    generators share Python's global `random`, so two requests in flight would interleave their bytes."""
    direct = await fetch(httpbin.port, "GET", target, httpbin.authority)
    proxied = await fetch(gw.port, "GET", target, HOST)
    assert_transparent(direct, proxied)
    return direct.body, proxied.body


async def test_stream_of_json_lines(gw: GatewayUnderTest) -> None:
    async with Conn(gw.port) as conn:
        await conn.send(request("GET", "/stream/7", HOST))
        reply = await conn.reply()
    assert reply.status == 200 and reply.head.chunked
    lines = reply.body.decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == list(range(7))


@pytest.mark.parametrize("chunk_size", [1, 7, 1000, 102400])
async def test_stream_bytes_in_any_chunk_size(chunk_size: int, httpbin: servers.Service, gw: GatewayUnderTest) -> None:
    direct, proxied = await fetch_both(httpbin, gw, f"/stream-bytes/20000?chunk_size={chunk_size}&seed=11")
    assert len(direct) == len(proxied) == 20000


async def test_drip_arrives_whole(gw: GatewayUnderTest) -> None:
    async with Conn(gw.port) as conn:
        await conn.send(request("GET", "/drip?duration=2&numbytes=10&delay=0", HOST))
        head = await read_head(conn.reader)
        assert head.status == 200 and head.length == 10  # the head went out before the slow body
        body = b""
        while len(body) < 10:  # read as the bytes drip in: each one is delivered on its own
            data = await conn.reader.read(10 - len(body))
            assert data, f"the connection ended after {body!r}"
            body += data
    assert body == b"*" * 10


@pytest.mark.parametrize("code", [200, 201, 202, 404, 418, 500, 503])
async def test_status_codes_and_reason_phrases(code: int, httpbin: servers.Service, gw: GatewayUnderTest) -> None:
    await fetch_both(httpbin, gw, f"/status/{code}")


async def test_repeated_empty_and_spaced_header_values_pass_as_sent(
    httpbin: servers.Service, gw: GatewayUnderTest
) -> None:
    target = "/response-headers?Set-Cookie=a%3D1&Set-Cookie=b%3D2&X-Empty=&X-Spaces=a%20%20b"
    await fetch_both(httpbin, gw, target)
    reply = await fetch(gw.port, "GET", target, HOST)
    assert reply.head.get_all("set-cookie") == ["a=1", "b=2"]
    assert reply.head.get_all("x-empty") == [""]
    assert reply.head.get_all("x-spaces") == ["a  b"]
