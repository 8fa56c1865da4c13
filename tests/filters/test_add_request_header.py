"""AddRequestHeader through real requests: values, variables, appending, default-filters, injection, config."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, one_route


async def test_shortcut_adds_header(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["AddRequestHeader=X-Request-Red, Blue"]'))
    reply = await fetch(gw, "/a")
    assert reply.status == 200
    assert reply.upstream_got("X-Request-Red") == ["Blue"]
    assert "X-Request-Red" not in reply.headers  # request side only


async def test_existing_values_are_kept(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["AddRequestHeader=X-Request-Red, Blue"]'))
    reply = await fetch(gw, "/a", headers={"x-request-red": "from-client"})
    assert reply.upstream_got("X-Request-Red") == ["from-client", "Blue"]


async def test_path_variable_in_value(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["AddRequestHeader=X-Request-Red, Blue-{segment}"]', '["Path=/red/{segment}"]')
    )
    assert (await fetch(gw, "/red/crimson")).upstream_got("X-Request-Red") == ["Blue-crimson"]
    assert (await fetch(gw, "/red/a%20b")).upstream_got("X-Request-Red") == ["Blue-a b"]


async def test_host_variable_in_value(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["AddRequestHeader=X-Tenant, tenant-{sub}"]', '["Host={sub}.example.org"]')
    )
    reply = await fetch(gw, "/", headers={"Host": "acme.example.org:8080"})
    assert reply.upstream_got("X-Tenant") == ["tenant-acme"]


async def test_unknown_placeholder_is_left_as_written(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["AddRequestHeader=X-T, {nope}-#{1+1}-${x}"]'))
    assert (await fetch(gw, "/")).upstream_got("X-T") == ["{nope}-#{1+1}-${x}"]  # inert: no expression language


async def test_expanded_form_and_spacing(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(
            upstream.url,
            """
      - name: AddRequestHeader
        args:
          name: X-Expanded
          value: "  two words, and a comma  "
""",
            '["Path=/e/{id}"]',
        )
    )
    # Config strings are stripped of surrounding whitespace; inner text (commas too) is kept.
    assert (await fetch(gw, "/e/1")).upstream_got("X-Expanded") == ["two words, and a comma"]


async def test_empty_value_is_sent(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '[{name: AddRequestHeader, args: {name: X-Empty, value: ""}}]'))
    assert (await fetch(gw, "/")).upstream_got("X-Empty") == [""]


async def test_listed_twice_adds_twice_in_order(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["AddRequestHeader=X-Twice, one", "AddRequestHeader=X-Twice, two"]')
    )
    assert (await fetch(gw, "/")).upstream_got("X-Twice") == ["one", "two"]


async def test_default_filters_run_first_on_every_route(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
default-filters:
  - AddRequestHeader=X-Order, default
routes:
  - id: own
    uri: {upstream.url}
    predicates: ["Path=/own/**"]
    filters: ["AddRequestHeader=X-Order, route"]
  - id: bare
    uri: {upstream.url}
    predicates: ["Path=/bare/**"]
"""
    )
    assert (await fetch(gw, "/own/x")).upstream_got("X-Order") == ["default", "route"]
    assert (await fetch(gw, "/bare/x")).upstream_got("X-Order") == ["default"]


@pytest.mark.parametrize("name", ["Transfer-Encoding", "Content-Length", "Host", "Connection", "Upgrade"])
def test_framing_and_host_headers_are_refused_at_load(name: str) -> None:
    # Framing, connection management and Host belong to the gateway: a config setting them could desynchronise
    # the upstream connection (request smuggling) or misroute it.
    issues = config_issues(one_route("http://127.0.0.1:9", f'["AddRequestHeader={name}, x"]'))
    assert any(p == "routes[0].filters[0].args.name" and "managed by the gateway" in m for p, m in issues), issues


