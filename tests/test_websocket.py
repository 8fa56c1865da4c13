"""WebSocket routes: the 101 tunnel both ways, subprotocols, message sizes, close codes in both directions.

aiohttp's WebSocket client talks to the gateway; the upstream is the demo app's `/ws` echo (or a small aiohttp
app where the test needs to see the upstream's side).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from tests.conftest import StartGateway, StartRaw, StartUpstream, Upstream, raw_exchange, status_of
from tests.helpers import app_serving, dechunk

GUARD = 10.0  # seconds: only a guard against a hang, never a measurement
SIZES = [0, 1, 125, 126, 65_535, 65_536, 1 << 20]


def routes(port: int, metadata: str = "{}") -> str:
    return f"""
routes:
  - id: ws
    uri: ws://127.0.0.1:{port}
    predicates: [Path=/demo/**]
    filters: [StripPrefix=1]
    metadata: {metadata}
  - id: http
    uri: http://127.0.0.1:{port}
    predicates: [Path=/api/**]
    filters: [StripPrefix=1]
"""


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(("chat",), "chat"), (("unknown", "echo"), "echo"), ((), None)],
)
async def test_subprotocol_chosen_by_the_upstream_reaches_the_client(
    offered: tuple[str, ...], chosen: str | None, upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(routes(upstream.port))
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(gw.url("/demo/ws"), protocols=offered) as ws,
    ):
        assert ws.protocol == chosen
        await ws.send_str("ping")
        assert await asyncio.wait_for(ws.receive_str(), GUARD) == "ping"


async def test_text_and_binary_messages_echo_identically(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(routes(upstream.port))
    async with aiohttp.ClientSession() as session, session.ws_connect(gw.url("/demo/ws")) as ws:
        for size in SIZES:
            data = bytes((n * 7 + size) % 256 for n in range(size))
            await ws.send_bytes(data)
            message = await asyncio.wait_for(ws.receive(), GUARD)
            assert message.type == WSMsgType.BINARY
            assert message.data == data
            text = "".join("aé€𝄞"[(n + size) % 4] for n in range(size // 4))
            await ws.send_str(text)
            message = await asyncio.wait_for(ws.receive(), GUARD)
            assert message.type == WSMsgType.TEXT
            assert message.data == text


async def test_many_messages_in_a_row_keep_their_order(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(routes(upstream.port))
    async with aiohttp.ClientSession() as session, session.ws_connect(gw.url("/demo/ws")) as ws:
        for n in range(2000):
            await ws.send_str(f"message {n}")  # all sent before any is read: the tunnel must buffer honestly
        received = [await asyncio.wait_for(ws.receive_str(), GUARD) for _ in range(2000)]
    assert received == [f"message {n}" for n in range(2000)]


async def test_close_code_chosen_by_the_upstream_reaches_the_client(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(routes(upstream.port))
    async with aiohttp.ClientSession() as session, session.ws_connect(gw.url("/demo/ws")) as ws:
        await ws.send_str("close:4000")
        message = await asyncio.wait_for(ws.receive(), GUARD)
        assert message.type == WSMsgType.CLOSE
        assert message.data == 4000
        assert message.extra == "bye"
        assert ws.close_code == 4000


def recording_ws_app(seen: list[int | None], done: asyncio.Event) -> web.Application:
    """A WebSocket upstream that greets first, echoes, and records the close code the client sent."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for n in range(3):
            await ws.send_str(f"hello {n}")  # the upstream speaks first: the tunnel is not request/response
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(message.data)
        seen.append(ws.close_code)
        done.set()
        return ws

    return app_serving("/ws", handler)


@pytest.mark.parametrize("code", [1000, 4001])
async def test_client_initiated_close_reaches_the_upstream(
    code: int, start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    seen: list[int | None] = []
    done = asyncio.Event()
    up = await start_upstream(recording_ws_app(seen, done))
    gw = await start_gateway(routes(up.port))
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(gw.url("/demo/ws"))
        greetings = [await asyncio.wait_for(ws.receive_str(), GUARD) for _ in range(3)]
        assert greetings == ["hello 0", "hello 1", "hello 2"]
        await ws.send_str("still there?")
        assert await asyncio.wait_for(ws.receive_str(), GUARD) == "still there?"
        assert await asyncio.wait_for(ws.close(code=code), GUARD)
        assert ws.closed
    await asyncio.wait_for(done.wait(), GUARD)
    assert seen == [code]


async def test_websocket_is_exempt_from_response_and_body_idle_timeouts(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(routes(upstream.port, "{response-timeout: 100, body-idle-timeout: 100}"))
    async with aiohttp.ClientSession() as session, session.ws_connect(gw.url("/demo/ws")) as ws:
        for n in range(3):
            await asyncio.sleep(0.3)  # quiet for longer than both route timeouts
            await ws.send_str(f"after a pause {n}")
            assert await asyncio.wait_for(ws.receive_str(), GUARD) == f"after a pause {n}"


async def test_plain_http_request_on_a_ws_route_is_forwarded(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(routes(upstream.port))
    async with aiohttp.ClientSession() as session, session.post(gw.url("/demo/plain?q=1"), data=b"body") as resp:
        assert resp.status == 200
        seen = await resp.json()
    assert seen["method"] == "POST"
    assert seen["path"] == "/plain" and seen["query"] == "q=1"
    assert seen["body_bytes"] == 4


async def test_upgrade_refused_by_the_upstream_reaches_the_client(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(routes(upstream.port))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(gw.url("/demo/status/403"))
    assert refused.value.status == 403


async def test_upgrade_on_an_http_route_is_forwarded_without_upgrade(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(routes(upstream.port))
    request = (
        b"GET /api/chat HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    raw = await raw_exchange(gw.port, request)
    assert status_of(raw) == 200
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"upgrade" not in head.lower()
    seen: dict[str, Any] = json.loads(body if b"chunked" not in head.lower() else dechunk(body)[0])
    assert seen["method"] == "GET" and seen["path"] == "/chat"
    names = {name.lower(): value for name, value in seen["headers"]}
    assert "upgrade" not in names
    assert "upgrade" not in names.get("connection", "").lower()
    assert len(upstream.hits) == 1


# -- issue 9, finding 1: only `websocket` upgrades on ws routes ---------------------------------------------------


H2C = (
    b"GET /demo/echo HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
)


@pytest.mark.parametrize("token", [b"h2c", b"TLS/1.2", b"websocket2", b"foo, websocket"])
async def test_a_non_websocket_upgrade_on_a_ws_route_is_plain_http(
    token: bytes, upstream: Upstream, start_gateway: StartGateway
) -> None:
    """Never a 101 and a tunnel that bypasses the route's predicates and filters: the Upgrade (and the fields
    Connection names) are dropped and the request is proxied as plain HTTP, as Envoy does with h2c."""
    gw = await start_gateway(routes(upstream.port))
    raw = await raw_exchange(gw.port, H2C.replace(b"Upgrade: h2c", b"Upgrade: " + token))
    assert status_of(raw) == 200, raw[:300]
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"upgrade" not in head.lower()
    seen: dict[str, Any] = json.loads(body if b"chunked" not in head.lower() else dechunk(body)[0])
    assert seen["method"] == "GET" and seen["path"] == "/echo"
    names = {name.lower(): value for name, value in seen["headers"]}
    assert "upgrade" not in names and "http2-settings" not in names
    assert "upgrade" not in names.get("connection", "").lower()


@pytest.mark.parametrize("answer", [b"h2c", b"websocket2", None])
async def test_an_upstream_101_to_another_protocol_is_502(
    answer: bytes | None, start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    """A client asked for websocket; an upstream switching to anything else (or naming nothing) is a bad gateway."""

    async def switch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        upgrade = b"" if answer is None else b"Upgrade: " + answer + b"\r\n"
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n" + upgrade + b"\r\n")
        await writer.drain()
        await reader.read()

    gw = await start_gateway(routes(await start_raw(switch)))
    raw = await raw_exchange(gw.port, WS_REQUEST)
    assert status_of(raw) == 502, raw[:300]


async def test_the_101_names_the_protocol_the_upstream_switched_to(
    start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    async def switch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n")
        await writer.drain()
        await reader.read()

    gw = await start_gateway(routes(await start_raw(switch)))
    raw = await raw_exchange(gw.port, WS_REQUEST.replace(b"Upgrade: websocket", b"Upgrade: WEBSOCKET"), read_timeout=1)
    assert status_of(raw) == 101, raw[:300]
    assert b"\r\nUpgrade: WebSocket\r\n" in raw.partition(b"\r\n\r\n")[0]


WS_REQUEST = (
    b"GET /demo/ws HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
