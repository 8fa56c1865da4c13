"""Filters' keyed values shared through Redis (issue 12, item 3): a plugin filter on a gateway with two workers and
`state.redis_url` counts every request in one shared counter, whichever worker serves it."""

from __future__ import annotations

import uuid
from pathlib import Path

from redis.asyncio import Redis

from tests.e2e.ops_helpers import one_request, routes_yaml, run_gateway
from tests.plugins import write_distribution

REDIS_URL = "redis://127.0.0.1:6379/0"

SHARED_COUNTER = """
import os

from gateway.api import BuildContext, ComponentConfig, Exchange, FilterSpec, Headers, Next, Response, StateUnavailable


class Config(ComponentConfig):
    pass


class SharedCounter:
    def __init__(self, context: BuildContext) -> None:
        self.state = context.services.state

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        try:
            count = await self.state.incr("hits")
        except StateUnavailable:
            return Response(503, body=b"state unavailable")  # fail closed
        return Response(200, Headers([("X-Pid", str(os.getpid()))]), str(count).encode())


SPEC = FilterSpec(name="SharedCounter", order=901, config=Config, build=lambda c, ctx: SharedCounter(ctx),
                  summary="counts requests in shared state", example={})
"""


async def test_two_workers_count_in_one_shared_counter(tmp_path: Path) -> None:
    prefix = f"test-{uuid.uuid4().hex}:"
    site = tmp_path / "site"
    write_distribution(
        site,
        "team-shared-counter",
        {"sluicegate.filters": {"SharedCounter": "team_shared_counter:SPEC"}},
        {"team_shared_counter": SHARED_COUNTER},
    )
    routes = routes_yaml(
        {"id": "counted", "uri": "http://127.0.0.1:9", "predicates": ["Path=/**"], "filters": ["SharedCounter"]}
    )
    settings = {"state": {"redis_url": REDIS_URL, "key_prefix": prefix}}
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        async with run_gateway(
            tmp_path, routes, "--workers", "2", settings=settings, env={"PYTHONPATH": str(site)}
        ) as gw:
            counts: list[int] = []
            pids: set[str] = set()
            # a new connection each: the kernel spreads them over the workers; stop once both have answered a few
            while len(pids) < 2 or len(counts) < 20:
                assert len(counts) < 400, f"only worker(s) {pids} answered"
                response = await one_request(gw.port, "GET", "/x")
                assert response.status == 200, response
                counts.append(int(response.body))
                pids.add(response.headers["x-pid"])
            # one counter for both workers: each request saw the previous one's increment, whoever served it
            assert counts == list(range(1, len(counts) + 1))
            assert await client.get(f"{prefix}state:SharedCounter:hits") == str(len(counts))
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
