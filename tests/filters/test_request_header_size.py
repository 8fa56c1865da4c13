"""RequestHeaderSize through real requests: 431 with the error header, SCG's counting and defaults, config."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from gateway.demo import echo
from tests.conftest import StartGateway, StartUpstream, Upstream
from tests.helpers import config_issues, config_only_route, converse, fetch, one_route, parse_responses

NAME = "X-" + "n" * 98  # 100 bytes


async def roomy_echo(start_upstream: StartUpstream) -> Upstream:
    """The demo echo backend accepting header lines longer than aiohttp's default 8190 bytes."""
    app = web.Application(handler_args={"max_field_size": 32768})
    app.router.add_route("*", "/{tail:.*}", echo)
    return await start_upstream(app)


async def test_default_limit_is_16000_bytes_of_name_plus_value(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    upstream = await roomy_echo(start_upstream)
    gw = await start_gateway(one_route(upstream.url, "[RequestHeaderSize]"))
    at_limit = await fetch(gw, "/a", headers={NAME: "v" * (16000 - 100)})
    assert at_limit.status == 200
    assert at_limit.upstream_got(NAME) == ["v" * 15900]
    over = await fetch(gw, "/a", headers={NAME: "v" * (16001 - 100)})
    assert over.status == 431
    assert len(upstream.hits) == 1  # the upstream never saw it
    assert over.headers["Content-Type"].startswith("application/problem+json")
    message = over.headers["errorMessage"]
    assert "(16000B)" in message
    assert f"'{NAME}' is 16001B" in message
    assert json.loads(over.body)["detail"] == message


async def test_repeated_fields_of_one_name_count_together(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["RequestHeaderSize=1000B"]'))
    # Each line alone is 551 bytes; together 1002. A raw request: the aiohttp client would fold them into one.
    line = f"{NAME}: {'v' * 451}\r\n"
    head = f"GET / HTTP/1.1\r\nHost: x\r\n{line}{line}Connection: close\r\n\r\n"
    [response] = parse_responses((await converse(gw.port, head.encode())).data)
    assert response.status == 431
    assert f"'{NAME}' is 1002B" in (response.header("errormessage") or "")
    assert upstream.hits == []


async def test_every_oversized_header_is_named(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["RequestHeaderSize=1KB, X-Header-Error"]'))
    reply = await fetch(gw, "/", headers={"X-Small": "s", "X-Big-One": "a" * 1100, "Cookie": "c" * 2000})
    assert reply.status == 431
    message = reply.headers["X-Header-Error"]
    assert "(1024B)" in message
    assert "'X-Big-One' is 1109B" in message
    assert "'Cookie' is 2006B" in message
    assert "X-Small" not in message
    assert "errorMessage" not in reply.headers


@pytest.mark.parametrize(("size", "limit"), [("1000", 1000), ("1000B", 1000), ("2KB", 2048), ("2kb", 2048)])
async def test_sizes_in_spring_units(upstream: Upstream, start_gateway: StartGateway, size: str, limit: int) -> None:
    gw = await start_gateway(one_route(upstream.url, f"[{{name: RequestHeaderSize, args: {{maxSize: '{size}'}}}}]"))
    assert (await fetch(gw, "/", headers={NAME: "v" * (limit - 100)})).status == 200
    assert (await fetch(gw, "/", headers={NAME: "v" * (limit - 99)})).status == 431


async def test_runs_before_the_rewriting_filters(upstream: Upstream, start_gateway: StartGateway) -> None:
    # Band 150 comes before band 900 whatever the YAML order: the limit applies to what the client sent, not to
    # what the route itself adds.
    gw = await start_gateway(
        one_route(
            upstream.url,
            f'["AddRequestHeader=X-Added, {"a" * 2000}", {{name: RequestHeaderSize, args: {{maxSize: 1000}}}}]',
        )
    )
    reply = await fetch(gw, "/")
    assert reply.status == 200
    assert reply.upstream_got("X-Added") == ["a" * 2000]
    assert (await fetch(gw, "/", headers={"X-Client": "c" * 1000})).status == 431


async def test_server_limit_still_bounds_the_whole_head(upstream: Upstream, start_gateway: StartGateway) -> None:
    # A larger per-header limit does not raise the server's own bound on the head (limits.max_header_bytes).
    gw = await start_gateway(one_route(upstream.url, "[{name: RequestHeaderSize, args: {maxSize: 1MB}}]"))
    assert (await fetch(gw, "/", headers={NAME: "v" * 40000})).status == 431
    assert upstream.hits == []


ARGS = "routes[0].filters[0].args"


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ("[RequestHeaderSize=0]", f"{ARGS}.maxSize", "greater than or equal to 1"),
        ("[RequestHeaderSize=2MB]", f"{ARGS}.maxSize", "less than or equal to 1048576"),
        ("[RequestHeaderSize=1.5KB]", f"{ARGS}.maxSize", "not a size"),
        ("[RequestHeaderSize=16K]", f"{ARGS}.maxSize", "not a size"),
        ("[RequestHeaderSize=-1]", f"{ARGS}.maxSize", "greater than or equal to 1"),
        ("[{name: RequestHeaderSize, args: {maxSize: true}}]", f"{ARGS}.maxSize", "boolean"),
        ("[{name: RequestHeaderSize, args: {maxSize: [1]}}]", f"{ARGS}.maxSize", "integer"),
        ('["RequestHeaderSize=1000, Content-Length"]', f"{ARGS}.errorHeaderName", "managed by the gateway"),
        ('["RequestHeaderSize=1000, X Error"]', f"{ARGS}.errorHeaderName", "pattern"),
        ('["RequestHeaderSize=1000, X-E, x"]', "routes[0].filters[0]", "at most 2"),
        ("[{name: RequestHeaderSize, args: {maxSizes: 1000}}]", f"{ARGS}.maxSizes", "unknown argument"),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues
