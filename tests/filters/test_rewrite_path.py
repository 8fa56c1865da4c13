r"""RewritePath through real requests: SCG's `$\{name}` syntax, replaceAll, encoded paths, traversal, config."""

from __future__ import annotations

import pytest

from gateway.settings import Settings
from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, one_route

# Block-style YAML, single-quoted: exactly what an SCG application.yml holds.
SCG_EXAMPLE = r"""
      - 'RewritePath=/red/?(?<segment>.*), /$\{segment}'
"""


def rewriting(upstream: Upstream, shortcut: str) -> str:
    return one_route(upstream.url, f"\n      - '{shortcut}'\n")


@pytest.mark.parametrize(
    ("sent", "forwarded"),
    [
        ("/red/blue", "/blue"),
        ("/red/blue/green", "/blue/green"),
        ("/red", "/"),
        ("/red/", "/"),
        ("/redder", "/der"),  # SCG's pattern has an optional '/', so this is what SCG does too
        ("/red/a%20b", "/a%20b"),  # groups are slices of the still-encoded path
        ("/blue/red/x", "/blue/x"),  # find, not match: the first '/red' anywhere
    ],
)
async def test_scg_example(upstream: Upstream, start_gateway: StartGateway, sent: str, forwarded: str) -> None:
    gw = await start_gateway(one_route(upstream.url, SCG_EXAMPLE))
    reply = await fetch(gw, sent)
    assert reply.status == 200
    assert reply.seen()["path"] == forwarded


async def test_query_and_forwarded_prefix(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, SCG_EXAMPLE))
    reply = await fetch(gw, "/red/blue?x=%2F1")
    assert (reply.seen()["path"], reply.seen()["query"]) == ("/blue", "x=%2F1")
    assert reply.upstream_got("X-Forwarded-Prefix") == ["/red"]


@pytest.mark.parametrize(
    "shortcut",
    [
        "RewritePath=/red/(?<segment>.*), /${segment}",
        "RewritePath=/red/(?<segment>.*), /$\\{segment}",
        "RewritePath=/red/(.*), /$1",
        "RewritePath=/red/(?P<segment>.*), /${segment}",
    ],
)
async def test_group_reference_spellings(upstream: Upstream, start_gateway: StartGateway, shortcut: str) -> None:
    gw = await start_gateway(rewriting(upstream, shortcut))
    assert (await fetch(gw, "/red/x/y")).seen()["path"] == "/x/y"


