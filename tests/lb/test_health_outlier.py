"""Health and ejection through a real gateway: a killed instance is ejected and returns, health checks take an
instance down and up, no eligible instance is a 503, the ejection limit holds, metrics and reloads."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from gateway.metrics import METRICS, render
from tests.conftest import GatewayUnderTest, StartGateway, StartUpstream
from tests.helpers import fetch
from tests.lb.support import eventually, pool_of, pool_routes, start_instance

FAST_CHECKS = "    health-check: {interval: 20ms, timeout: 1s, healthy-threshold: 2, unhealthy-threshold: 2}"


async def statuses_and_names(gw: GatewayUnderTest, n: int) -> list[tuple[int, str]]:
    out = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for _ in range(n):
            async with session.get(gw.url("/who")) as resp:
                out.append((resp.status, (await resp.read()).decode(errors="replace")))
    return out


async def test_a_killed_instance_is_ejected_then_returns(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    a, _ = await start_instance(start_upstream, "a")
    b, _ = await start_instance(start_upstream, "b")
    c, _ = await start_instance(start_upstream, "c")
    extra = "    outlier-detection: {consecutive-connect-failures: 2, base-ejection-time: 1m, max-ejection-percent: 50}"
    gw = await start_gateway(pool_routes([(a, ""), (b, ""), (c, "")], extra))
    pool = pool_of(gw.gateway)
    before = METRICS.outlier_ejections.get("p", 0)
    assert {name for _, name in await statuses_and_names(gw, 6)} == {"a", "b", "c"}
    port = b.port
    await b.runner.cleanup()  # b is gone: connections refused from now on
    results = await statuses_and_names(gw, 30)
    failures = [r for r in results if r[0] == 502]
    assert len(failures) == 2, results  # exactly the configured consecutive connect failures reached clients
    assert all(r == (200, "a") or r == (200, "c") for r in results if r[0] != 502)
    assert METRICS.outlier_ejections.get("p", 0) == before + 1
    victim = next(i for i in pool.instances if i.endpoint.port == port)
    assert victim.ejected_until is not None
    # b comes back on its port; once the ejection time has passed it takes traffic again. The pool's clock is
    # moved instead of waiting a minute (tests/lb/test_pool_unit.py checks the exact boundary).
    revived = await start_app(_who_app("b"), port=port)
    try:
        assert {name for _, name in await statuses_and_names(gw, 6)} == {"a", "c"}  # still ejected
        real = pool.clock
        pool.clock = lambda: real() + 60
        assert {name for _, name in await statuses_and_names(gw, 6)} == {"a", "b", "c"}
        assert victim.ejected_until is None and victim.times_ejected == 1
    finally:
        await revived.cleanup()


def _who_app(name: str) -> web.Application:
    async def who(request: web.Request) -> web.Response:
        return web.Response(text=name)

    app = web.Application()
    app.router.add_get("/who", who)
    return app


async def start_app(app: web.Application, *, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_health_checks_take_an_instance_down_and_up(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    a, knobs_a = await start_instance(start_upstream, "a")
    b, _ = await start_instance(start_upstream, "b")
    gw = await start_gateway(pool_routes([(a, ""), (b, "")], FAST_CHECKS))
    pool = pool_of(gw.gateway)
    first = pool.instances[0]
    await eventually(lambda: any(h.path == "/health" for h in a.hits), "a health check reached a")
    failed_before = METRICS.health_checks.get(("p", "failure"), 0)
    knobs_a.health = 500
    await eventually(lambda: not first.healthy, "a is marked down")
    assert {name for _, name in await statuses_and_names(gw, 10)} == {"b"}
    assert METRICS.health_checks.get(("p", "failure"), 0) >= failed_before + 2  # the unhealthy threshold
    knobs_a.health = 204
    await eventually(lambda: first.healthy, "a is marked up again")
    assert {name for _, name in await statuses_and_names(gw, 10)} == {"a", "b"}


async def test_no_healthy_instance_is_a_503_problem(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    a, knobs_a = await start_instance(start_upstream, "a")
    knobs_a.health = 503
    gw = await start_gateway(pool_routes([(a, "")], FAST_CHECKS, pool="payments"))
    await eventually(lambda: not pool_of(gw.gateway, "payments").instances[0].healthy, "a is marked down")
    served = len([h for h in a.hits if h.path == "/who"])
    reply = await fetch(gw, "/who")
    assert reply.status == 503
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    problem = reply.seen()
    assert problem["detail"] == "no healthy instance in pool payments"
    assert problem["type"].endswith("no-healthy-instance")
    assert len([h for h in a.hits if h.path == "/who"]) == served  # nothing was sent


async def test_5xx_answers_eject_within_the_ejection_limit(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    instances = [await start_instance(start_upstream, name) for name in "abcd"]
    for _, knobs in instances:
        knobs.status = 500
    extra = "    outlier-detection: {consecutive-5xx: 1, base-ejection-time: 1m, max-ejection-percent: 50}"
    gw = await start_gateway(pool_routes([(u, "") for u, _ in instances], extra))
    results = await statuses_and_names(gw, 20)
    assert all(status == 500 for status, _ in results)  # the upstream's own 500s, passed on
    pool = pool_of(gw.gateway)
    assert sum(1 for i in pool.instances if i.ejected_until is not None) == 2  # 50 % of 4, never more
    text = render([METRICS.snapshot()], {"routes": 1, "reloads": {}}).decode()
    assert 'gateway_upstream_healthy_instances{pool="p"} 2.0' in text
    assert 'gateway_outlier_ejections_total{pool="p"}' in text


async def test_a_reload_keeps_the_state_of_an_unchanged_pool_and_updates_a_changed_one(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    a, knobs_a = await start_instance(start_upstream, "a")
    b, _ = await start_instance(start_upstream, "b")
    extra = "    outlier-detection: {consecutive-5xx: 1, base-ejection-time: 1m, max-ejection-percent: 50}"
    text = pool_routes([(a, ""), (b, "")], extra)
    gw = await start_gateway(text)
    knobs_a.status = 502
    await statuses_and_names(gw, 4)
    pool = pool_of(gw.gateway)
    ejected = pool.instances[0]
    assert ejected.ejected_until is not None
    gw.gateway.load_text(text.replace("id: r", "id: renamed"), "test-routes.yaml")  # the routes changed, not the pool
    assert pool_of(gw.gateway) is pool and pool.instances[0] is ejected and ejected.ejected_until is not None
    assert {name for _, name in await statuses_and_names(gw, 6)} == {"b"}
    c, _ = await start_instance(start_upstream, "c")
    gw.gateway.load_text(pool_routes([(a, ""), (b, ""), (c, "")], extra), "test-routes.yaml")
    assert pool_of(gw.gateway) is pool  # updated in place
    assert pool.instances[0] is ejected and ejected.ejected_until is not None  # same URL keeps its state
    assert {name for _, name in await statuses_and_names(gw, 6)} == {"b", "c"}
    gw.gateway.load_text("routes: []", "test-routes.yaml")
    assert gw.gateway.pools.pools == {}


async def test_a_health_checker_follows_a_reload(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    a, knobs_a = await start_instance(start_upstream, "a")
    b, _ = await start_instance(start_upstream, "b")
    gw = await start_gateway(pool_routes([(a, ""), (b, "")]))
    knobs_a.health = 500
    await asyncio.sleep(0.1)
    assert not any(h.path == "/health" for h in a.hits)  # off unless configured
    gw.gateway.load_text(pool_routes([(a, ""), (b, "")], FAST_CHECKS), "test-routes.yaml")
    await eventually(lambda: not pool_of(gw.gateway).instances[0].healthy, "a is marked down after the reload")
    gw.gateway.load_text(pool_routes([(a, ""), (b, "")]), "test-routes.yaml")
    assert pool_of(gw.gateway).instances[0].healthy  # checks off: their verdict no longer applies
    assert gw.gateway.pools.checkers == {}
