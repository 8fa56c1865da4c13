"""MapRequestHeader through real requests: values copied and appended, absent source, Host as source, config."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, converse, echoed, echoed_header, fetch, one_route


async def test_copies_values_appending_to_existing(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["MapRequestHeader=Blue, X-Request-Red"]'))
    # A raw request: the aiohttp client would fold repeated fields into one.
    head = "GET /a HTTP/1.1\r\nHost: x\r\nBlue: b1\r\nX-Request-Red: r0\r\nblue: b2\r\nConnection: close\r\n\r\n"
    seen = echoed((await converse(gw.port, head.encode())).data)
    assert echoed_header(seen, "X-Request-Red") == ["r0", "b1", "b2"]
    assert echoed_header(seen, "Blue") == ["b1", "b2"]  # the source stays


async def test_absent_source_changes_nothing(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["MapRequestHeader=Blue, X-Request-Red"]'))
    assert (await fetch(gw, "/a")).upstream_got("X-Request-Red") == []


async def test_client_host_can_be_mapped(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, "[{name: MapRequestHeader, args: {fromHeader: Host, toHeader: X-Original-Host}}]")
    )
    reply = await fetch(gw, "/", headers={"Host": "shop.example.org:8443"})
    assert reply.upstream_got("X-Original-Host") == ["shop.example.org:8443"]
    assert reply.upstream_got("Host") == [f"127.0.0.1:{upstream.port}"]


async def test_sees_headers_set_by_earlier_filters(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["AddRequestHeader=X-From, added", "MapRequestHeader=X-From, X-To"]')
    )
    assert (await fetch(gw, "/")).upstream_got("X-To") == ["added"]


ARGS = "routes[0].filters[0].args"


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ('["MapRequestHeader=Blue, Host"]', f"{ARGS}.toHeader", "managed by the gateway"),
        ('["MapRequestHeader=Blue, Content-Length"]', f"{ARGS}.toHeader", "managed by the gateway"),
        ('["MapRequestHeader=Blue, blue"]', ARGS, "the same header"),
        ('["MapRequestHeader=Blue"]', f"{ARGS}.toHeader", "required"),
        ('["MapRequestHeader=Bl ue, X-Red"]', f"{ARGS}.fromHeader", "pattern"),
        ('["MapRequestHeader=Blue, X-Red, X"]', "routes[0].filters[0]", "at most 2"),
        ("[{name: MapRequestHeader, args: {from: Blue, to: X-Red}}]", f"{ARGS}.from", "unknown argument"),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues
