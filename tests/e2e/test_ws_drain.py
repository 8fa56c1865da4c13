"""A WebSocket still open when the drain timeout ends gets close 1001 (going away) both ways (issue 9, finding 5).

The whole `sluicegate run` process tree, a real aiohttp WebSocket client and a real aiohttp WebSocket upstream: the
client must read a close frame with code 1001 (not the 1006 of a cut connection), and the upstream too.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
from aiohttp import WSMsgType, web

from tests.conftest import StartUpstream
from tests.e2e.ops_helpers import GUARD, routes_yaml, run_gateway
from tests.helpers import app_serving

DRAIN_TIMEOUT = "1"  # seconds: the WebSocket outlives it, which is the case under test


def recording_ws_app(closed_with: list[int | None], done: asyncio.Event) -> web.Application:
    """Greets, echoes text, and records the close code it got from the gateway."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("hello")
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(message.data)
        closed_with.append(ws.close_code)
        done.set()
        return ws

    return app_serving("/ws", handler)


async def test_websocket_open_at_the_drain_timeout_gets_close_1001_both_ways(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    closed_with: list[int | None] = []
    done = asyncio.Event()
    upstream = await start_upstream(recording_ws_app(closed_with, done))
    routes = routes_yaml({"id": "ws", "uri": f"ws://127.0.0.1:{upstream.port}", "predicates": ["Path=/ws"]})
    async with (
        run_gateway(tmp_path, routes, "--drain-timeout", DRAIN_TIMEOUT) as gw,
        aiohttp.ClientSession() as session,
        session.ws_connect(gw.url("/ws"), autoclose=False) as ws,
    ):
        assert await asyncio.wait_for(ws.receive_str(), GUARD) == "hello"
        await ws.send_str("x" * 70_000)  # a frame with a 64-bit length, then a small one: the cursor follows both
        assert await asyncio.wait_for(ws.receive_str(), GUARD) == "x" * 70_000
        await ws.send_str("still here")
        assert await asyncio.wait_for(ws.receive_str(), GUARD) == "still here"
        gw.signal(signal.SIGTERM)
        message = await asyncio.wait_for(ws.receive(), GUARD)
        assert message.type == WSMsgType.CLOSE, message
        assert message.data == 1001
        await asyncio.wait_for(done.wait(), GUARD)
        assert closed_with == [1001]
        assert await gw.wait_exit() == 0
