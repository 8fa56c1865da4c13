"""The admin listener (aiohttp, separate from the data port): health, metrics, a read-only routes view.

`/health/*` and `/metrics` are open; everything else needs `Authorization: Bearer <token>` (401 problem+json
without or with a wrong one). With no token at all (`tokens=None`: none configured, listener off loopback) everything
else is 403 "admin API disabled". The author (the token's name) is kept on the request as `request[AUTHOR]`: changes
made through the admin API are attributed to it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web

from gateway.adminapi.actuator import actuator_routes
from gateway.adminapi.http import AUTHOR, ConfigSource, problem_response
from gateway.adminapi.native import native_routes
from gateway.problem import PROBLEM_TYPE_BASE

__all__ = ["AUTHOR", "DISABLED_DETAIL", "admin_app", "auth_middleware", "author_of", "is_open_path", "problem"]

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DISABLED_DETAIL = "admin API disabled: set admin.token"
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminSource(ConfigSource, Protocol):
    draining: bool

    def ready(self) -> bool: ...

    async def metrics(self) -> bytes: ...

    def routes_view(self) -> dict[str, Any]: ...

    def store_note(self) -> str | None: ...


def is_open_path(path: str) -> bool:
    """Health and metrics: served to anyone (probes and scrapers carry no token)."""
    return path == "/metrics" or path.startswith("/health/")


def problem(status: int, kind: str, title: str, detail: str, headers: Mapping[str, str] | None = None) -> web.Response:
    document = {"type": PROBLEM_TYPE_BASE + kind, "title": title, "status": status, "detail": detail}
    return web.Response(
        status=status,
        body=orjson.dumps(document),
        headers={"Content-Type": "application/problem+json", "Cache-Control": "no-store", **(headers or {})},
    )


def author_of(header: str, tokens: Mapping[str, str]) -> str | None:
    """The name of the token `header` (an Authorization value) carries, or None when it carries none of them."""
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    given = presented.strip().encode()
    found = None
    for name, token in tokens.items():
        # SECURITY: constant-time compare, and every token compared, so timing tells nothing about any of them.
        if hmac.compare_digest(given, token.encode()):
            found = name
    return found


def auth_middleware(tokens: Mapping[str, str] | None) -> Any:
    """Bearer-token check for everything but health and metrics; `tokens=None` disables the admin API."""

    @web.middleware
    async def authenticate(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if is_open_path(request.path):
            return await handler(request)
        if tokens is None:
            return problem(403, "admin-disabled", "Forbidden", DISABLED_DETAIL)
        author = author_of(request.headers.get("Authorization", ""), tokens)
        if author is None:
            return problem(
                401,
                "unauthorized",
                "Unauthorized",
                "the admin API needs Authorization: Bearer <token>",
                {"WWW-Authenticate": "Bearer"},
            )
        request[AUTHOR] = author
        return await handler(request)

    return authenticate


@web.middleware
async def problems(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """aiohttp's own 404 (no such path) and 405 (method) as problem+json, like every other refusal."""
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return problem_response(exc.status, f"{request.method} {request.path}: {exc.reason}", headers=allow)


def admin_app(source: AdminSource, tokens: Mapping[str, str] | None) -> web.Application:
    """The admin app; `tokens` maps author name -> bearer token, None when the API is disabled (health only)."""

    async def live(request: web.Request) -> web.Response:
        return web.json_response({"status": "UP"})

    async def ready(request: web.Request) -> web.Response:
        up = source.ready()
        body: dict[str, Any] = {"status": "UP" if up else "DOWN", "draining": source.draining}
        note = source.store_note()
        if note is not None:
            body["store"] = note
        return web.json_response(body, status=200 if up else 503)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=await source.metrics(), headers={"Content-Type": METRICS_TYPE})

    async def routes(request: web.Request) -> web.Response:
        return web.json_response(source.routes_view())

    app = web.Application(middlewares=[auth_middleware(tokens), problems])
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/routes", routes)
    app.router.add_routes(actuator_routes(source))
    app.router.add_routes(native_routes(source))
    return app
