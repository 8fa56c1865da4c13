"""SetRequestHeader through real requests: replacing every value, adding, variables, Host refused, config."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, converse, echoed, echoed_header, fetch, one_route


async def test_replaces_every_client_value(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["SetRequestHeader=X-Request-Red, Blue"]'))
    # A raw request: the aiohttp client would fold repeated fields into one.
    head = "GET /a HTTP/1.1\r\nHost: x\r\nX-Request-Red: 1234\r\nX-Other: kept\r\nx-request-red: 5678\r\n"
    seen = echoed((await converse(gw.port, (head + "Connection: close\r\n\r\n").encode())).data)
    assert echoed_header(seen, "X-Request-Red") == ["Blue"]
    assert echoed_header(seen, "X-Other") == ["kept"]


async def test_adds_when_absent(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["SetRequestHeader=X-Request-Red, Blue"]'))
    assert (await fetch(gw, "/a")).upstream_got("X-Request-Red") == ["Blue"]


async def test_host_variable_in_value(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["SetRequestHeader=foo, bar-{segment}"]', '["Host={segment}.myhost.org"]')
    )
    reply = await fetch(gw, "/", headers={"Host": "www.myhost.org", "foo": "client"})
    assert reply.upstream_got("foo") == ["bar-www"]


async def test_expanded_form(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(
            upstream.url,
            "[{name: SetRequestHeader, args: {name: X-Seg, value: 'v-{segment}, and more'}}]",
            '["Path=/s/{segment}"]',
        )
    )
    assert (await fetch(gw, "/s/one", headers={"X-Seg": "x"})).upstream_got("X-Seg") == ["v-one, and more"]


async def test_later_filter_sees_the_set_value(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["SetRequestHeader=X-A, first", "AddRequestHeader=X-A, second"]'))
    assert (await fetch(gw, "/", headers={"X-A": "client"})).upstream_got("X-A") == ["first", "second"]


async def test_path_variable_cannot_inject_a_header(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["SetRequestHeader=X-Red, {segment}"]', '["Path=/red/{segment}"]')
    )
    reply = await fetch(gw, "/red/a%0D%0AX-Injected:%201")
    assert reply.status == 400
    assert upstream.hits == []


ARGS = "routes[0].filters[0].args"


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ('["SetRequestHeader=Host, evil.example"]', f"{ARGS}.name", "use SetRequestHostHeader"),
        ('["SetRequestHeader=Content-Length, 0"]', f"{ARGS}.name", "managed by the gateway"),
        ('["SetRequestHeader=Transfer-Encoding, chunked"]', f"{ARGS}.name", "managed by the gateway"),
        ('["SetRequestHeader=X A, v"]', f"{ARGS}.name", "pattern"),
        ('["SetRequestHeader=X-A"]', f"{ARGS}.value", "required"),
        ('["SetRequestHeader=X-A, v, w"]', "routes[0].filters[0]", "at most 2"),
        ('[{name: SetRequestHeader, args: {name: X-A, value: "a\\nb"}}]', f"{ARGS}.value", "control character"),
        (
            "[{name: SetRequestHeader, args: {name: X-A, value: v, override: true}}]",
            f"{ARGS}.override",
            "unknown argument",
        ),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues
