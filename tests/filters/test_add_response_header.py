"""AddResponseHeader through real requests: values, variables, override, default-filters, no://op, config."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from tests.conftest import StartGateway, StartUpstream, Upstream
from tests.helpers import app_serving, config_issues, config_only_route, fetch, one_route


async def upstream_sending_header(start_upstream: StartUpstream) -> Upstream:
    """An upstream whose responses carry `X-Color: from-upstream` (and, on /two, a second value)."""

    async def handler(request: web.Request) -> web.Response:
        response = web.Response(text="hello", headers={"X-Color": "from-upstream"})
        if request.path == "/two":
            response.headers.add("X-Color", "second")
        return response

    return await start_upstream(app_serving("/{tail:.*}", handler))


async def test_shortcut_adds_header(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["AddResponseHeader=X-Response-Red, Blue"]'))
    reply = await fetch(gw, "/a")
    assert reply.status == 200
    assert reply.values("X-Response-Red") == [b"Blue"]
    seen = json.loads(reply.body)
    assert not [k for k, _ in seen["headers"] if k.lower() == "x-response-red"]  # response side only


async def test_path_variables_in_value(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["AddResponseHeader=X-Item, {user}/{item}"]', '["Path=/u/{user}/i/{item}"]')
    )
    assert (await fetch(gw, "/u/ann/i/9")).values("X-Item") == [b"ann/9"]


async def test_override_true_adds_next_to_the_upstream_value(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await upstream_sending_header(start_upstream)
    gw = await start_gateway(one_route(up.url, '["AddResponseHeader=X-Color, from-gateway"]'))
    reply = await fetch(gw, "/one")
    assert reply.values("X-Color") == [b"from-upstream", b"from-gateway"]
    assert reply.body == b"hello"


async def test_override_false_keeps_the_upstream_value(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await upstream_sending_header(start_upstream)
    gw = await start_gateway(
        one_route(up.url, '["AddResponseHeader=X-Color, from-gateway, false", "AddResponseHeader=X-Other, o, false"]')
    )
    one = await fetch(gw, "/one")
    assert one.values("X-Color") == [b"from-upstream"]
    assert one.values("X-Other") == [b"o"]  # absent upstream: added
    assert (await fetch(gw, "/two")).values("X-Color") == [b"from-upstream", b"second"]


async def test_override_false_matches_names_case_insensitively(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await upstream_sending_header(start_upstream)
    gw = await start_gateway(
        one_route(up.url, "[{name: AddResponseHeader, args: {name: x-COLOR, value: g, override: false}}]")
    )
    assert (await fetch(gw, "/one")).values("X-Color") == [b"from-upstream"]


async def test_expanded_form_override_true(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    up = await upstream_sending_header(start_upstream)
    gw = await start_gateway(
        one_route(
            up.url,
            """
      - name: AddResponseHeader
        args:
          name: X-Color
          value: gw-{x}
          override: true
""",
            '["Path=/{x}"]',
        )
    )
    assert (await fetch(gw, "/one")).values("X-Color") == [b"from-upstream", b"gw-one"]


async def test_listed_twice_adds_twice(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["AddResponseHeader=X-Twice, a", "AddResponseHeader=X-Twice, b"]')
    )
    assert sorted((await fetch(gw, "/")).values("X-Twice")) == [b"a", b"b"]


async def test_default_filters_apply_to_every_route(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
default-filters:
  - AddResponseHeader=X-Response-Default-Red, Default-Blue
routes:
  - id: proxied
    uri: {upstream.url}
    predicates: ["Path=/p/**"]
    filters: ["AddResponseHeader=X-Own, p"]
  - id: local
    uri: no://op
    predicates: ["Path=/local"]
  - id: status
    uri: {upstream.url}
    predicates: ["Path=/status/**"]
"""
    )
    proxied = await fetch(gw, "/p/1")
    assert proxied.values("X-Response-Default-Red") == [b"Default-Blue"]
    assert proxied.values("X-Own") == [b"p"]
    local = await fetch(gw, "/local")
    assert local.status == 200
    assert local.values("X-Response-Default-Red") == [b"Default-Blue"]
    # An upstream error status is still a response: the default filter decorates it too.
    failed = await fetch(gw, "/status/503")
    assert failed.status == 503
    assert failed.values("X-Response-Default-Red") == [b"Default-Blue"]
    # No route matched: no route's filters (nor the default ones) ran.
    assert (await fetch(gw, "/none")).values("X-Response-Default-Red") == []


