"""A small echo backend the shipped routes.yaml points at, so the demo needs no external service.

It is an ordinary aiohttp app on loopback, also used by the tests as a real upstream: echo (method, path,
headers, body digest), fixed-size streams, server-sent events, status codes, delays and a WebSocket echo.
"""

from __future__ import annotations

import asyncio
import hashlib

from aiohttp import WSMsgType, web

_PATTERN = bytes(range(256)) * 256  # 64 KiB of a known pattern, for large deterministic downloads


async def echo(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    size = 0
    async for data in request.content.iter_any():
        digest.update(data)
        size += len(data)
    return web.json_response(
        {
            "method": request.method,
            "path": request.raw_path.partition("?")[0],
            "query": request.raw_path.partition("?")[2],
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
            "body_bytes": size,
            "body_sha256": digest.hexdigest(),
            "peer": request.remote,
        }
    )


async def stream_bytes(request: web.Request) -> web.StreamResponse:
    """`/bytes/{n}`: n bytes of a fixed pattern, streamed chunked (no Content-Length)."""
    remaining = int(request.match_info["n"])
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await response.prepare(request)
    while remaining > 0:
        piece = _PATTERN[: min(remaining, len(_PATTERN))]
        await response.write(piece)
        remaining -= len(piece)
    await response.write_eof()
    return response


async def status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    return web.Response(status=code, text="" if code in (204, 304) else f"status {code}\n")


async def delay(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.match_info["seconds"]))
    return web.Response(text="delayed\n")


async def events(request: web.Request) -> web.StreamResponse:
    """`/sse`: three server-sent events, 0.1 s apart."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    for n in range(3):
        await response.write(f"id: {n}\ndata: tick {n}\n\n".encode())
        await asyncio.sleep(0.1)
    await response.write_eof()
    return response


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """`/ws`: echoes text and binary frames; "close:<code>" closes with that code."""
    ws = web.WebSocketResponse(protocols=("echo", "chat"))
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            if message.data.startswith("close:"):
                await ws.close(code=int(message.data[6:]), message=b"bye")
                break
            await ws.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    return ws


def demo_app() -> web.Application:
    app = web.Application(client_max_size=1 << 40)
    app.router.add_get("/bytes/{n:\\d+}", stream_bytes)
    app.router.add_get("/status/{code:\\d{3}}", status)
    app.router.add_get("/delay/{seconds:[0-9.]+}", delay)
    app.router.add_get("/sse", events)
    app.router.add_get("/ws", websocket)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


async def start_demo_upstream(host: str, port: int) -> web.AppRunner:
    """Start the echo backend; the caller keeps the runner and calls `cleanup()` to stop it."""
    runner = web.AppRunner(demo_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
