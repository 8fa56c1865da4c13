"""Header predicate through real requests: presence only, full-match regex, several values, config errors."""

from __future__ import annotations

import asyncio
import json

import pytest
from multidict import CIMultiDict

from tests.conftest import StartGateway, Upstream, raw_exchange, status_of
from tests.helpers import config_issues, config_only_route, fetch, route


async def test_presence_only(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Header=X-Canary"]'))
    reply = await fetch(gw, "/a", headers={"X-Canary": "anything at all"})
    assert reply.status == 200
    assert reply.upstream_got("X-Canary") == ["anything at all"]  # the predicate does not consume the header
    assert (await fetch(gw, "/a", headers={"x-canary": "1"})).status == 200  # names are case-insensitive
    assert (await fetch(gw, "/a", headers={"X-Canary": ""})).status == 200  # present, though empty
    assert (await fetch(gw, "/a")).status == 404
    assert (await fetch(gw, "/a", headers={"X-Canary-Not": "1"})).status == 404


async def test_regex_must_match_the_whole_value(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, "['Header=X-Request-Id, \\d+']"))
    assert (await fetch(gw, "/a", headers={"X-Request-Id": "12345"})).status == 200
    for partial in ("abc123", "123abc", "12 34", ""):
        assert (await fetch(gw, "/a", headers={"X-Request-Id": partial})).status == 404, partial
    assert (await fetch(gw, "/a")).status == 404


async def test_surrounding_whitespace_is_not_part_of_the_value(upstream: Upstream, start_gateway: StartGateway) -> None:
    # RFC 9112 §5: optional whitespace before and after a field value is excluded from the value.
    # (X-Count, not SCG's X-Request-Id example: the gateway forwards its own request id over a client's.)
    gw = await start_gateway("routes:" + route(upstream, "['Header=X-Count, \\d+']"))
    raw = await raw_exchange(gw.port, b"GET /a HTTP/1.1\r\nHost: x\r\nX-Count: \t 42 \t\r\nConnection: close\r\n\r\n")
    assert status_of(raw) == 200, raw[:200]
    seen = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert [v for k, v in seen["headers"] if k.lower() == "x-count"] == ["42"]


async def test_alternation_is_anchored_as_a_whole(upstream: Upstream, start_gateway: StartGateway) -> None:
    # Java's matches() anchors the whole alternation; a naive "^a|b$" would accept "production" here.
    gw = await start_gateway(
        f"""
routes:
  - id: env
    uri: {upstream.url}
    predicates:
      - name: Header
        args: {{header: X-Env, regexp: "prod|staging"}}
"""
    )
    assert (await fetch(gw, "/", headers={"X-Env": "prod"})).status == 200
    assert (await fetch(gw, "/", headers={"X-Env": "staging"})).status == 200
    assert (await fetch(gw, "/", headers={"X-Env": "production"})).status == 404
    assert (await fetch(gw, "/", headers={"X-Env": "pre-staging"})).status == 404
    assert (await fetch(gw, "/", headers={"X-Env": "Prod"})).status == 404  # case-sensitive, as in Java


async def test_one_of_several_values_is_enough(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, "['Header=X-Role, admin']"))
    two = CIMultiDict([("X-Role", "user"), ("X-Role", "admin")])
    reply = await fetch(gw, "/", headers=two)
    assert reply.status == 200
    assert reply.upstream_got("X-Role") == ["user", "admin"]
    assert (await fetch(gw, "/", headers=CIMultiDict([("X-Role", "user"), ("X-Role", "guest")]))).status == 404


async def test_header_routes_a_canary(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:"
        + route(upstream, "['Header=X-Version, v2(\\.\\d+)?']", '["AddRequestHeader=X-Route, canary"]', rid="canary")
        + route(upstream, '["Path=/**"]', '["AddRequestHeader=X-Route, stable"]', rid="stable", order=1)
    )
    assert (await fetch(gw, "/x", headers={"X-Version": "v2.1"})).upstream_got("X-Route") == ["canary"]
    assert (await fetch(gw, "/x", headers={"X-Version": "v2"})).upstream_got("X-Route") == ["canary"]
    assert (await fetch(gw, "/x", headers={"X-Version": "v2.1-rc"})).upstream_got("X-Route") == ["stable"]
    assert (await fetch(gw, "/x")).upstream_got("X-Route") == ["stable"]


