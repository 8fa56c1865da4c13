"""RemoveResponseHeader through real requests: every value goes, framing stays correct, config."""

from __future__ import annotations

import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.conftest import StartGateway, StartUpstream, Upstream
from tests.helpers import app_serving, config_issues, config_only_route, fetch, one_route


async def echoing_headers(start_upstream: StartUpstream) -> Upstream:
    """An upstream answering with each query parameter as a response header, repeats and order kept."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="hello", headers=CIMultiDict(request.query.items()))

    return await start_upstream(app_serving("/{tail:.*}", handler))


async def test_removes_every_value(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    up = await echoing_headers(start_upstream)
    gw = await start_gateway(one_route(up.url, '["RemoveResponseHeader=X-Secret"]'))
    reply = await fetch(gw, "/a?X-Secret=1&x-secret=2&X-Keep=k")
    assert reply.status == 200
    assert reply.values("X-Secret") == []
    assert reply.values("X-Keep") == [b"k"]
    assert reply.body == b"hello"


async def test_expanded_form_and_absent_header(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, "[{name: RemoveResponseHeader, args: {name: X-Nothing}}]"))
    reply = await fetch(gw, "/")
    assert reply.status == 200
    assert reply.seen()["path"] == "/"


async def test_removing_content_length_keeps_the_body_whole(upstream: Upstream, start_gateway: StartGateway) -> None:
    # The writer frames the response itself: without Content-Length the body goes out chunked, never truncated.
    gw = await start_gateway(one_route(upstream.url, '["RemoveResponseHeader=Content-Length"]'))
    reply = await fetch(gw, "/echo")
    assert reply.status == 200
    assert reply.seen()["path"] == "/echo"
    assert reply.values("Content-Length") == []
    assert reply.values("Transfer-Encoding") == [b"chunked"]


ARGS = "routes[0].filters[0].args"


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ('["RemoveResponseHeader"]', f"{ARGS}.name", "required"),
        ('["RemoveResponseHeader=X A"]', f"{ARGS}.name", "pattern"),
        ('["RemoveResponseHeader=X-A, X-B"]', "routes[0].filters[0]", "at most 1"),
        ("[{name: RemoveResponseHeader, args: {name: ''}}]", f"{ARGS}.name", "at least 1"),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues
