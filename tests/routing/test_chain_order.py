"""The order rule of a route's chain (D26): by band first; within a band, the route's YAML order.

A spec's `order` number only names its band: two filters of one band run as the route lists them, whatever their
numbers (AddRequestHeader is 902, SetRequestHeader 907), and a filter may appear more than once.
"""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway, Upstream
from tests.helpers import fetch, one_route


@pytest.mark.parametrize(
    ("filters", "upstream_got"),
    [
        # Set (907) listed first: it sets, then Add (902) appends.
        ('["SetRequestHeader=X-Order,set", "AddRequestHeader=X-Order,added"]', ["set", "added"]),
        # Add listed first: Set then replaces what Add added.
        ('["AddRequestHeader=X-Order,added", "SetRequestHeader=X-Order,set"]', ["set"]),
    ],
)
async def test_within_a_band_the_yaml_order_decides_not_the_order_number(
    upstream: Upstream, start_gateway: StartGateway, filters: str, upstream_got: list[str]
) -> None:
    gw = await start_gateway(one_route(upstream.url, filters))
    reply = await fetch(gw, "/x")
    assert reply.status == 200
    assert reply.upstream_got("X-Order") == upstream_got


async def test_a_filter_listed_twice_runs_twice_in_place(upstream: Upstream, start_gateway: StartGateway) -> None:
    filters = '["AddRequestHeader=X-Order,one", "SetRequestHeader=X-Order,two", "AddRequestHeader=X-Order,three"]'
    gw = await start_gateway(one_route(upstream.url, filters))
    assert (await fetch(gw, "/x")).upstream_got("X-Order") == ["two", "three"]


@pytest.mark.parametrize(
    "filters",
    [
        '["SetRequestHeader=X-Big,{big}", "RequestHeaderSize=100B"]',
        '["RequestHeaderSize=100B", "SetRequestHeader=X-Big,{big}"]',
    ],
)
async def test_across_bands_the_band_decides_not_the_yaml_order(
    upstream: Upstream, start_gateway: StartGateway, filters: str
) -> None:
    # RequestHeaderSize (band 150) runs before SetRequestHeader (band 900) in both YAML orders, so it never sees
    # the large header the rewrite adds and the request passes.
    gw = await start_gateway(one_route(upstream.url, filters.format(big="b" * 200)))
    reply = await fetch(gw, "/x")
    assert reply.status == 200
    assert reply.upstream_got("X-Big") == ["b" * 200]