async def test_every_match_is_replaced(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(rewriting(upstream, "RewritePath=-, _"))
    assert (await fetch(gw, "/a-b/c-d")).seen()["path"] == "/a_b/c_d"


async def test_literal_dollar_and_no_match(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(rewriting(upstream, "RewritePath=/price/(\\d+), /price/\\$$1"))
    assert (await fetch(gw, "/price/12")).seen()["path"] == "/price/$12"
    assert (await fetch(gw, "/other/12")).seen()["path"] == "/other/12"  # no match: untouched


async def test_expanded_form(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(
            upstream.url,
            r"""
      - name: RewritePath
        args:
          regexp: /api/v(?<version>\d+)/(?<rest>.*)
          replacement: /${rest}/version-${version}
""",
        )
    )
    assert (await fetch(gw, "/api/v3/orders/7")).seen()["path"] == "/orders/7/version-3"


async def test_empty_segments_are_merged(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(rewriting(upstream, "RewritePath=/foo(?<rest>.*), /bar/${rest}"))
    assert (await fetch(gw, "/foo/x")).seen()["path"] == "/bar/x"
    assert (await fetch(gw, "/foo")).seen()["path"] == "/bar/"


async def test_leading_double_slash_never_reaches_the_upstream(upstream: Upstream, start_gateway: StartGateway) -> None:
    # SECURITY: "//evil.example/x" as a request target reads as a host to many URL parsers.
    gw = await start_gateway(
        rewriting(upstream, "RewritePath=/api(?<rest>/.*), /${rest}"), Settings(merge_slashes=False)
    )
    assert (await fetch(gw, "/api//evil.example/x")).seen()["path"] == "/evil.example/x"


@pytest.mark.parametrize("sent", ["/x..", "/x.", "/x%2E%2E", "/x.%2e"])
async def test_dot_segments_built_from_the_request_are_refused(
    upstream: Upstream, start_gateway: StartGateway, sent: str
) -> None:
    # SECURITY: the canonical path has no dot segments, but a regex can glue "x.." into "/y/..", which would
    # climb out of /y/ at the upstream.
    gw = await start_gateway(rewriting(upstream, "RewritePath=/x(?<a>[^/]*), /y/${a}"))
    reply = await fetch(gw, sent)
    assert reply.status == 400
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert upstream.hits == []


async def test_tomcat_dot_segment_spliced_from_the_request_is_refused(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    # SECURITY: "x..;" is a harmless segment on arrival, but "/y/..;/admin" is "/admin" to Tomcat.
    gw = await start_gateway(
        f"""
routes:
  - id: r
    uri: {upstream.url}
    predicates: ["Path=/**"]
    filters: ['RewritePath=/x(?<a>.*), /y/${{a}}']
    metadata: {{allow-path-parameters: true}}
"""
    )
    assert (await fetch(gw, "/x..;/admin")).status == 400
    assert (await fetch(gw, "/x.;p/admin")).status == 400
    assert upstream.hits == []
    assert (await fetch(gw, "/xa;p/b")).seen()["path"] == "/y/a;p/b"


async def test_hostile_input_on_a_classic_catastrophic_pattern(upstream: Upstream, start_gateway: StartGateway) -> None:
    # (a+)+$ backtracks exponentially on "aaa…!" in Java; RE2 is linear. The guard is generous, not a benchmark.
    gw = await start_gateway(rewriting(upstream, "RewritePath=/(a+)+$, /matched"))
    reply = await fetch(gw, "/" + "a" * 5000 + "!", guard=30)
    assert reply.status == 200
    assert reply.seen()["path"] == "/" + "a" * 5000 + "!"
    assert (await fetch(gw, "/aaa")).seen()["path"] == "/matched"


@pytest.mark.parametrize(
    ("shortcut", "path", "fragment"),
    [
        ("RewritePath=/a(, /b", "regexp", "missing )"),
        ("RewritePath=(a)\\1, /b", "regexp", "backtracking"),
        ("RewritePath=(?<=a)b, /c", "regexp", "backtracking"),
        ("RewritePath=/a/(?<x>.*), /${nope}", "replacement", "'nope'"),
        ("RewritePath=/a/(.*), /$2", "replacement", "group 2"),
        ("RewritePath=/a, /b$", "replacement", "lone '$'"),
        ("RewritePath=/a/(.*), /b?q=$1", "replacement", "no query"),
        ("RewritePath=/a/(.*), /b c/$1", "replacement", "percent-encode"),
        ("RewritePath=/a", "replacement", "required"),
        ("RewritePath=, /b", "replacement", "required"),  # the empty token is dropped, as Spring does
    ],
)
def test_invalid_config(shortcut: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=f"\n      - '{shortcut}'\n"))
    where = f"routes[0].filters[0].args.{path}"
    assert any(p == where and fragment in m for p, m in issues), issues


def test_too_many_shortcut_arguments() -> None:
    issues = config_issues(config_only_route(filters='["RewritePath=/a, /b, /c"]'))
    assert any(p == "routes[0].filters[0]" and "at most 2" in m for p, m in issues), issues


# -- amplification: empty matches refused at load, rewritten paths capped ------------------------------------------


@pytest.mark.parametrize("regexp", ["/?", "x*", "\\b", "(?:/a)?", ".*"])
def test_patterns_matching_empty_between_characters_are_refused(regexp: str) -> None:
    # `/?` would put the replacement between every two characters of the path.
    issues = config_issues(config_only_route(filters=f"\n      - 'RewritePath={regexp}, /x'\n"))
    where = "routes[0].filters[0].args.regexp"
    assert any(p == where and "empty string between characters" in m for p, m in issues), issues


async def test_an_anchored_empty_match_is_allowed(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(rewriting(upstream, "RewritePath=^, /api"))
    assert (await fetch(gw, "/orders/7")).seen()["path"] == "/api/orders/7"


async def test_a_rewritten_path_longer_than_the_request_line_limit_is_a_414(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    # Each "d" becomes 100 characters: 100 of them are 10000 > 8192 (limits.max_request_line); 50 are fine.
    gw = await start_gateway(rewriting(upstream, "RewritePath=d, " + "c" * 100))
    reply = await fetch(gw, "/" + "d" * 100)
    assert reply.status == 414
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert upstream.hits == []
    assert (await fetch(gw, "/" + "d" * 50)).seen()["path"] == "/" + "c" * 5000


async def test_the_limit_is_the_configured_request_line_limit(upstream: Upstream, start_gateway: StartGateway) -> None:
    settings = Settings.model_validate({"limits": {"max_request_line": 1024}})
    gw = await start_gateway(rewriting(upstream, "RewritePath=d, cc"), settings)
    assert (await fetch(gw, "/" + "d" * 511)).status == 200  # "/" + 1022 characters
    assert (await fetch(gw, "/" + "d" * 512)).status == 414
