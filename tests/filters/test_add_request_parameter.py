"""AddRequestParameter through real requests: appending, encoding, variables, forms, config."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, one_route


@pytest.mark.parametrize(
    ("sent", "query"),
    [
        ("/x", "red=blue"),
        ("/x?a=1", "a=1&red=blue"),
        ("/x?a=1&", "a=1&red=blue"),  # no doubled '&' (as SCG)
        ("/x?red=green", "red=green&red=blue"),  # appended, never replacing
        ("/x?q=a%2Fb+c", "q=a%2Fb+c&red=blue"),  # the client's query passes byte for byte
    ],
)
async def test_shortcut_appends(upstream: Upstream, start_gateway: StartGateway, sent: str, query: str) -> None:
    gw = await start_gateway(one_route(upstream.url, '["AddRequestParameter=red, blue"]'))
    reply = await fetch(gw, sent)
    assert reply.status == 200
    assert reply.seen()["path"] == "/x"
    assert reply.seen()["query"] == query


async def test_expanded_form_encodes_name_and_value(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(
            upstream.url,
            """
      - name: AddRequestParameter
        args:
          name: "my name"
          value: "a b+c&d=e#f%g;h/i?\u20ac"
""",
        )
    )
    # Name and value are text: whatever would split the query ('&', '=', '+', ';', '#', '%') is escaped.
    query = (await fetch(gw, "/x?z=1")).seen()["query"]
    assert query == "z=1&my%20name=a%20b%2Bc%26d%3De%23f%25g%3Bh/i?%E2%82%AC"


async def test_empty_value(upstream: Upstream, start_gateway: StartGateway) -> None:
    # The expanded form: a shortcut drops empty tokens, as Spring's tokenizer does.
    gw = await start_gateway(one_route(upstream.url, "[{name: AddRequestParameter, args: {name: flag, value: ''}}]"))
    assert (await fetch(gw, "/x")).seen()["query"] == "flag="


async def test_path_variable_is_encoded(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["AddRequestParameter=foo, bar-{segment}"]', '["Path=/red/{segment}"]')
    )
    assert (await fetch(gw, "/red/blue")).seen()["query"] == "foo=bar-blue"
    assert (await fetch(gw, "/red/a%20b")).seen()["query"] == "foo=bar-a%20b"
    # SECURITY: a variable holding '&' and '=' cannot add a parameter of its own.
    reply = await fetch(gw, "/red/x&admin=true?a=1")
    assert reply.seen()["query"] == "a=1&foo=bar-x%26admin%3Dtrue"


async def test_host_variable(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["AddRequestParameter=foo, bar-{segment}"]', '["Host={segment}.myhost.org"]')
    )
    reply = await fetch(gw, "/x", headers={"Host": "acme.myhost.org"})
    assert reply.seen()["query"] == "foo=bar-acme"


async def test_unknown_placeholder_stays_as_written(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["AddRequestParameter=foo, {nope}"]'))
    assert (await fetch(gw, "/x")).seen()["query"] == "foo=%7Bnope%7D"


async def test_listed_twice_adds_twice(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["AddRequestParameter=a, 1", "AddRequestParameter=b, 2"]'))
    assert (await fetch(gw, "/x?c=3")).seen()["query"] == "c=3&a=1&b=2"


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ("[AddRequestParameter=red]", "routes[0].filters[0].args.value", "required"),
        ("[AddRequestParameter]", "routes[0].filters[0].args.name", "required"),
        ('["AddRequestParameter=a, b, c"]', "routes[0].filters[0]", "at most 2"),
        ("[{name: AddRequestParameter, args: {name: '', value: x}}]", "routes[0].filters[0].args.name", "at least 1"),
        (
            f"[{{name: AddRequestParameter, args: {{name: a, value: {'v' * 4097}}}}}]",
            "routes[0].filters[0].args.value",
            "at most 4096",
        ),
        (
            "[{name: AddRequestParameter, args: {name: a, value: b, x: 1}}]",
            "routes[0].filters[0].args.x",
            "unknown argument",
        ),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues
