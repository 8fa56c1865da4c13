"""RewriteResponseHeader through real requests: Java regexes and replacements on RE2, every value, config."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.conftest import StartGateway, StartUpstream, Upstream, status_of
from tests.helpers import app_serving, config_issues, config_only_route, converse, fetch, one_route, parse_responses


async def echoing_headers(start_upstream: StartUpstream) -> Upstream:
    """An upstream answering with each query parameter as a response header, repeats and order kept."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="hello", headers=CIMultiDict(request.query.items()))

    return await start_upstream(app_serving("/{tail:.*}", handler))


def query(*pairs: tuple[str, str]) -> str:
    return "?" + "&".join(f"{name}={quote(value, safe='')}" for name, value in pairs)


async def test_scg_example(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    up = await echoing_headers(start_upstream)
    gw = await start_gateway(
        one_route(up.url, '["RewriteResponseHeader=X-Response-Red, password=[^&]+, password=***"]')
    )
    reply = await fetch(gw, "/" + query(("X-Response-Red", "/42?user=ford&password=omg!what&flag=true")))
    assert reply.status == 200
    assert reply.values("X-Response-Red") == [b"/42?user=ford&password=***&flag=true"]
    assert reply.body == b"hello"


async def test_every_value_and_every_match_is_rewritten(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await echoing_headers(start_upstream)
    gw = await start_gateway(one_route(up.url, '["RewriteResponseHeader=X-Ids, \\\\d, #"]'))
    reply = await fetch(gw, "/" + query(("X-Ids", "a1b22"), ("X-Keep", "1"), ("x-ids", "none"), ("X-Ids", "3")))
    assert reply.values("X-Ids") == [b"a#b##", b"none", b"#"]
    assert reply.values("X-Keep") == [b"1"]


@pytest.mark.parametrize(
    "replacement",
    ["https://public.example/${rest}", "https://public.example/$\\{rest}", "https://public.example/$2"],
)
async def test_java_group_references(
    start_upstream: StartUpstream, start_gateway: StartGateway, replacement: str
) -> None:
    up = await echoing_headers(start_upstream)
    filters = f"""
      - name: RewriteResponseHeader
        args:
          name: Location
          regexp: '^http://(internal|backend)\\.local:\\d+/(?<rest>.*)$'
          replacement: '{replacement}'
"""
    gw = await start_gateway(one_route(up.url, filters))
    reply = await fetch(gw, "/" + query(("Location", "http://backend.local:8080/orders/7?x=1")))
    assert reply.values("Location") == [b"https://public.example/orders/7?x=1"]


async def test_shortcut_with_yaml_friendly_group_reference(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await echoing_headers(start_upstream)
    gw = await start_gateway(one_route(up.url, r"""['RewriteResponseHeader=X-V, v(?<n>\d+), version-$\{n}']"""))
    assert (await fetch(gw, "/" + query(("X-V", "api-v2")))).values("X-V") == [b"api-version-2"]


async def test_no_match_and_absent_header_change_nothing(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await echoing_headers(start_upstream)
    gw = await start_gateway(one_route(up.url, '["RewriteResponseHeader=X-A, secret, ***"]'))
    assert (await fetch(gw, "/" + query(("X-A", "public")))).values("X-A") == [b"public"]
    assert (await fetch(gw, "/")).values("X-A") == []


async def test_non_ascii_replacement_is_sent_as_utf8(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await echoing_headers(start_upstream)
    gw = await start_gateway(
        one_route(up.url, '[{name: RewriteResponseHeader, args: {name: X-P, regexp: "EUR", replacement: "\u20ac"}}]')
    )
    assert (await fetch(gw, "/" + query(("X-P", "5 EUR")))).values("X-P") == ["5 \u20ac".encode()]


async def test_pathological_pattern_runs_in_linear_time(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    # (a+)+$ backtracks exponentially on "aaaa…!" in a backtracking engine; on RE2 it is linear. The fetch guard
    # only catches a hang; it is not a measurement.
    up = await echoing_headers(start_upstream)
    gw = await start_gateway(one_route(up.url, '["RewriteResponseHeader=X-A, (a+)+$, matched"]'))
    reply = await fetch(gw, "/" + query(("X-A", "a" * 4000 + "!")), guard=30)
    assert reply.values("X-A") == [b"a" * 4000 + b"!"]


async def test_upstream_error_statuses_are_rewritten_too(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["RewriteResponseHeader=Content-Type, text/plain.*, text/x"]'))
    reply = await fetch(gw, "/status/503")
    assert reply.status == 503
    assert reply.values("Content-Type") == [b"text/x"]


ARGS = "routes[0].filters[0].args"


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ('["RewriteResponseHeader=X-A, (?=x)y, z"]', f"{ARGS}.regexp", "RE2"),
        ('["RewriteResponseHeader=X-A, (a)\\\\1, z"]', f"{ARGS}.regexp", "backtracking"),
        ('["RewriteResponseHeader=X-A, (unclosed, z"]', f"{ARGS}.regexp", "missing )"),
        ('["RewriteResponseHeader=X-A, (?<n>a), ${m}"]', f"{ARGS}.replacement", "group 'm'"),
        ('["RewriteResponseHeader=X-A, (a), $2"]', f"{ARGS}.replacement", "group 2"),
        ('["RewriteResponseHeader=X-A, a, 5$"]', f"{ARGS}.replacement", "lone '$'"),
        ('["RewriteResponseHeader=Content-Length, 1, 2"]', f"{ARGS}.name", "managed by the gateway"),
        ('["RewriteResponseHeader=X-A, a"]', f"{ARGS}.replacement", "required"),
        ('["RewriteResponseHeader=X-A, a, b, c"]', "routes[0].filters[0]", "at most 3"),
        (
            '[{name: RewriteResponseHeader, args: {name: X-A, regexp: a, replacement: "b\\r\\nSet-Cookie: x"}}]',
            f"{ARGS}.replacement",
            "control character",
        ),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues


# -- amplification: empty matches refused at load, rewritten values capped -----------------------------------------


@pytest.mark.parametrize("regexp", ["x*", ",?", "\\\\b", "(?:ab)?", "a|", ".*"])
def test_patterns_matching_empty_between_characters_are_refused(regexp: str) -> None:
    # Each would put the replacement between every two characters: 8 KB of value, 4 KB of replacement, 32 MB.
    filters = f'[{{name: RewriteResponseHeader, args: {{name: X-A, regexp: "{regexp}", replacement: "b"}}}}]'
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == f"{ARGS}.regexp" and "empty string between characters" in m for p, m in issues), issues


def test_an_empty_pattern_is_refused() -> None:
    issues = config_issues(config_only_route(filters='[{name: RewriteResponseHeader, args: {name: X-A, regexp: ""}}]'))
    assert any(p == f"{ARGS}.regexp" and "at least 1 character" in m for p, m in issues), issues


@pytest.mark.parametrize(
    ("regexp", "replacement", "expected"),
    [("^", "pre-", b"pre-a,b"), ("^(.*)$", "[$1]", b"[a,b]"), ("(?:^|,)", ";", b";a;b")],
)
async def test_empty_matches_at_the_ends_only_are_allowed(
    start_upstream: StartUpstream, start_gateway: StartGateway, regexp: str, replacement: str, expected: bytes
) -> None:
    up = await echoing_headers(start_upstream)
    filters = (
        f'[{{name: RewriteResponseHeader, args: {{name: X-A, regexp: "{regexp}", replacement: "{replacement}"}}}}]'
    )
    gw = await start_gateway(one_route(up.url, filters))
    assert (await fetch(gw, "/" + query(("X-A", "a,b")))).values("X-A") == [expected]


async def sized_header(start_upstream: StartUpstream) -> Upstream:
    """An upstream answering /<n> with `X-Big: a…a` (n characters)."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="hello", headers={"X-Big": "a" * int(request.match_info["n"])})

    return await start_upstream(app_serving("/{n}", handler))


async def test_a_rewritten_value_up_to_16_kib_is_sent(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await sized_header(start_upstream)
    gw = await start_gateway(one_route(up.url, '["RewriteResponseHeader=X-Big, a, bb"]'))
    # A raw socket: the aiohttp client refuses header fields over 8 KB.
    raw = (await converse(gw.port, b"GET /8192 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).data
    response = parse_responses(raw)[0]
    assert response.status == 200
    assert response.header("x-big") == "b" * 16384
    assert response.body == b"hello"


async def test_a_rewritten_value_over_16_kib_is_a_500(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await sized_header(start_upstream)
    gw = await start_gateway(one_route(up.url, '["RewriteResponseHeader=X-Big, a, bb"]'))
    raw = (await converse(gw.port, b"GET /8193 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).data
    response = parse_responses(raw)[0]
    assert response.status == 500  # the route's replacement, not the upstream, made the value too long
    assert response.header("content-type") == "application/problem+json"
    assert "X-Big longer than 16384 bytes" in json.loads(response.body)["detail"]
    assert response.header("x-big") is None


async def test_the_reviewers_amplification_stays_small(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    # Every character of an 8000-byte value replaced by 4000 bytes was a 32 MB response; now a short 500.
    up = await sized_header(start_upstream)
    filters = '[{name: RewriteResponseHeader, args: {name: X-Big, regexp: ".", replacement: "%s"}}]' % ("b" * 4000)
    gw = await start_gateway(one_route(up.url, filters))
    raw = (await converse(gw.port, b"GET /8000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).data
    assert status_of(raw) == 500
    assert len(raw) < 4096