async def test_expanded_presence_only_and_indexed_style(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: presence
    uri: {upstream.url}
    predicates:
      - {{name: Header, args: {{header: X-Debug}}}}
      - Path=/p/**
  - id: regex
    uri: {upstream.url}
    predicates:
      - name: Header
        args:
          header: X-Tenant
          regexp: "[a-z]{{3,8}}"
      - Path=/r/**
"""
    )
    assert (await fetch(gw, "/p/1", headers={"X-Debug": "on"})).status == 200
    assert (await fetch(gw, "/p/1")).status == 404
    assert (await fetch(gw, "/r/1", headers={"X-Tenant": "acme"})).status == 200
    assert (await fetch(gw, "/r/1", headers={"X-Tenant": "ab"})).status == 404
    assert (await fetch(gw, "/r/1", headers={"X-Tenant": "acme1"})).status == 404


@pytest.mark.parametrize(
    ("predicates", "path", "fragment"),
    [
        ('["Header=X-Id, [unclosed"]', "routes[0].predicates[0].args.regexp", "invalid regular expression"),
        ("['Header=X-Id, (?P<x>a']", "routes[0].predicates[0].args.regexp", "invalid regular expression"),
        ('["Header=X-Id, *oops"]', "routes[0].predicates[0].args.regexp", "invalid regular expression"),
        ('["Header=X Id, a"]', "routes[0].predicates[0].args.header", "pattern"),
        ('["Header"]', "routes[0].predicates[0].args.header", "required"),
        ('["Header=X-Id, a, b"]', "routes[0].predicates[0]", "at most 2"),
        ("[{name: Header, args: {header: X-Id, regex: a}}]", "routes[0].predicates[0].args.regex", "unknown argument"),
        ("[{name: Header, args: {header: [X-Id]}}]", "routes[0].predicates[0].args.header", "string"),
        ("[{name: Header, args: {header: X-Id, regexp: 5}}]", "routes[0].predicates[0].args.regexp", "string"),
    ],
)
def test_invalid_header_config(predicates: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(predicates=predicates))
    assert any(p == path and fragment in m for p, m in issues), issues


# -- hostile input: the regex runs on RE2 -------------------------------------------------------------------------

HOSTILE_GUARD = 10.0  # seconds: a guard against a hang (a backtracking engine would need years), not a benchmark


@pytest.mark.parametrize("regexp", ["(a+)+$", "(a|aa)+b", "(a|a?)+c", "(.*a){12}"])
async def test_catastrophic_backtracking_pattern_answers_promptly(
    regexp: str, upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: r
    uri: {upstream.url}
    predicates:
      - name: Header
        args: {{header: X-Evil, regexp: "{regexp}"}}
"""
    )
    hostile = "a" * 20000 + "!"  # the classic input: a long run that almost matches, then fails at the end
    assert (await fetch(gw, "/", headers={"X-Evil": hostile}, guard=HOSTILE_GUARD)).status == 404
    assert (await fetch(gw, "/", headers={"X-Evil": "a" * 200}, guard=HOSTILE_GUARD)).status in (200, 404)


async def test_hostile_header_does_not_stall_other_requests(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Header=X-Evil, (a+)+b"]'))
    hostile = [fetch(gw, "/", headers={"X-Evil": "a" * 20000}, guard=HOSTILE_GUARD) for _ in range(8)]
    replies = await asyncio.gather(*hostile, fetch(gw, "/", headers={"X-Evil": "aaab"}, guard=HOSTILE_GUARD))
    assert [r.status for r in replies] == [404] * 8 + [200]


@pytest.mark.parametrize(
    ("regexp", "fragment"),
    [
        ("(a)\\\\1", "backreferences"),  # needs backtracking: refused at load, with the reason
        ("(?=a)a", "lookaround"),
        ("a++", "possessive"),
    ],
)
def test_patterns_needing_backtracking_are_refused(regexp: str, fragment: str) -> None:
    issues = config_issues(config_only_route(predicates=f'[{{name: Header, args: {{header: X, regexp: "{regexp}"}}}}]'))
    assert any(p == "routes[0].predicates[0].args.regexp" and fragment in m for p, m in issues), issues


async def test_java_syntax_named_group(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, "['Header=X-Version, (?<major>\\d+)\\.(?<minor>\\d+)']"))
    assert (await fetch(gw, "/", headers={"X-Version": "2.10"})).status == 200
    assert (await fetch(gw, "/", headers={"X-Version": "2."})).status == 404
