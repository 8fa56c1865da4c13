"""SetResponseHeader through real requests: replacing the upstream's values, adding, variables, no://op, config."""

from __future__ import annotations

import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.conftest import StartGateway, StartUpstream, Upstream
from tests.helpers import app_serving, config_issues, config_only_route, fetch, one_route


async def echoing_headers(start_upstream: StartUpstream) -> Upstream:
    """An upstream answering with each query parameter as a response header, repeats and order kept."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="hello", headers=CIMultiDict(request.query.items()))

    return await start_upstream(app_serving("/{tail:.*}", handler))


async def test_replaces_every_upstream_value(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    up = await echoing_headers(start_upstream)
    gw = await start_gateway(one_route(up.url, '["SetResponseHeader=X-Response-Red, Blue"]'))
    reply = await fetch(gw, "/a?X-Response-Red=1234&x-response-red=5678&X-Other=o")
    assert reply.status == 200
    assert reply.values("X-Response-Red") == [b"Blue"]
    assert reply.values("X-Other") == [b"o"]
    assert reply.body == b"hello"


async def test_adds_when_absent_with_variables(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["SetResponseHeader=foo, bar-{segment}"]', '["Host={segment}.myhost.org"]')
    )
    assert (await fetch(gw, "/", headers={"Host": "www.myhost.org"})).values("foo") == [b"bar-www"]


async def test_expanded_form_on_a_no_op_route(start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route("no://op", "[{name: SetResponseHeader, args: {name: X-Local, value: 'a, b'}}]", '["Path=/x"]')
    )
    reply = await fetch(gw, "/x")
    assert reply.status == 200
    assert reply.values("X-Local") == [b"a, b"]


async def test_applies_to_upstream_error_statuses(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["SetResponseHeader=X-Always, yes"]'))
    reply = await fetch(gw, "/status/503")
    assert reply.status == 503
    assert reply.values("X-Always") == [b"yes"]


async def test_path_variable_cannot_split_the_response(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["SetResponseHeader=X-Red, {segment}"]', '["Path=/red/{segment}"]')
    )
    reply = await fetch(gw, "/red/a%0D%0ASet-Cookie:%20x=1")
    assert reply.status == 400
    assert reply.values("Set-Cookie") == []
    assert (await fetch(gw, "/red/fine")).values("X-Red") == [b"fine"]


ARGS = "routes[0].filters[0].args"


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ('["SetResponseHeader=Content-Length, 0"]', f"{ARGS}.name", "managed by the gateway"),
        ('["SetResponseHeader=Transfer-Encoding, chunked"]', f"{ARGS}.name", "managed by the gateway"),
        ('["SetResponseHeader=Connection, close"]', f"{ARGS}.name", "managed by the gateway"),
        ('["SetResponseHeader=X:A, v"]', f"{ARGS}.name", "pattern"),
        ('["SetResponseHeader=X-A"]', f"{ARGS}.value", "required"),
        ('["SetResponseHeader=X-A, v, w"]', "routes[0].filters[0]", "at most 2"),
        ('[{name: SetResponseHeader, args: {name: X-A, value: "a\\r\\nb"}}]', f"{ARGS}.value", "control character"),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues
