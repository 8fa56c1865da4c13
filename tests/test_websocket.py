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

from gateway.server.wsrelay import FrameCursor
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


# -- issue 9, finding 5: close 1001 at the drain timeout, between frames --------------------------------------------


def frame(payload: bytes, *, opcode: int = 1, fin: bool = True, key: bytes | None = None) -> bytes:
    """One WebSocket frame; masked when `key` is given (client to server)."""
    size = len(payload)
    if size < 126:
        length = bytes([size])
    elif size < 1 << 16:
        length = b"\x7e" + size.to_bytes(2, "big")
    else:
        length = b"\x7f" + size.to_bytes(8, "big")
    mask = 0x80 if key is not None else 0
    head = bytes([(0x80 if fin else 0) | opcode, length[0] | mask]) + length[1:]
    if key is None:
        return head + payload
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize(
    "frames",
    [
        [frame(b"")],
        [frame(b"a" * 125), frame(b"b" * 126), frame(b"c" * 70_000)],
        [frame(b"part", fin=False, key=b"\x01\x02\x03\x04"), frame(b"", opcode=9, key=b"kkkk"), frame(b"x" * 300)],
    ],
)
def test_the_frame_cursor_finds_every_boundary_however_the_bytes_are_cut(frames: list[bytes]) -> None:
    stream = b"".join(frames)
    boundaries = {0}
    for item in frames:
        boundaries.add(max(boundaries) + len(item))
    for step in (1, 2, 3, 7, 13, 64, len(stream)):
        cursor, seen = FrameCursor(), set()
        for start in range(0, len(stream), step):
            piece = stream[start : start + step]
            offset = 0
            while offset < len(piece):
                if cursor.at_boundary:
                    seen.add(start + offset)
                offset += cursor.advance(piece[offset:], stop_at_boundary=True) or cursor.advance(piece[offset:][:1])
        if cursor.at_boundary:
            seen.add(len(stream))
        assert seen == boundaries, step


def unmasked_close_code(data: bytes) -> int:
    assert data[0] == 0x88 and data[1] & 0x7F == 2, data
    if data[1] & 0x80:
        key = data[2:6]
        return int.from_bytes(bytes(b ^ key[i] for i, b in enumerate(data[6:8])), "big")
    return int.from_bytes(data[2:4], "big")


@pytest.mark.parametrize("mid_frame", ["client", "upstream"])
async def test_the_drains_close_1001_waits_for_the_frame_in_flight(
    mid_frame: str, start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    """One side is inside a frame when the drain times out: the other side gets close 1001 at once; this one only
    after its frame is complete, never inside it. The close frame to the upstream is masked, the client's not."""
    key = b"\x11\x22\x33\x44"
    client_frame, upstream_frame = frame(b"c" * 200, key=key), frame(b"u" * 200)
    upstream_got = bytearray()
    upstream_close = asyncio.Event()
    upstream_finish = asyncio.Event()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        if mid_frame == "upstream":
            writer.write(upstream_frame[:50])
        await writer.drain()
        while data := await reader.read(65536):
            upstream_got.extend(data)
            if upstream_got.find(b"\x88\x82") >= 0 and not upstream_close.is_set():
                upstream_close.set()
                if mid_frame == "upstream":
                    await upstream_finish.wait()
                    writer.write(upstream_frame[50:])
                    await writer.drain()

    gw = await start_gateway(routes(await start_raw(upstream)))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(WS_REQUEST)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD)
        assert status_of(head) == 101
        if mid_frame == "client":
            writer.write(client_frame[:60])
            await writer.drain()
        server = gw.gateway.server
        assert server is not None
        drained = asyncio.create_task(server.drain(0.05))
        if mid_frame == "client":
            received = await asyncio.wait_for(reader.readexactly(4), GUARD)  # the upstream side was between frames
            assert unmasked_close_code(received) == 1001
            writer.write(client_frame[60:])  # ... so the upstream's close frame must wait for this
            await writer.drain()
            rest = await asyncio.wait_for(reader.read(), GUARD)
            assert rest == b""
            await asyncio.wait_for(upstream_close.wait(), GUARD)
            assert bytes(upstream_got[: len(client_frame)]) == client_frame
            assert unmasked_close_code(bytes(upstream_got[len(client_frame) :])) == 1001
        else:
            await asyncio.wait_for(upstream_close.wait(), GUARD)  # the client side was between frames
            assert unmasked_close_code(bytes(upstream_got)) == 1001
            assert upstream_got[1] & 0x80, "a frame to the upstream must be masked"
            upstream_finish.set()
            received = await asyncio.wait_for(reader.read(), GUARD)
            while not reader.at_eof():
                received += await asyncio.wait_for(reader.read(), GUARD)
            assert received[: len(upstream_frame)] == upstream_frame
            assert unmasked_close_code(received[len(upstream_frame) :]) == 1001
            assert len(received) == len(upstream_frame) + 4
        await asyncio.wait_for(drained, GUARD)
    finally:
        writer.close()
