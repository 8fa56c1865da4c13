"""RemoveRequestHeader through real requests: every value goes, the gateway's own headers survive, config."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, converse, echoed, echoed_header, fetch, one_route


async def test_removes_every_value_case_insensitively(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["RemoveRequestHeader=X-Request-Foo"]'))
    # A raw request: the aiohttp client would fold repeated fields into one.
    head = "GET /a HTTP/1.1\r\nHost: x\r\nX-Request-Foo: 1\r\nX-Keep: k\r\nx-request-foo: 2\r\n"
    seen = echoed((await converse(gw.port, (head + "Connection: close\r\n\r\n").encode())).data)
    assert echoed_header(seen, "X-Request-Foo") == []
    assert echoed_header(seen, "X-Keep") == ["k"]


async def test_absent_header_is_a_no_op(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, "[{name: RemoveRequestHeader, args: {name: Cookie}}]"))
    reply = await fetch(gw, "/a")
    assert reply.status == 200
    assert reply.upstream_got("Cookie") == []


async def test_cookie_is_kept_from_the_upstream(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["RemoveRequestHeader=Cookie"]'))
    assert (await fetch(gw, "/", headers={"Cookie": "session=secret"})).upstream_got("Cookie") == []


async def test_gateway_written_headers_are_not_removable(upstream: Upstream, start_gateway: StartGateway) -> None:
    # Host and X-Forwarded-* are written by the forwarder after every filter has run: removing them in a filter
    # only removes what the client sent.
    gw = await start_gateway(
        one_route(upstream.url, '["RemoveRequestHeader=Host", "RemoveRequestHeader=X-Forwarded-For"]')
    )
    reply = await fetch(gw, "/")
    assert reply.upstream_got("Host") == [f"127.0.0.1:{upstream.port}"]
    assert reply.upstream_got("X-Forwarded-For") == ["127.0.0.1"]


async def test_removing_host_with_preserve_host_falls_back_to_the_upstream_authority(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(one_route(upstream.url, '["PreserveHostHeader", "RemoveRequestHeader=Host"]'))
    reply = await fetch(gw, "/", headers={"Host": "shop.example.org"})
    assert reply.upstream_got("Host") == [f"127.0.0.1:{upstream.port}"]


ARGS = "routes[0].filters[0].args"


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ('["RemoveRequestHeader"]', f"{ARGS}.name", "required"),
        ('["RemoveRequestHeader=X A"]', f"{ARGS}.name", "pattern"),
        ('["RemoveRequestHeader=X-A, X-B"]', "routes[0].filters[0]", "at most 1"),
        ("[{name: RemoveRequestHeader, args: {name: [X-A]}}]", f"{ARGS}.name", "string"),
        ("[{name: RemoveRequestHeader, args: {names: X-A}}]", f"{ARGS}.names", "unknown argument"),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues
