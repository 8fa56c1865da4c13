"""AddRequestHeadersIfNotPresent through real requests: defaults, client values kept, repeats, variables, config."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, converse, echoed, echoed_header, fetch, one_route

SHORTCUT = '["AddRequestHeadersIfNotPresent=X-Request-Color-1:blue,X-Request-Color-2:green"]'


async def test_shortcut_adds_absent_headers(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, SHORTCUT))
    reply = await fetch(gw, "/a")
    assert reply.status == 200
    assert reply.upstream_got("X-Request-Color-1") == ["blue"]
    assert reply.upstream_got("X-Request-Color-2") == ["green"]


async def test_client_value_is_kept_and_others_still_added(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, SHORTCUT))
    reply = await fetch(gw, "/a", headers={"x-request-color-1": "from-client"})
    assert reply.upstream_got("X-Request-Color-1") == ["from-client"]  # matched case-insensitively
    assert reply.upstream_got("X-Request-Color-2") == ["green"]


async def test_repeated_name_gives_several_values(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["AddRequestHeadersIfNotPresent=X-Color:blue,X-Other:o,X-Color:green"]')
    )
    assert (await fetch(gw, "/")).upstream_got("X-Color") == ["blue", "green"]
    # Present: none of the configured values is added.
    present = await fetch(gw, "/", headers={"X-Color": "red"})
    assert present.upstream_got("X-Color") == ["red"]
    assert present.upstream_got("X-Other") == ["o"]


async def test_a_blank_client_value_counts_as_absent(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, SHORTCUT))
    reply = await fetch(gw, "/", headers={"X-Request-Color-1": ""})
    assert reply.upstream_got("X-Request-Color-1") == ["blue"]  # replaced, not sent next to the blank


async def test_path_variable_in_value(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(
            upstream.url, '["AddRequestHeadersIfNotPresent=X-Request-Red:Blue-{segment}"]', '["Path=/red/{segment}"]'
        )
    )
    assert (await fetch(gw, "/red/crimson")).upstream_got("X-Request-Red") == ["Blue-crimson"]


async def test_value_may_contain_colons(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["AddRequestHeadersIfNotPresent=X-Origin:http://a.example:8080"]')
    )
    assert (await fetch(gw, "/")).upstream_got("X-Origin") == ["http://a.example:8080"]


@pytest.mark.parametrize(
    "args",
    [
        "{keyValues: ['X-A:one, with a comma', 'X-B:{segment}']}",
        "{keyValues: [{key: X-A, value: 'one, with a comma'}, {key: X-B, value: '{segment}'}]}",
        "{keyValues.0: 'X-A:one, with a comma', keyValues.1: 'X-B:{segment}'}",
    ],
)
async def test_expanded_forms(upstream: Upstream, start_gateway: StartGateway, args: str) -> None:
    gw = await start_gateway(
        one_route(upstream.url, f"[{{name: AddRequestHeadersIfNotPresent, args: {args}}}]", '["Path=/e/{segment}"]')
    )
    reply = await fetch(gw, "/e/seg")
    assert reply.upstream_got("X-A") == ["one, with a comma"]
    assert reply.upstream_got("X-B") == ["seg"]


async def test_expanded_form_with_one_comma_separated_string(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, "[{name: AddRequestHeadersIfNotPresent, args: {keyValues: 'X-A:1, X-B:2,X-A:3'}}]")
    )
    reply = await fetch(gw, "/")
    assert reply.upstream_got("X-A") == ["1", "3"]
    assert reply.upstream_got("X-B") == ["2"]


async def test_several_client_values_are_all_kept(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, SHORTCUT))
    # A raw request: the aiohttp client would fold repeated fields into one. A blank next to a real value is kept.
    head = "GET / HTTP/1.1\r\nHost: x\r\nX-Request-Color-1: a\r\nX-Request-Color-1:\r\nX-Request-Color-1: b\r\n"
    seen = echoed((await converse(gw.port, (head + "Connection: close\r\n\r\n").encode())).data)
    assert echoed_header(seen, "X-Request-Color-1") == ["a", "", "b"]
    assert echoed_header(seen, "X-Request-Color-2") == ["green"]


async def test_path_variable_cannot_inject_a_header(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["AddRequestHeadersIfNotPresent=X-Red:{segment}"]', '["Path=/red/{segment}"]')
    )
    reply = await fetch(gw, "/red/a%0D%0AX-Injected:%201")
    assert reply.status == 400
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert upstream.hits == []


ARGS = "routes[0].filters[0].args"


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ('["AddRequestHeadersIfNotPresent=X-A"]', f"{ARGS}.keyValues", "expected 'name:value'"),
        ('["AddRequestHeadersIfNotPresent=:v"]', f"{ARGS}.keyValues", "expected 'name:value'"),
        ('["AddRequestHeadersIfNotPresent=X A:v"]', f"{ARGS}.keyValues", "RFC 9110 token"),
        ('["AddRequestHeadersIfNotPresent=Host:evil.example"]', f"{ARGS}.keyValues", "managed by the gateway"),
        ('["AddRequestHeadersIfNotPresent=X-A:1,Content-Length:5"]', f"{ARGS}.keyValues", "managed by the gateway"),
        ('["AddRequestHeadersIfNotPresent"]', f"{ARGS}.keyValues", "required"),
        (
            '[{name: AddRequestHeadersIfNotPresent, args: {keyValues: ["X-A:a\\r\\nX-Evil: 1"]}}]',
            f"{ARGS}.keyValues",
            "control character",
        ),
        ("[{name: AddRequestHeadersIfNotPresent, args: {keyValues: []}}]", f"{ARGS}.keyValues", "at least 1"),
        (
            "[{name: AddRequestHeadersIfNotPresent, args: {keyValues: [{key: X-A}]}}]",
            f"{ARGS}.keyValues",
            "{key: name, value: value}",
        ),
        ("[{name: AddRequestHeadersIfNotPresent, args: {keyValues: [[X-A]]}}]", f"{ARGS}.keyValues[0]", "string"),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues


def test_too_many_pairs_are_refused() -> None:
    pairs = ",".join(f"X-H{i}:v" for i in range(65))
    issues = config_issues(config_only_route(filters=f'["AddRequestHeadersIfNotPresent={pairs}"]'))
    assert any(p == f"{ARGS}.keyValues" and "at most 64" in m for p, m in issues), issues
