"""The admin listener (aiohttp, separate from the data port): health, metrics, a read-only routes view.

Health and metrics are open; the writable admin API (later) will require a token on everything else.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class AdminSource(Protocol):
    draining: bool

    def ready(self) -> bool: ...

    async def metrics(self) -> bytes: ...

    def routes_view(self) -> dict[str, Any]: ...


def admin_app(source: AdminSource) -> web.Application:
    async def live(request: web.Request) -> web.Response:
        return web.json_response({"status": "UP"})

    async def ready(request: web.Request) -> web.Response:
        up = source.ready()
        body = {"status": "UP" if up else "DOWN", "draining": source.draining}
        return web.json_response(body, status=200 if up else 503)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=await source.metrics(), headers={"Content-Type": METRICS_TYPE})

    async def routes(request: web.Request) -> web.Response:
        return web.json_response(source.routes_view())

    app = web.Application()
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/routes", routes)
    return app
