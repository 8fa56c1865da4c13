"""Query predicate through real requests: presence, full-match regex, Spring's decoding, several values, config."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, route


async def test_presence_only(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Query=green"]'))
    for query in ("green", "green=", "green=x", "a=1&green", "green&green=2", "gr%65en=1", "x=1&&green=1"):
        reply = await fetch(gw, f"/a?{query}")
        assert reply.status == 200, query
        assert reply.seen()["query"] == query  # the predicate does not touch the query it forwards
    for query in ("", "greenish=1", "Green=1", "x=green", "=green"):
        assert (await fetch(gw, f"/a?{query}")).status == 404, query
    assert (await fetch(gw, "/a")).status == 404


async def test_regex_must_match_a_whole_value(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Query=red, gree."]'))
    for query in ("red=green", "red=greet", "red=1&red=green", "red=green&red=", "x=1&red=gree%21"):
        assert (await fetch(gw, f"/a?{query}")).status == 200, query
    for query in ("red=gre", "red=greens", "red=xgreen", "red", "red=", "green=green", "red=gr+een"):
        assert (await fetch(gw, f"/a?{query}")).status == 404, query


async def test_names_and_values_are_decoded_as_spring_does(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: r
    uri: {upstream.url}
    predicates:
      - name: Query
        args: {{param: "first name", regexp: "Ann[ +]Lee|été"}}
"""
    )
    for query in ("first+name=Ann+Lee", "first%20name=Ann%20Lee", "first+name=Ann%2BLee", "first+name=%C3%A9t%C3%A9"):
        assert (await fetch(gw, f"/?{query}")).status == 200, query
    for query in ("first+name=Ann%25Lee", "firstname=Ann+Lee", "first+name=%E9t%E9", "first+name=%zz"):
        assert (await fetch(gw, f"/?{query}")).status == 404, query


async def test_expanded_form_and_empty_regexp_means_presence(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: presence
    uri: {upstream.url}
    predicates:
      - {{name: Query, args: {{param: debug, regexp: ""}}}}
    filters: ["AddResponseHeader=X-Route, presence"]
  - id: version
    uri: {upstream.url}
    order: 1
    predicates:
      - name: Query
        args:
          param: v
          regexp: "[0-9]+"
    filters: ["AddResponseHeader=X-Route, version"]
"""
    )
    assert (await fetch(gw, "/?debug")).values("X-Route") == [b"presence"]
    assert (await fetch(gw, "/?v=12")).values("X-Route") == [b"version"]
    assert (await fetch(gw, "/?v=1.2")).status == 404
    assert (await fetch(gw, "/?v=12&debug=0")).values("X-Route") == [b"presence"]  # order decides


async def test_query_routes_a_canary(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:"
        + route(upstream, '["Query=canary, true|1", "Path=/api/**"]', '["AddRequestHeader=X-Side, canary"]', rid="c")
        + route(upstream, '["Path=/api/**"]', '["AddRequestHeader=X-Side, stable"]', rid="s", order=1)
    )
    assert (await fetch(gw, "/api/x?canary=true")).upstream_got("X-Side") == ["canary"]
    assert (await fetch(gw, "/api/x?canary=1")).upstream_got("X-Side") == ["canary"]
    assert (await fetch(gw, "/api/x?canary=truest")).upstream_got("X-Side") == ["stable"]
    assert (await fetch(gw, "/api/x")).upstream_got("X-Side") == ["stable"]


@pytest.mark.parametrize(
    ("predicates", "path", "fragment"),
    [
        ('["Query"]', "routes[0].predicates[0].args.param", "required"),
        ('["Query=a, (unclosed"]', "routes[0].predicates[0].args.regexp", "invalid regular expression"),
        ("['Query=a, (x)\\1']", "routes[0].predicates[0].args.regexp", "RE2"),  # a backreference needs backtracking
        ('["Query=a, (?=x)x"]', "routes[0].predicates[0].args.regexp", "invalid regular expression"),
        ('["Query=a, b, c"]', "routes[0].predicates[0]", "at most 2"),
        ("[{name: Query, args: {param: a, regex: b}}]", "routes[0].predicates[0].args.regex", "unknown argument"),
        ("[{name: Query, args: {param: [a]}}]", "routes[0].predicates[0].args.param", "string"),
        ("[{name: Query, args: {param: ''}}]", "routes[0].predicates[0].args.param", "at least 1"),
    ],
)
def test_invalid_query_config(predicates: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(predicates=predicates))
    assert any(p == path and fragment in m for p, m in issues), issues
