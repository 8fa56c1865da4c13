"""SetRequestHostHeader through real requests: the upstream sees the configured Host, variables checked, config."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, one_route


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ('["SetRequestHostHeader=example.org"]', "example.org"),
        ("[{name: SetRequestHostHeader, args: {host: 'api.example.org:8443'}}]", "api.example.org:8443"),
        ("[{name: SetRequestHostHeader, args: {host: '[2001:db8::1]:8080'}}]", "[2001:db8::1]:8080"),
    ],
)
async def test_upstream_sees_the_configured_host(
    upstream: Upstream, start_gateway: StartGateway, filters: str, expected: str
) -> None:
    gw = await start_gateway(one_route(upstream.url, filters))
    reply = await fetch(gw, "/a", headers={"Host": "client.example"})
    assert reply.status == 200
    assert reply.upstream_got("Host") == [expected]
    # X-Forwarded-Host still records what the client asked for.
    assert reply.upstream_got("X-Forwarded-Host") == ["client.example"]


async def test_path_variable_in_host(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["SetRequestHostHeader={tenant}.internal"]', '["Path=/t/{tenant}/**"]')
    )
    assert (await fetch(gw, "/t/acme/orders")).upstream_got("Host") == ["acme.internal"]


@pytest.mark.parametrize("evil", ["a%40b", "a%20b", "a%2Fb", "a:1", "%C3%A9"])
async def test_variable_cannot_make_an_invalid_host(upstream: Upstream, start_gateway: StartGateway, evil: str) -> None:
    gw = await start_gateway(
        one_route(
            upstream.url,
            '["SetRequestHostHeader={tenant}.internal"]',
            '["Path=/t/{tenant}/**"]',
        )
        + "    metadata: {allow-encoded: ['%2F']}\n"
    )
    reply = await fetch(gw, f"/t/{evil}/x")
    assert reply.status == 400, evil
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert upstream.hits == []


async def test_wins_over_preserve_host_header(upstream: Upstream, start_gateway: StartGateway) -> None:
    for filters in (
        '["PreserveHostHeader", "SetRequestHostHeader=set.example"]',
        '["SetRequestHostHeader=set.example", "PreserveHostHeader"]',
    ):
        gw = await start_gateway(one_route(upstream.url, filters))
        assert (await fetch(gw, "/", headers={"Host": "client.example"})).upstream_got("Host") == ["set.example"]


async def test_a_later_set_request_host_header_wins(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["SetRequestHostHeader=first.example", "SetRequestHostHeader=second.example"]')
    )
    assert (await fetch(gw, "/")).upstream_got("Host") == ["second.example"]


ARGS = "routes[0].filters[0].args"


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ('["SetRequestHostHeader=exa mple.org"]', "not a host[:port]"),
        ('["SetRequestHostHeader=example.org:99999"]', "not a host[:port]"),
        ('["SetRequestHostHeader=example.org:"]', "not a host[:port]"),
        ("[{name: SetRequestHostHeader, args: {host: 'http://example.org'}}]", "not a host[:port]"),
        ('["SetRequestHostHeader=user@example.org"]', "not a host[:port]"),
        ('["SetRequestHostHeader=example.org/path"]', "not a host[:port]"),
        ("[{name: SetRequestHostHeader, args: {host: '[::1'}}]", "not a host[:port]"),
        ("[{name: SetRequestHostHeader, args: {host: '{sub}.a..b'}}]", "not a host[:port]"),
        ('["SetRequestHostHeader"]', "required"),
    ],
)
def test_invalid_config(filters: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == f"{ARGS}.host" and fragment in m for p, m in issues), issues


def test_extra_shortcut_argument_is_refused() -> None:
    issues = config_issues(config_only_route(filters='["SetRequestHostHeader=a.example, b.example"]'))
    assert any(p == "routes[0].filters[0]" and "at most 1" in m for p, m in issues), issues
