"""Helpers for pool tests: instances that answer with their name, a /health whose status a test flips, and a
routes.yaml with one `lb://` route."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from gateway.app import Gateway
from gateway.lb.pool import Pool
from tests.conftest import StartUpstream, Upstream

GUARD = 10.0  # seconds: only a guard against a hang while polling for a state change


@dataclass
class Knobs:
    """What a test changes on a running instance."""

    health: int = 200
    status: int = 200
    release: asyncio.Event = field(default_factory=asyncio.Event)
    stalled: asyncio.Event = field(default_factory=asyncio.Event)


async def start_instance(start_upstream: StartUpstream, name: str) -> tuple[Upstream, Knobs]:
    """An upstream answering `/who` with `name` (status `knobs.status`), `/health` with `knobs.health`, and
    `/slow` only once `knobs.release` is set (`knobs.stalled` tells the request arrived)."""
    knobs = Knobs()

    async def who(request: web.Request) -> web.Response:
        return web.Response(text=name, status=knobs.status)

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok", status=knobs.health)

    async def slow(request: web.Request) -> web.Response:
        knobs.stalled.set()
        await knobs.release.wait()
        return web.Response(text=name)

    app = web.Application()
    app.router.add_get("/who", who)
    app.router.add_get("/health", health)
    app.router.add_get("/slow", slow)
    return await start_upstream(app), knobs


def pool_routes(instances: list[tuple[Upstream, str]], extra: str = "", *, pool: str = "p", filters: str = "[]") -> str:
    """routes.yaml with pool `pool` over `instances` ((upstream, inline extra keys such as 'weight: 3')) and one
    route `r` to lb://pool for every path. `extra` is more YAML under the pool, indented by 4 spaces."""
    items = "\n".join(f"      - {{url: {u.url}{', ' + keys if keys else ''}}}" for u, keys in instances)
    return f"""
upstreams:
  {pool}:
    instances:
{items}
{extra}
routes:
  - id: r
    uri: lb://{pool}
    predicates: [Path=/**]
    filters: {filters}
"""


def pool_of(gateway: Gateway, name: str = "p") -> Pool:
    return gateway.pools.pools[name]


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll until `condition()` holds; fail naming `what` after the hang guard."""
    async with asyncio.timeout(GUARD):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


def names(bodies: list[bytes]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for body in bodies:
        counts[body.decode()] = counts.get(body.decode(), 0) + 1
    return counts


Fetch = Callable[[str], Awaitable[tuple[int, bytes]]]
