"""nginx as the upstream: sendfile'd static files of tens of MiB, byte ranges, gzip on the fly (chunked)."""

from __future__ import annotations

import pytest

from tests.conformance.client import Conn, fetch, read_digest, request
from tests.conformance.compare import HOST, assert_transparent
from tests.conformance.conftest import NginxUpstream, gateway_to
from tests.conformance.servers import LARGE_FILE_BYTES
from tests.conftest import GatewayUnderTest, StartGateway


@pytest.fixture
async def gw(nginx: NginxUpstream, start_gateway: StartGateway) -> GatewayUnderTest:
    return await gateway_to(start_gateway, nginx.service.port)


async def test_large_static_file_arrives_intact(nginx: NginxUpstream, gw: GatewayUnderTest) -> None:
    async with Conn(gw.port) as conn:
        await conn.send(request("GET", "/static/large.bin", HOST))
        got = await read_digest(conn.reader)
        # The connection is still in step after tens of MiB: a second request on it is answered normally.
        await conn.send(request("GET", "/ok", HOST))
        after = await conn.reply()
    assert got.head.status == 200
    assert got.head.length == LARGE_FILE_BYTES == got.size
    assert got.sha256 == nginx.large_sha256
    assert after.body == b"ok\n"


async def test_head_of_a_large_file_sends_no_body(nginx: NginxUpstream, gw: GatewayUnderTest) -> None:
    async with Conn(gw.port) as conn:
        await conn.send(request("HEAD", "/static/large.bin", HOST) + request("GET", "/ok", HOST))
        head = await conn.reply("HEAD")
        after = await conn.reply()
    assert head.head.length == LARGE_FILE_BYTES and head.body == b""
    assert after.body == b"ok\n"


@pytest.mark.parametrize("ranges", ["bytes=0-99", "bytes=1000000-", "bytes=-17", "bytes=5-9"])
async def test_byte_ranges_pass_through(ranges: str, nginx: NginxUpstream, gw: GatewayUnderTest) -> None:
    target, headers = "/static/small.txt", [("Range", ranges)]
    direct = await fetch(nginx.service.port, "GET", target, nginx.service.authority, headers)
    proxied = await fetch(gw.port, "GET", target, HOST, headers)
    assert direct.status in (206, 416)
    assert_transparent(direct, proxied)
