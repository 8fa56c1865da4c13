"""TeamTag's own tests, as a team writes them in its repository: `gateway.api` and `gateway.testing` only.

Run with `pytest` in this directory once the gateway and this package are installed (`pip install -e .`).
"""

from __future__ import annotations

import pytest
from sluicegate_example.team_tag import SPEC

from gateway.api import Headers, Response, UpstreamTimeout
from gateway.testing import (
    BuildError,
    ScriptedUpstream,
    build_filter,
    check_contract,
    echo_upstream,
    make_exchange,
    metric_value,
    running_gateway,
)


async def test_team_tag_passes_the_plugin_contract() -> None:
    await check_contract(SPEC)


@pytest.mark.parametrize("entry", ["TeamTag=payments", {"name": "TeamTag", "args": {"team": "payments"}}])
async def test_sends_the_team_upstream_and_echoes_it_to_the_client(entry: str | dict[str, object]) -> None:
    upstream = ScriptedUpstream(Response(201, Headers([("Content-Type", "application/json")]), b"{}"))
    response = await build_filter(entry)(make_exchange("POST", "/orders", body=b"{}"), upstream)
    assert upstream.calls == 1
    assert upstream.last.header("X-Team") == ["payments"]
    assert response.status == 201 and response.headers.get("X-Team-Served") == "payments"


async def test_counts_its_calls_with_a_metric_from_the_factory() -> None:
    team_tag = build_filter("TeamTag=billing", route_id="billing-api")
    series = {"route": "billing-api", "team": "billing"}
    before = metric_value("gateway_filter_team_tag_calls_total", **series)
    for _ in range(3):
        await team_tag(make_exchange(), ScriptedUpstream())
    assert metric_value("gateway_filter_team_tag_calls_total", **series) == before + 3


async def test_echo_false_keeps_the_team_from_the_client() -> None:
    upstream = ScriptedUpstream()
    response = await build_filter("TeamTag=payments,false")(make_exchange(), upstream)
    assert upstream.last.header("X-Team") == ["payments"]
    assert response.headers.get("X-Team-Served") is None


async def test_a_team_header_from_the_client_is_replaced_not_added_to() -> None:
    upstream = ScriptedUpstream()
    await build_filter("TeamTag=payments")(make_exchange(headers={"X-Team": "admins"}), upstream)
    assert upstream.last.header("X-Team") == ["payments"]


async def test_an_upstream_error_passes_through_untouched() -> None:
    upstream = ScriptedUpstream(UpstreamTimeout())
    with pytest.raises(UpstreamTimeout):
        await build_filter("TeamTag=payments")(make_exchange(), upstream)


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ("TeamTag=Payments!", "filters[0].args.team"),
        ("TeamTag", "filters[0].args.team"),
        ({"name": "TeamTag", "args": {"team": "payments", "colour": "red"}}, "filters[0].args.colour"),
    ],
)
def test_a_bad_config_is_refused_where_it_was_written(entry: str | dict[str, object], where: str) -> None:
    with pytest.raises(BuildError) as caught:
        build_filter(entry)
    assert [path for path, _ in caught.value.problems] == [where]


async def test_routes_through_a_real_gateway() -> None:
    async with echo_upstream() as upstream:
        route = {"id": "team", "uri": upstream.url, "predicates": ["Path=/t/**"], "filters": ["TeamTag=payments"]}
        async with running_gateway([route]) as gateway:
            reply = await gateway.get("/t/x")
    assert reply.status == 200
    assert reply.upstream_got("X-Team") == ["payments"]
    assert reply.headers.get("X-Team-Served") == "payments"