async def test_no_op_route_answers_with_the_header(start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route("no://op", '["AddResponseHeader=X-Local, {name}"]', '["Path=/hello/{name}"]'))
    reply = await fetch(gw, "/hello/world")
    assert reply.status == 200
    assert reply.values("X-Local") == [b"world"]
    assert reply.body == b""


async def test_header_reaches_a_streamed_response(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["AddResponseHeader=X-Stream, yes"]'))
    reply = await fetch(gw, "/bytes/200000")
    assert reply.values("X-Stream") == [b"yes"]
    assert reply.body == (bytes(range(256)) * 800)[:200000]


async def test_path_variable_cannot_split_the_response(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["AddResponseHeader=X-Red, {segment}"]', '["Path=/red/{segment}"]')
    )
    reply = await fetch(gw, "/red/a%0D%0ASet-Cookie:%20x=1")
    assert reply.status == 400
    assert reply.values("Set-Cookie") == []
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    for _ in range(3):  # the abandoned upstream response did not poison the gateway or its pool
        assert (await fetch(gw, "/red/fine")).values("X-Red") == [b"fine"]


@pytest.mark.parametrize(("encoded", "text"), [("%C3%A9", "\u00e9"), ("%E2%82%AC", "\u20ac")])
async def test_non_ascii_variable_is_sent_as_utf8(
    upstream: Upstream, start_gateway: StartGateway, encoded: str, text: str
) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["AddResponseHeader=X-Red, {segment}"]', '["Path=/red/{segment}"]')
    )
    # A short guard: the failure mode seen was a response that never comes.
    reply = await fetch(gw, f"/red/{encoded}", guard=5)
    assert reply.status == 200
    assert reply.values("X-Red") == [text.encode()]


@pytest.mark.parametrize("text", ["caf\u00e9", "5\u20ac", "\U0001f30a-{segment}"])
async def test_non_ascii_config_value_is_sent_as_utf8_once(
    upstream: Upstream, start_gateway: StartGateway, text: str
) -> None:
    gw = await start_gateway(
        one_route(
            upstream.url,
            f'[{{name: AddResponseHeader, args: {{name: X-Text, value: "{text}"}}}}]',
            '["Path=/t/{segment}"]',
        )
    )
    reply = await fetch(gw, "/t/x", guard=5)
    assert reply.status == 200
    assert reply.values("X-Text") == [text.replace("{segment}", "x").encode()]


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ('["AddResponseHeader=X-A, v, maybe"]', "routes[0].filters[0].args.override", "boolean"),
        ('["AddResponseHeader=X-A, v, false, x"]', "routes[0].filters[0]", "at most 3"),
        ('["AddResponseHeader=X:A, v"]', "routes[0].filters[0].args.name", "pattern"),
        ('["AddResponseHeader=X-A"]', "routes[0].filters[0].args.value", "required"),
        (
            "[{name: AddResponseHeader, args: {name: X-A, value: v, overwrite: false}}]",
            "routes[0].filters[0].args.overwrite",
            "unknown argument",
        ),
        (
            "[{name: AddResponseHeader, args: {name: X-A, value: v, override: [false]}}]",
            "routes[0].filters[0].args.override",
            "boolean",
        ),
        ("[{name: AddResponseHeader, args: [X-A, v]}]", "routes[0].filters[0].args", "mapping"),
    ],
)
def test_invalid_add_response_header_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues


@pytest.mark.parametrize(
    "filters",
    [
        '["AddResponseHeader=X-A, a\\r\\nSet-Cookie: x=1"]',
        '[{name: AddResponseHeader, args: {name: X-A, value: "a\\nb"}}]',
    ],
)
def test_control_characters_in_value_are_rejected_at_load(filters: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert [p for p, _ in issues] == ["routes[0].filters[0].args.value"]
    assert "control character" in issues[0][1]
