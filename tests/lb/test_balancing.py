"""Balancing through a real gateway to real instances: weighted round robin, least request, zones, and the
choice a retry makes (instances already tried are avoided)."""

from __future__ import annotations

import asyncio

import aiohttp

from gateway.lb.config import PoolConfig
from gateway.lb.pool import Pool
from tests.conftest import GatewayUnderTest, StartGateway, StartUpstream
from tests.lb.support import eventually, names, pool_of, pool_routes, start_instance


async def get_many(gw: GatewayUnderTest, path: str, n: int) -> list[bytes]:
    bodies = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for _ in range(n):
            async with session.get(gw.url(path)) as resp:
                assert resp.status == 200
                bodies.append(await resp.read())
    return bodies


async def test_round_robin_follows_the_weights_exactly(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    a, _ = await start_instance(start_upstream, "a")
    b, _ = await start_instance(start_upstream, "b")
    c, _ = await start_instance(start_upstream, "c")
    gw = await start_gateway(pool_routes([(a, "weight: 3"), (b, ""), (c, "weight: 2")]))
    bodies = await get_many(gw, "/who", 60)
    assert names(bodies) == {"a": 30, "b": 10, "c": 20}
    # smooth: never the heavy instance three times in a row, whatever the phase
    sequence = [body.decode() for body in bodies]
    assert "aaa" not in "".join(sequence)
    assert (len(a.hits), len(b.hits), len(c.hits)) == (30, 10, 20)  # counted by the servers themselves


async def test_random_spreads_by_weight(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    a, _ = await start_instance(start_upstream, "a")
    b, _ = await start_instance(start_upstream, "b")
    gw = await start_gateway(pool_routes([(a, "weight: 3"), (b, "")], "    policy: random"))
    n = 400
    counts = names(await get_many(gw, "/who", n))
    # expectation 300, sigma sqrt(400 * 0.75 * 0.25) = 8.7: 6 sigma is 52
    assert 248 <= counts.get("a", 0) <= 352, counts
    assert counts.get("a", 0) + counts.get("b", 0) == n


async def test_least_request_sends_new_requests_to_the_idle_instance(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    a, knobs_a = await start_instance(start_upstream, "a")
    b, knobs_b = await start_instance(start_upstream, "b")
    gw = await start_gateway(pool_routes([(a, ""), (b, "")], "    policy: least_request"))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        slow = asyncio.create_task(session.get(gw.url("/slow")))
        done, _ = await asyncio.wait(
            [asyncio.create_task(knobs_a.stalled.wait()), asyncio.create_task(knobs_b.stalled.wait())],
            timeout=10,
            return_when=asyncio.FIRST_COMPLETED,
        )
        assert done, "the slow request never reached an instance"
        busy, idle = ("a", "b") if knobs_a.stalled.is_set() else ("b", "a")
        counts = names(await get_many(gw, "/who", 20))
        assert counts == {idle: 20}, (busy, counts)
        knobs_a.release.set()
        knobs_b.release.set()
        response = await slow
        assert await response.text() == busy
        response.release()
    # every attempt, the slow one included, is counted out again
    pool = pool_of(gw.gateway)
    await eventually(lambda: all(i.inflight == 0 for i in pool.instances), "every attempt is released")


async def test_zone_weights_split_traffic(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    a, _ = await start_instance(start_upstream, "a")
    b, _ = await start_instance(start_upstream, "b")
    c, _ = await start_instance(start_upstream, "c")
    extra = "    zones: {dc1: 80, dc2: 20}"
    gw = await start_gateway(pool_routes([(a, "zone: dc1"), (b, "zone: dc1, weight: 9"), (c, "zone: dc2")], extra))
    n = 300
    counts = names(await get_many(gw, "/who", n))
    dc1 = counts.get("a", 0) + counts.get("b", 0)
    # expectation 240, sigma sqrt(300 * 0.8 * 0.2) = 6.9: 6 sigma is 42
    assert 198 <= dc1 <= 282, counts
    assert counts.get("b", 0) > counts.get("a", 0)  # within dc1 round robin by weight: exactly 9:1 of dc1's share


async def test_a_zone_without_instances_gives_its_share_away(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    a, _ = await start_instance(start_upstream, "a")
    b, knobs_b = await start_instance(start_upstream, "b")
    extra = (
        "    zones: {dc1: 50, dc2: 50}\n"
        "    health-check: {interval: 20ms, timeout: 1s, healthy-threshold: 1, unhealthy-threshold: 1}"
    )
    gw = await start_gateway(pool_routes([(a, "zone: dc1"), (b, "zone: dc2")], extra))
    knobs_b.health = 503
    pool = pool_of(gw.gateway)
    async with asyncio.timeout(10):
        while pool.instances[1].healthy:
            await asyncio.sleep(0.01)
    assert names(await get_many(gw, "/who", 30)) == {"a": 30}


def test_zone_source_can_be_swapped_at_run_time() -> None:
    """The traffic-shift work replaces `PoolSet.zone_weights`; the pool reads it on every choice."""
    from gateway.app import Gateway

    gateway = Gateway()
    gateway.load_text(
        "upstreams: {p: {instances: [{url: 'http://10.0.0.1', zone: x}, {url: 'http://10.0.0.2', zone: y}],"
        " zones: {x: 1, y: 1}}}\nroutes: [{id: r, uri: 'lb://p'}]",
        "r.yaml",
    )

    class OnlyY:
        def zone_weights(self, pool: str) -> dict[str, int]:
            return {"y": 1}

    gateway.pools.zone_weights = OnlyY()
    from gateway.exchange import UpstreamRef
    from tests.lb.test_pool_unit import exchange_for

    picks = {gateway.pools.resolve(UpstreamRef("http", "lb://p", pool="p"), exchange_for()).uri for _ in range(50)}
    assert picks == {"http://10.0.0.2"}


def test_tried_instances_are_avoided_while_another_is_eligible() -> None:
    config = PoolConfig.model_validate(
        {
            "instances": [
                {"url": "http://10.0.0.1", "weight": 10},
                {"url": "http://10.0.0.2"},
                {"url": "http://10.0.0.3"},
            ]
        }
    )  # weight 10: without the rule, round robin would pick the first instance again and again
    pool = Pool("p", config)
    first = pool.pick([], None)
    second = pool.pick([first.endpoint], None)
    third = pool.pick([first.endpoint, second.endpoint], None)
    assert len({first.endpoint, second.endpoint, third.endpoint}) == 3
    # all tried: any eligible instance is still better than none
    assert pool.pick([i.endpoint for i in pool.instances], None) in pool.instances
