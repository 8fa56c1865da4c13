"""PrefixPath through real requests: prefixing, trailing slashes, variables and their encoding, config."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, one_route


@pytest.mark.parametrize(
    ("prefix", "sent", "forwarded"),
    [
        ("/mypath", "/hello", "/mypath/hello"),
        ("/mypath", "/", "/mypath/"),
        ("/mypath", "/a/b/", "/mypath/a/b/"),
        ("/mypath/", "/hello", "/mypath/hello"),  # a trailing slash never doubles the joint
        ("/a/b", "/x%20y", "/a/b/x%20y"),  # the request's escapes travel as received
        ("/v%201", "/x", "/v%201/x"),
        ("/", "/x", "/x"),
    ],
)
async def test_shortcut(
    upstream: Upstream, start_gateway: StartGateway, prefix: str, sent: str, forwarded: str
) -> None:
    gw = await start_gateway(one_route(upstream.url, f'["PrefixPath={prefix}"]'))
    reply = await fetch(gw, sent)
    assert reply.status == 200
    assert reply.seen()["path"] == forwarded
    assert reply.upstream_got("X-Forwarded-Prefix") == []  # nothing was removed


async def test_query_is_kept(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["PrefixPath=/mypath"]'))
    reply = await fetch(gw, "/hello?a=1&b=%2F")
    assert (reply.seen()["path"], reply.seen()["query"]) == ("/mypath/hello", "a=1&b=%2F")


async def test_expanded_form(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, "[{name: PrefixPath, args: {prefix: /svc}}]"))
    assert (await fetch(gw, "/x")).seen()["path"] == "/svc/x"


@pytest.mark.parametrize(
    ("filters", "forwarded"),
    [('["StripPrefix=1", "PrefixPath=/v2"]', "/v2/things"), ('["PrefixPath=/v2", "StripPrefix=1"]', "/api/things")],
)
async def test_with_strip_prefix_in_yaml_order(
    upstream: Upstream, start_gateway: StartGateway, filters: str, forwarded: str
) -> None:
    # Both are in band 900, where filters run in the route's YAML order.
    gw = await start_gateway(one_route(upstream.url, filters))
    assert (await fetch(gw, "/api/things")).seen()["path"] == forwarded


async def test_host_variable(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["PrefixPath=/tenants/{t}"]', '["Host={t}.example.org"]'))
    reply = await fetch(gw, "/orders", headers={"Host": "acme.example.org"})
    assert reply.seen()["path"] == "/tenants/acme/orders"


@pytest.mark.parametrize(
    ("sent", "forwarded"),
    [
        ("/p/blue/x", "/blue/p/blue/x"),
        ("/p/a%20b/x", "/a%20b/p/a%20b/x"),
        ("/p/%3F%23/x", "/%3F%23/p/%3F%23/x"),  # '?' and '#' stay data, never a query or fragment
        ("/p/caf%C3%A9/x", "/caf%C3%A9/p/caf%C3%A9/x"),
    ],
)
async def test_path_variable_is_encoded_as_a_segment(
    upstream: Upstream, start_gateway: StartGateway, sent: str, forwarded: str
) -> None:
    gw = await start_gateway(one_route(upstream.url, '["PrefixPath=/{seg}"]', '["Path=/p/{seg}/**"]'))
    reply = await fetch(gw, sent)
    assert reply.status == 200
    assert reply.seen()["path"] == forwarded


async def test_multi_segment_variable_keeps_separators_but_never_doubles_them(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(one_route(upstream.url, '["PrefixPath=/base/{rest}"]', '["Path=/f/{*rest}"]'))
    assert (await fetch(gw, "/f/a/b")).seen()["path"] == "/base/a/b/f/a/b"


async def test_unknown_variable_stays_escaped(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["PrefixPath=/{nope}"]'))
    assert (await fetch(gw, "/x")).seen()["path"] == "/%7Bnope%7D/x"


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ("[PrefixPath=mypath]", "must start with '/'"),
        ("['PrefixPath=/a?b=1']", "no query"),
        ("[PrefixPath=/a#b]", "no query or fragment"),
        ("[PrefixPath=/a/../b]", "'..'"),
        ("[PrefixPath=/a/./b]", "'.'"),
        ("[PrefixPath=/a/%2e%2E/b]", "'..'"),
        ("[PrefixPath=//a]", "'//'"),
        ("['PrefixPath=/a b']", "percent-encode"),
        ("['PrefixPath=/caf\u00e9']", "percent-encode"),
        ("['PrefixPath=/a\\b']", "percent-encode"),
        ("['PrefixPath=/{*rest}']", "percent-encode"),
        ("['PrefixPath=/%zz']", "%XX"),
    ],
)
def test_invalid_prefix(filters: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == "routes[0].filters[0].args.prefix" and fragment in m for p, m in issues), issues


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ("[PrefixPath]", "routes[0].filters[0].args.prefix", "required"),
        ('["PrefixPath=/a, /b"]', "routes[0].filters[0]", "at most 1"),
        ("[{name: PrefixPath, args: {prefix: ''}}]", "routes[0].filters[0].args.prefix", "at least 1"),
        ("[{name: PrefixPath, args: {prefix: /a, parts: 1}}]", "routes[0].filters[0].args.parts", "unknown argument"),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues


async def test_a_prefix_repeating_a_variable_cannot_build_a_huge_path(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    # The rendered prefix alone would be 8404 characters, over limits.max_request_line (8192): 414.
    gw = await start_gateway(one_route(upstream.url, '["PrefixPath=/{s}/{s}/{s}/{s}"]', '["Path=/x/{s}"]'))
    reply = await fetch(gw, "/x/" + "a" * 2100)
    assert reply.status == 414
    assert upstream.hits == []
