"""RewriteRequestParameter through real requests: all values replaced by one, appended; absent name untouched."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, one_route


@pytest.mark.parametrize(
    ("sent", "query"),
    [
        ("/x?campaign=old", "campaign=fall2023"),
        ("/x?campaign=old&a=1&campaign=older", "a=1&campaign=fall2023"),  # one value, after the others (SCG)
        ("/x?a=1&campaign", "a=1&campaign=fall2023"),
        ("/x?c%61mpaign=old&b=%2F", "b=%2F&campaign=fall2023"),  # decoded name; the rest byte for byte
        ("/x?a=1&&b=2", "a=1&&b=2"),  # absent: the query is left exactly alone
        ("/x", ""),
    ],
)
async def test_shortcut(upstream: Upstream, start_gateway: StartGateway, sent: str, query: str) -> None:
    gw = await start_gateway(one_route(upstream.url, '["RewriteRequestParameter=campaign, fall2023"]'))
    reply = await fetch(gw, sent)
    assert reply.status == 200
    assert reply.seen()["query"] == query


async def test_expanded_form_encodes_the_replacement(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '[{name: RewriteRequestParameter, args: {name: "q", replacement: "a b&c=d+\u00e9"}}]')
    )
    assert (await fetch(gw, "/x?q=1")).seen()["query"] == "q=a%20b%26c%3Dd%2B%C3%A9"


async def test_braces_are_literal_not_variables(upstream: Upstream, start_gateway: StartGateway) -> None:
    # SCG does not expand URI variables in the replacement; neither do we.
    gw = await start_gateway(
        one_route(upstream.url, '["RewriteRequestParameter=q, {segment}"]', '["Path=/red/{segment}"]')
    )
    assert (await fetch(gw, "/red/blue?q=1")).seen()["query"] == "q=%7Bsegment%7D"


async def test_empty_replacement(upstream: Upstream, start_gateway: StartGateway) -> None:
    # The expanded form: a shortcut drops empty tokens, as Spring's tokenizer does.
    gw = await start_gateway(
        one_route(upstream.url, "[{name: RewriteRequestParameter, args: {name: q, replacement: ''}}]")
    )
    assert (await fetch(gw, "/x?q=1&q=2")).seen()["query"] == "q="


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ("[RewriteRequestParameter=q]", "routes[0].filters[0].args.replacement", "required"),
        ('["RewriteRequestParameter=a, b, c"]', "routes[0].filters[0]", "at most 2"),
        (
            "[{name: RewriteRequestParameter, args: {name: '', replacement: x}}]",
            "routes[0].filters[0].args.name",
            "at least 1",
        ),
        (
            "[{name: RewriteRequestParameter, args: {name: q, replacement: x, value: y}}]",
            "routes[0].filters[0].args.value",
            "unknown argument",
        ),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues
