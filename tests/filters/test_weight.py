"""Weight predicate through real requests: the split, weight 0, one choice per request, groups, live weights."""

from __future__ import annotations

import asyncio
import math
from collections import Counter

import aiohttp
import pytest

from filters.predicates.weight import WeightPredicate
from gateway.config.source import load_yaml
from gateway.errors import ConfigError
from gateway.registry import load_registry
from gateway.routing.compiler import validate
from gateway.routing.weights import StaticWeights, WeightChooser
from gateway.settings import Settings
from tests.conftest import GatewayUnderTest, StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, route

GUARD = 120.0  # seconds for a whole batch: only a guard against a hang, never a measured threshold


def tagged(upstream: Upstream, rid: str, predicates: str, order: int = 0) -> str:
    """A route that names itself in the X-Route response header."""
    return route(upstream, predicates, f'["AddResponseHeader=X-Route, {rid}"]', rid=rid, order=order)


async def routes_taken(gw: GatewayUnderTest, n: int, path: str = "/") -> Counter[str]:
    """Send `n` requests over a few keep-alive connections; count the X-Route of each answer (or its status)."""
    connector = aiohttp.TCPConnector(limit=16)
    timeout = aiohttp.ClientTimeout(total=GUARD)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> str:
            async with session.get(gw.url(path)) as resp:
                await resp.read()
                return resp.headers.get("X-Route", str(resp.status))

        return Counter(await asyncio.gather(*(one() for _ in range(n))))


def within(count: int, n: int, share: float, sigmas: float = 5.0) -> bool:
    """`count` of `n` draws is within `sigmas` standard deviations of the binomial mean for `share`."""
    return abs(count - n * share) <= sigmas * math.sqrt(n * share * (1 - share))


def chooser_of(gw: GatewayUnderTest, route_id: str) -> WeightChooser:
    """The chooser the running table's Weight predicate of `route_id` draws from."""
    route = gw.gateway.dispatcher.table.by_id[route_id]
    return next(p.chooser for p in route.predicates if isinstance(p, WeightPredicate))


async def test_eight_two_split(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:"
        + tagged(upstream, "high", '["Weight=group1, 8"]')
        + tagged(upstream, "low", '["Weight=group1, 2"]')
        + tagged(upstream, "fallback", '["Path=/**"]', order=1)
    )
    n = 3000
    taken = await routes_taken(gw, n)
    assert set(taken) == {"high", "low"}, taken  # exactly one route of the group matches every request
    assert within(taken["high"], n, 0.8), taken


async def test_weight_zero_never_matches(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: idle
    uri: {upstream.url}
    predicates:
      - name: Weight
        args: {{group: g, weight: 0}}
      - Path=/
    filters: ["AddResponseHeader=X-Route, idle"]
  - id: busy
    uri: {upstream.url}
    predicates: [{{name: Weight, args: {{group: g, weight: 3}}}}, Path=/]
    filters: ["AddResponseHeader=X-Route, busy"]
  - id: dark1
    uri: {upstream.url}
    predicates: ["Weight=dark, 0", Path=/dark]
  - id: dark2
    uri: {upstream.url}
    predicates: ["Weight=dark, 0", Path=/dark]
"""
    )
    assert await routes_taken(gw, 300) == Counter({"busy": 300})
    assert await routes_taken(gw, 50, "/dark") == Counter({"404": 50})  # a group weighing nothing sends nowhere


async def test_one_choice_per_request_and_independent_groups(upstream: Upstream, start_gateway: StartGateway) -> None:
    # x is in both groups. Independent draws give x 1/4 (both chose x), y 1/2 (g1 chose y), z 1/4 (g1 chose x and
    # g2 chose z); one shared draw would give x 1/2 and z 0. Every route of a group reading the same choice means
    # that one of x, y, z always matches, so `rest` never does.
    gw = await start_gateway(
        "routes:"
        + tagged(upstream, "x", '["Weight=g1, 1", "Weight=g2, 1"]')
        + tagged(upstream, "y", '["Weight=g1, 1"]', order=1)
        + tagged(upstream, "z", '["Weight=g2, 1"]', order=2)
        + tagged(upstream, "rest", '["Path=/**"]', order=3)
    )
    n = 2000
    taken = await routes_taken(gw, n)
    assert "rest" not in taken and "404" not in taken, taken
    assert within(taken["x"], n, 0.25) and within(taken["y"], n, 0.5) and within(taken["z"], n, 0.25), taken


async def test_weights_change_at_run_time(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:" + tagged(upstream, "blue", '["Weight=deploy, 1"]') + tagged(upstream, "green", '["Weight=deploy, 0"]')
    )
    chooser = chooser_of(gw, "blue")
    assert chooser is chooser_of(gw, "green")  # one chooser serves the whole compile
    version = gw.gateway.version
    assert await routes_taken(gw, 100) == Counter({"blue": 100})
    chooser.source = StaticWeights({"deploy": (("blue", 0), ("green", 9990))})  # basis points, as a canary would
    assert await routes_taken(gw, 100) == Counter({"green": 100})
    chooser.source = StaticWeights({"deploy": (("blue", 5000), ("green", 5000))})
    n = 2000
    taken = await routes_taken(gw, n)
    assert within(taken["green"], n, 0.5), taken
    assert gw.gateway.version == version  # nothing was recompiled


@pytest.mark.parametrize(
    ("predicates", "path", "fragment"),
    [
        ('["Weight=g"]', "routes[0].predicates[0].args.weight", "required"),
        ('["Weight=g, -1"]', "routes[0].predicates[0].args.weight", "greater than or equal to 0"),
        ('["Weight=g, 0.5"]', "routes[0].predicates[0].args.weight", "integer"),
        ('["Weight=g, lots"]', "routes[0].predicates[0].args.weight", "integer"),
        ("[{name: Weight, args: {group: g, weight: true}}]", "routes[0].predicates[0].args.weight", "not a boolean"),
        ('["Weight=, 1"]', "routes[0].predicates[0].args.weight", "required"),  # empty token dropped
        ('["Weight"]', "routes[0].predicates[0].args.group", "required"),
        ('["Weight=g, 1, 2"]', "routes[0].predicates[0]", "at most 2"),
        ('["Weight=g, 1", "Weight=g, 2"]', "routes[0].predicates[1]", "already has a Weight in group 'g'"),
    ],
)
def test_invalid_weight_config(predicates: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(predicates=predicates))
    assert any(p == path and fragment in m for p, m in issues), issues


def test_a_duplicate_weight_is_refused_by_validation_which_builds_nothing() -> None:
    """The check runs in `validate` (the supervisor's, the admin API's), not in the predicate's build, which only
    workers run: a bad file is refused before anything binds or starts."""
    doc, issues = load_yaml(config_only_route(predicates='["Weight=g, 1", "Weight=g, 2"]'), "routes.yaml")
    assert not issues
    with pytest.raises(ConfigError) as refused:
        validate(doc, load_registry(), Settings())
    assert [(i.path, i.message) for i in refused.value.issues] == [
        ("routes[0].predicates[1]", "route 'r' already has a Weight in group 'g'")
    ]
