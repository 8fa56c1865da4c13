"""StripPrefix through real requests: parts 0/1/2/too many, trailing slash, query, X-Forwarded-Prefix, config."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, one_route


def stripping(upstream: Upstream, filters: str, pattern: str = "/**") -> str:
    """A routes.yaml with the one route `strip` to `upstream`, matching Path=`pattern`."""
    return one_route(upstream.url, filters, f'["Path={pattern}"]', rid="strip")


@pytest.mark.parametrize(
    ("parts", "sent", "forwarded", "prefix"),
    [
        (0, "/a/b", "/a/b", None),
        (1, "/api/things/1", "/things/1", "/api"),
        (2, "/name/blue/red", "/red", "/name/blue"),
        (1, "/api/things/", "/things/", "/api"),  # a trailing slash is kept
        (2, "/a/b/c/", "/c/", "/a/b"),
        (1, "/a/b/", "/b/", "/a"),
        (1, "/a/a", "/a", "/a"),  # the removed part equals what is left
        (2, "/a/b", "/", "/a/b"),  # everything stripped: "/"
        (2, "/a/b/", "/", "/a/b"),
        (3, "/a/b", "/", "/a/b"),  # more parts than segments: "/" (SCG), prefix = the whole original path
        (5, "/only", "/", "/only"),
        (1, "/", "/", None),
        (1, "/x%20y/z%2Bw", "/z%2Bw", "/x%20y"),  # escapes travel as received
    ],
)
async def test_strip_prefix_shortcut(
    upstream: Upstream, start_gateway: StartGateway, parts: int, sent: str, forwarded: str, prefix: str | None
) -> None:
    gw = await start_gateway(stripping(upstream, f"[StripPrefix={parts}]"))
    reply = await fetch(gw, sent)
    assert reply.status == 200
    assert reply.seen()["path"] == forwarded
    assert reply.upstream_got("X-Forwarded-Prefix") == ([] if prefix is None else [prefix])


async def test_query_survives_stripping(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(stripping(upstream, "[StripPrefix=1]"))
    reply = await fetch(gw, "/api/search?q=a%2Fb&n=1")
    assert reply.seen()["path"] == "/search"
    assert reply.seen()["query"] == "q=a%2Fb&n=1"


async def test_default_parts_is_one(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        stripping(upstream, "[{name: StripPrefix, args: {}}]")
        + f"""  - id: bare
    uri: {upstream.url}
    order: -1
    predicates: ["Path=/bare/**"]
    filters: [StripPrefix, "AddRequestHeader=X-Route, bare"]
"""
    )
    assert (await fetch(gw, "/one/two")).seen()["path"] == "/two"
    bare = await fetch(gw, "/bare/x")
    assert bare.seen()["path"] == "/x"
    assert bare.upstream_got("X-Route") == ["bare"]


async def test_expanded_form(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(stripping(upstream, "[{name: StripPrefix, args: {parts: 2}}]"))
    reply = await fetch(gw, "/name/blue/red/x")
    assert reply.seen()["path"] == "/red/x"
    assert reply.upstream_got("X-Forwarded-Prefix") == ["/name/blue"]


async def test_string_number_in_expanded_form(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(stripping(upstream, '[{name: StripPrefix, args: {parts: "2"}}]'))
    assert (await fetch(gw, "/a/b/c")).seen()["path"] == "/c"


async def test_listed_twice_strips_twice(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(stripping(upstream, "[StripPrefix=1, StripPrefix=1]"))
    reply = await fetch(gw, "/a/b/c/d")
    assert reply.seen()["path"] == "/c/d"
    assert reply.upstream_got("X-Forwarded-Prefix") == ["/a/b"]


async def test_default_filter_and_route_filter_both_strip(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
default-filters: [StripPrefix=1]
routes:
  - id: extra
    uri: {upstream.url}
    predicates: ["Path=/x/**"]
    filters: [StripPrefix=1]
  - id: plain
    uri: {upstream.url}
    predicates: ["Path=/y/**"]
"""
    )
    assert (await fetch(gw, "/x/1/2/3")).seen()["path"] == "/2/3"
    assert (await fetch(gw, "/y/1/2/3")).seen()["path"] == "/1/2/3"


async def test_matching_uses_the_path_before_stripping(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(stripping(upstream, '[StripPrefix=1, "AddRequestHeader=X-Svc, {svc}"]', "/api/{svc}/**"))
    reply = await fetch(gw, "/api/orders/7")
    assert reply.seen()["path"] == "/orders/7"
    assert reply.upstream_got("X-Svc") == ["orders"]
    assert (await fetch(gw, "/orders/7")).status == 404


async def test_client_supplied_forwarded_prefix_is_replaced(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(stripping(upstream, "[StripPrefix=1]"))
    reply = await fetch(gw, "/api/x", headers={"X-Forwarded-Prefix": "/evil"})
    assert reply.upstream_got("X-Forwarded-Prefix") == ["/api"]
    unstripped = await start_gateway(stripping(upstream, "[StripPrefix=0]"))
    assert (await fetch(unstripped, "/api/x", headers={"X-Forwarded-Prefix": "/evil"})).upstream_got(
        "X-Forwarded-Prefix"
    ) == []


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ("[StripPrefix=-1]", "routes[0].filters[0].args.parts", "greater than or equal to 0"),
        ("[StripPrefix=abc]", "routes[0].filters[0].args.parts", "valid integer"),
        ("[StripPrefix=1.5]", "routes[0].filters[0].args.parts", "integer"),
        ("[StripPrefix=100000]", "routes[0].filters[0].args.parts", "less than or equal"),
        ('["StripPrefix=1,2"]', "routes[0].filters[0]", "at most 1"),
        ("[{name: StripPrefix, args: {parts: 1, bogus: 2}}]", "routes[0].filters[0].args.bogus", "unknown argument"),
        ("[{name: StripPrefix, args: {parts: [1]}}]", "routes[0].filters[0].args.parts", "integer"),
        # YAML `true` is not a number of segments (pydantic's lax mode would turn it into 1).
        ("[{name: StripPrefix, args: {parts: true}}]", "routes[0].filters[0].args.parts", "integer"),
        ("[{name: StripPrefix, args: 2}]", "routes[0].filters[0].args", "mapping"),
        ("[{name: StripPrefix, parts: 2}]", "routes[0].filters[0]", "unknown keys"),
        ("[StripPrefixes=1]", "routes[0].filters[0]", "did you mean 'StripPrefix'"),
    ],
)
def test_invalid_strip_prefix_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues


def test_every_error_in_a_file_is_reported() -> None:
    text = config_only_route(filters="[StripPrefix=-1, StripPrefix=x]") + "default-filters: [StripPrefix=-2]\n"
    paths = sorted(p for p, _ in config_issues(text))
    assert paths == [
        "default-filters[0].args.parts",
        "routes[0].filters[0].args.parts",
        "routes[0].filters[1].args.parts",
    ]
