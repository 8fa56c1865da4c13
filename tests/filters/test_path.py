"""Path predicate through real requests: Spring PathPattern syntax, variables, trailing slash, order, 404, config."""

from __future__ import annotations

import json

import pytest

from gateway.errors import ConfigError
from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, route

# -- shortcut form ----------------------------------------------------------------------------------------------


async def test_shortcut_patterns_and_segment_variable_in_request_header(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(
        "routes:" + route(upstream, '["Path=/red/{segment},/blue/**"]', '["AddRequestHeader=X-Red, Blue-{segment}"]')
    )
    red = await fetch(gw, "/red/crimson")
    assert red.status == 200
    assert red.seen()["path"] == "/red/crimson"
    assert red.upstream_got("X-Red") == ["Blue-crimson"]

    blue = await fetch(gw, "/blue/a/b/c?q=1")
    assert blue.status == 200
    assert blue.seen()["path"] == "/blue/a/b/c"
    assert blue.seen()["query"] == "q=1"

    assert (await fetch(gw, "/blue")).status == 200  # `**` also matches zero segments
    assert (await fetch(gw, "/red/a/b")).status == 404  # {segment} is exactly one segment
    assert (await fetch(gw, "/red/")).status == 404  # ... and never empty
    assert (await fetch(gw, "/green/x")).status == 404
    assert (await fetch(gw, "/Red/x")).status == 404  # literals are case-sensitive


async def test_variable_used_in_response_header(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:" + route(upstream, '["Path=/u/{user}/items/{item}"]', '["AddResponseHeader=X-Item, {user}:{item}"]')
    )
    reply = await fetch(gw, "/u/ann/items/7")
    assert reply.status == 200
    assert reply.headers.getall("X-Item") == ["ann:7"]


async def test_variable_is_percent_decoded(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:" + route(upstream, '["Path=/red/{segment}"]', '["AddRequestHeader=X-Red, {segment}"]')
    )
    reply = await fetch(gw, "/red/a%20b%2Bc")
    assert reply.status == 200
    assert reply.seen()["path"] == "/red/a%20b%2Bc"  # forwarded as received (still encoded)
    assert reply.upstream_got("X-Red") == ["a b+c"]


async def test_regex_variable(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:" + route(upstream, "['Path=/items/{id:\\d+}']", '["AddRequestHeader=X-Id, {id}"]')
    )
    ok = await fetch(gw, "/items/42")
    assert ok.status == 200
    assert ok.upstream_got("X-Id") == ["42"]
    assert (await fetch(gw, "/items/4x2")).status == 404  # the regex must match the whole segment
    assert (await fetch(gw, "/items/x42")).status == 404


async def test_capture_the_rest(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:" + route(upstream, '["Path=/files/{*rest}"]', '["AddRequestHeader=X-Rest, rest={rest}"]')
    )
    deep = await fetch(gw, "/files/a/b/c.txt")
    assert deep.status == 200
    assert deep.seen()["path"] == "/files/a/b/c.txt"
    assert deep.upstream_got("X-Rest") == ["rest=/a/b/c.txt"]

    one = await fetch(gw, "/files/x")
    assert one.upstream_got("X-Rest") == ["rest=/x"]

    bare = await fetch(gw, "/files")  # {*rest} matches no remaining segment too, with ""
    assert bare.status == 200
    assert bare.upstream_got("X-Rest") == ["rest="]
    assert (await fetch(gw, "/filesystem")).status == 404


async def test_match_trailing_slash_default_true(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Path=/red/{seg}"]', '["AddRequestHeader=X-Seg, {seg}"]'))
    reply = await fetch(gw, "/red/blue/")
    assert reply.status == 200
    assert reply.seen()["path"] == "/red/blue/"  # the slash is matched, not removed
    assert reply.upstream_got("X-Seg") == ["blue"]
    assert (await fetch(gw, "/red/blue")).status == 200


async def test_match_trailing_slash_false_shortcut(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Path=/red/{seg},false"]'))
    assert (await fetch(gw, "/red/blue")).status == 200
    assert (await fetch(gw, "/red/blue/")).status == 404


async def test_match_trailing_slash_flag_after_several_patterns(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Path=/red/{seg},/green/{seg},false"]'))
    assert (await fetch(gw, "/red/x")).status == 200
    assert (await fetch(gw, "/green/x")).status == 200
    assert (await fetch(gw, "/green/x/")).status == 404


# -- expanded form ----------------------------------------------------------------------------------------------


async def test_expanded_form_with_match_trailing_slash_false(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: expanded
    uri: {upstream.url}
    predicates:
      - name: Path
        args:
          patterns: ["/red/{{segment}}", "/blue/**"]
          matchTrailingSlash: false
    filters:
      - name: AddRequestHeader
        args: {{name: X-Red, value: "Blue-{{segment}}"}}
"""
    )
    red = await fetch(gw, "/red/x")
    assert red.status == 200
    assert red.upstream_got("X-Red") == ["Blue-x"]
    assert (await fetch(gw, "/red/x/")).status == 404
    assert (await fetch(gw, "/blue/a/")).status == 200  # `**` takes the trailing slash itself


async def test_expanded_form_with_indexed_keys_and_single_string(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: indexed
    uri: {upstream.url}
    predicates:
      - name: Path
        args:
          patterns.0: /one/**
          patterns.1: /two/{{x}}
  - id: single
    uri: {upstream.url}
    predicates:
      - name: Path
        args: {{patterns: /three}}
"""
    )
    assert (await fetch(gw, "/one/a/b")).status == 200
    assert (await fetch(gw, "/two/a")).status == 200
    assert (await fetch(gw, "/three")).status == 200
    assert (await fetch(gw, "/four")).status == 404


# -- order, first match wins, no route --------------------------------------------------------------------------


async def test_first_match_wins_in_file_order(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:"
        + route(upstream, '["Path=/api/**"]', '["AddRequestHeader=X-Route, general"]', rid="general")
        + route(upstream, '["Path=/api/special/**"]', '["AddRequestHeader=X-Route, special"]', rid="special")
    )
    # Same order: the route written first wins even though the second is more specific (SCG has no specificity).
    assert (await fetch(gw, "/api/special/x")).upstream_got("X-Route") == ["general"]
    assert (await fetch(gw, "/api/other")).upstream_got("X-Route") == ["general"]


async def test_lower_order_wins_regardless_of_file_position(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:"
        + route(upstream, '["Path=/api/**"]', '["AddRequestHeader=X-Route, general"]', rid="general", order=5)
        + route(upstream, '["Path=/api/special/**"]', '["AddRequestHeader=X-Route, special"]', rid="special", order=-1)
        + route(upstream, '["Path=/**"]', '["AddRequestHeader=X-Route, catch-all"]', rid="all", order=10)
    )
    assert (await fetch(gw, "/api/special/x")).upstream_got("X-Route") == ["special"]
    assert (await fetch(gw, "/api/other")).upstream_got("X-Route") == ["general"]
    assert (await fetch(gw, "/elsewhere")).upstream_got("X-Route") == ["catch-all"]


async def test_catch_all_with_lower_order_shadows_prefix_routes(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    # The route index narrows candidates by literal prefix; it must still honour order across prefixes.
    gw = await start_gateway(
        "routes:"
        + route(upstream, '["Path=/api/v1/users/{id}"]', '["AddRequestHeader=X-Route, users"]', rid="users")
        + route(upstream, '["Path=/**"]', '["AddRequestHeader=X-Route, first"]', rid="first", order=-10)
    )
    assert (await fetch(gw, "/api/v1/users/7")).upstream_got("X-Route") == ["first"]


async def test_variables_come_from_the_matching_route_only(upstream: Upstream, start_gateway: StartGateway) -> None:
    # The first route's Path captures {a} but its Method predicate fails: its capture must not leak.
    gw = await start_gateway(
        "routes:"
        + route(upstream, '["Path=/v/{a}", "Method=POST"]', '["AddRequestHeader=X-A, {a}"]', rid="post")
        + route(upstream, '["Path=/v/{b}"]', '["AddRequestHeader=X-A, a={a} b={b}"]', rid="get")
    )
    reply = await fetch(gw, "/v/zz")
    assert reply.status == 200
    assert reply.upstream_got("X-A") == ["a={a} b=zz"]


async def test_no_route_is_404_problem_json(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Path=/api/**"]'))
    reply = await fetch(gw, "/nothing/here")
    assert reply.status == 404
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    problem = json.loads(reply.body)
    assert problem["status"] == 404
    assert problem["title"] == "Not Found"
    assert isinstance(problem["type"], str) and problem["type"]
    assert upstream.hits == []


async def test_route_without_predicates_matches_everything(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(f"routes:\n  - id: any\n    uri: {upstream.url}\n")
    assert (await fetch(gw, "/whatever/x")).status == 200


# -- config accepted / rejected ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("predicates", "path", "fragment"),
    [
        ('["Path=/a/**/b"]', "routes[0].predicates[0].args.patterns", "'**' must be the last segment"),
        ('["Path=/a/{*rest}/b"]', "routes[0].predicates[0].args.patterns", "must be the last segment"),
        ('["Path=no-slash"]', "routes[0].predicates[0].args.patterns", "must start with '/'"),
        ('["Path=/a/{x"]', "routes[0].predicates[0].args.patterns", "unclosed"),
        ('["Path=/a/{x}/{x}"]', "routes[0].predicates[0].args.patterns", "duplicate variable"),
        ("['Path=/a/{x:[}']", "routes[0].predicates[0].args.patterns", "invalid regex"),
        ('["Path=/a/***"]', "routes[0].predicates[0].args.patterns", "'***'"),
        (
            "[{name: Path, args: {patterns: [/a], matchTrailingSlash: maybe}}]",
            "routes[0].predicates[0].args.matchTrailingSlash",
            "boolean",
        ),
        (
            "[{name: Path, args: {patterns: [/a], caseSensitive: false}}]",
            "routes[0].predicates[0].args.caseSensitive",
            "False is not one",  # gathered into patterns, as SCG does, and refused: not a path pattern
        ),
        ("[{name: Path, args: {patterns: []}}]", "routes[0].predicates[0].args.patterns", "at least 1"),
        ("[{name: Path, args: {patterns: 5}}]", "routes[0].predicates[0].args.patterns[0]", "valid string"),
        ("[{name: Path, args: {}}]", "routes[0].predicates[0].args.patterns", "required"),
        ('["Pathh=/a"]', "routes[0].predicates[0]", "did you mean 'Path'"),
    ],
)
def test_invalid_path_config(predicates: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(predicates=predicates))
    assert any(p == path and fragment in m for p, m in issues), issues


def test_second_route_error_names_its_index() -> None:
    text = (
        config_only_route(predicates='["Path=/ok/**"]')
        + "  - id: s\n    uri: http://127.0.0.1:9\n    predicates: [Path=/x, Path=/a/**/b]\n"
    )
    issues = config_issues(text)
    assert [p for p, _ in issues] == ["routes[1].predicates[1].args.patterns"]
    assert "/a/**/b" in issues[0][1]


async def test_rejected_reload_keeps_the_old_routes(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Path=/old/**"]'))
    with pytest.raises(ConfigError) as info:
        gw.gateway.load_text("routes:" + route(upstream, '["Path=/new/**/x"]'))
    assert info.value.issues[0].path == "routes[0].predicates[0].args.patterns"
    assert (await fetch(gw, "/old/a")).status == 200
    assert (await fetch(gw, "/new/a/x")).status == 404


# -- hostile input: `{name:regex}` runs on RE2 --------------------------------------------------------------------

HOSTILE_GUARD = 10.0  # seconds: a guard against a hang (a backtracking engine would need years), not a benchmark


@pytest.mark.parametrize(
    ("pattern", "hostile", "benign"),
    [
        ("/x/{v:(a+)+b}", "/x/" + "a" * 6000 + "c", "/x/aaab"),  # the regex alone is the segment
        ("/x/{v:(a|aa)+}-{w}", "/x/" + "a" * 6000 + "c", "/x/aaa-w"),  # mixed with a capture
        ("/x/pre{v:(a|a?)+}.{ext:(a+)+}", "/x/pre" + "a" * 6000 + ".aaaa!", "/x/preaa.aa"),  # two user regexes
    ],
)
async def test_catastrophic_backtracking_segment_answers_promptly(
    pattern: str, hostile: str, benign: str, upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway("routes:" + route(upstream, f"['Path={pattern}']"))
    assert (await fetch(gw, hostile, guard=HOSTILE_GUARD)).status == 404
    assert (await fetch(gw, benign, guard=HOSTILE_GUARD)).status == 200


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("/x/{v:(a)\\\\1}", "backreferences"),
        ("/x/{v:(?!admin).*}", "lookaround"),
        ("/x/{v:\\\\d++}", "possessive"),
    ],
)
def test_regex_segments_needing_backtracking_are_refused(pattern: str, fragment: str) -> None:
    issues = config_issues(config_only_route(predicates=f'[{{name: Path, args: {{patterns: ["{pattern}"]}}}}]'))
    assert any(p == "routes[0].predicates[0].args.patterns" and fragment in m for p, m in issues), issues