async def test_path_variable_cannot_inject_a_header(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["AddRequestHeader=X-Red, {segment}"]', '["Path=/red/{segment}"]')
    )
    for evil in ("a%0D%0AX-Injected:%201", "a%0Ab", "a%0Db"):
        reply = await fetch(gw, f"/red/{evil}")
        assert reply.status == 400, evil
        assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert upstream.hits == []


@pytest.mark.parametrize(
    ("encoded", "text"),
    [("%C3%A9t%C3%A9", "\u00e9t\u00e9"), ("%E2%82%AC5", "\u20ac5"), ("%F0%9F%8C%8A", "\U0001f30a")],
)
async def test_non_ascii_variable_reaches_upstream_as_utf8(
    upstream: Upstream, start_gateway: StartGateway, encoded: str, text: str
) -> None:
    # The variable is the percent-decoded UTF-8 text; the header carries those same bytes, never a 500 or a
    # different encoding depending on whether the characters happen to fit in latin-1.
    gw = await start_gateway(
        one_route(upstream.url, '["AddRequestHeader=X-Red, {segment}"]', '["Path=/red/{segment}"]')
    )
    reply = await fetch(gw, f"/red/{encoded}")
    assert reply.status == 200, reply.body[:300]
    assert reply.upstream_got("X-Red") == [text.encode().decode("latin-1")]


@pytest.mark.parametrize("text", ["caf\u00e9", "5\u20ac", "\U0001f30a-{segment}"])
async def test_non_ascii_config_value_reaches_upstream_as_utf8_once(
    upstream: Upstream, start_gateway: StartGateway, text: str
) -> None:
    gw = await start_gateway(
        one_route(
            upstream.url,
            f'[{{name: AddRequestHeader, args: {{name: X-Text, value: "{text}"}}}}]',
            '["Path=/t/{segment}"]',
        )
    )
    reply = await fetch(gw, "/t/x")
    assert reply.status == 200
    assert reply.upstream_got("X-Text") == [text.replace("{segment}", "x").encode().decode("latin-1")]


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ('["AddRequestHeader=X A, v"]', "routes[0].filters[0].args.name", "pattern"),
        ('["AddRequestHeader=X-A"]', "routes[0].filters[0].args.value", "required"),
        ('["AddRequestHeader"]', "routes[0].filters[0].args.name", "required"),
        ('["AddRequestHeader=X-A, a, b"]', "routes[0].filters[0]", "at most 2"),
        # Spring's tokenizer drops the empty token: "v" becomes the name and the value is missing.
        ('["AddRequestHeader=, v"]', "routes[0].filters[0].args.value", "required"),
        (
            "[{name: AddRequestHeader, args: {name: X-A, value: v, override: true}}]",
            "routes[0].filters[0].args.override",
            "unknown argument",
        ),
        ("[{name: AddRequestHeader, args: {name: X-A, value: [v]}}]", "routes[0].filters[0].args.value", "string"),
        ("[{name: AddRequestHeader, args: {name: 7, value: v}}]", "routes[0].filters[0].args.name", "string"),
    ],
)
def test_invalid_add_request_header_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues


@pytest.mark.parametrize(
    "filters",
    [
        '["AddRequestHeader=X-A, a\\r\\nX-Evil: 1"]',
        '[{name: AddRequestHeader, args: {name: X-A, value: "a\\nb"}}]',
        '[{name: AddRequestHeader, args: {name: X-A, value: "a\\rb"}}]',
        '[{name: AddRequestHeader, args: {name: X-A, value: "a\\0b"}}]',
    ],
)
def test_control_characters_in_value_are_rejected_at_load(filters: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert [p for p, _ in issues] == ["routes[0].filters[0].args.value"]
    assert "control character" in issues[0][1]


async def test_rejected_value_keeps_the_running_routes(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["AddRequestHeader=X-A, old"]'))
    with pytest.raises(ConfigError):
        gw.gateway.load_text(one_route(upstream.url, '[{name: AddRequestHeader, args: {name: X-A, value: "a\\nb"}}]'))
    assert (await fetch(gw, "/")).upstream_got("X-A") == ["old"]
