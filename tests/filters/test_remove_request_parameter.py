"""RemoveRequestParameter through real requests: every value removed, the rest byte for byte, decoded names."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, one_route


@pytest.mark.parametrize(
    ("sent", "query"),
    [
        ("/x?red=1&a=2&red=3", "a=2"),
        ("/x?a=%2F+b&red=1&c", "a=%2F+b&c"),  # the others keep their exact bytes and order
        ("/x?red", ""),  # a name without a value
        ("/x?red=", ""),
        ("/x?r%65d=1&a=2", "a=2"),  # names are compared decoded, as Spring reads them
        ("/x?a=1&&b=2", "a=1&&b=2"),  # nothing removed: the query is left exactly alone
        ("/x?RED=1&reds=2&xred=3", "RED=1&reds=2&xred=3"),  # exact, case-sensitive names only
        ("/x?a=red&b=red%3D1", "a=red&b=red%3D1"),  # values are never names
        ("/x", ""),
    ],
)
async def test_shortcut(upstream: Upstream, start_gateway: StartGateway, sent: str, query: str) -> None:
    gw = await start_gateway(one_route(upstream.url, '["RemoveRequestParameter=red"]'))
    reply = await fetch(gw, sent)
    assert reply.status == 200
    assert reply.seen()["path"] == "/x"
    assert reply.seen()["query"] == query


async def test_expanded_form_with_a_name_needing_encoding(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '[{name: RemoveRequestParameter, args: {name: "my name"}}]'))
    assert (await fetch(gw, "/x?my+name=1&my%20name=2&keep=3")).seen()["query"] == "keep=3"


async def test_two_filters_remove_two_names(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(upstream.url, '["RemoveRequestParameter=token", "RemoveRequestParameter=debug"]')
    )
    assert (await fetch(gw, "/x?token=s3cret&id=1&debug=true")).seen()["query"] == "id=1"


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ("[RemoveRequestParameter]", "routes[0].filters[0].args.name", "required"),
        ('["RemoveRequestParameter=a, b"]', "routes[0].filters[0]", "at most 1"),
        ("[{name: RemoveRequestParameter, args: {name: ''}}]", "routes[0].filters[0].args.name", "at least 1"),
        ("[{name: RemoveRequestParameter, args: {name: [a]}}]", "routes[0].filters[0].args.name", "string"),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues
