"""SetStatus through real requests: by number and by name, originalStatusHeaderName, no://op, bodiless statuses."""

from __future__ import annotations

import json

import aiohttp
import pytest

from gateway.app import Gateway
from tests.conftest import StartGateway, Upstream, raw_exchange, status_of
from tests.helpers import config_issues, config_only_route, fetch, one_route


async def test_by_number_keeps_the_upstream_body(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, "[SetStatus=401]"))
    reply = await fetch(gw, "/anything")
    assert reply.status == 401
    assert reply.reason == "Unauthorized"  # not the upstream's "OK"
    assert json.loads(reply.body)["path"] == "/anything"  # the request was proxied; only the status changed
    assert len(upstream.hits) == 1


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("UNAUTHORIZED", 401),
        ("ACCEPTED", 202),
        ("SERVICE_UNAVAILABLE", 503),
        # Spring's HttpStatus names, which SCG configs use, where Python's HTTPStatus spells them differently.
        ("I_AM_A_TEAPOT", 418),
        ("PAYLOAD_TOO_LARGE", 413),
        ("URI_TOO_LONG", 414),
    ],
)
async def test_by_name(upstream: Upstream, start_gateway: StartGateway, name: str, code: int) -> None:
    gw = await start_gateway(one_route(upstream.url, f"[SetStatus={name}]"))
    assert (await fetch(gw, "/x")).status == code


async def test_replaces_an_upstream_error_status(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, "[SetStatus=200]"))
    reply = await fetch(gw, "/status/503")
    assert reply.status == 200
    assert reply.body == b"status 503\n"


async def test_original_status_header(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(
            upstream.url,
            "[{name: SetStatus, args: {status: 418, originalStatusHeaderName: X-Original-Status}}]",
        )
    )
    reply = await fetch(gw, "/status/503")
    assert reply.status == 418
    assert reply.headers.getall("X-Original-Status") == ["503"]
    ok = await fetch(gw, "/echo")
    assert ok.status == 418
    assert ok.headers.getall("X-Original-Status") == ["200"]


async def test_expanded_form_with_string_number(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '[{name: SetStatus, args: {status: "429"}}]'))
    assert (await fetch(gw, "/x")).status == 429


async def test_no_op_route(start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(
            "no://op",
            '["SetStatus=FORBIDDEN", "AddResponseHeader=X-Why, blocked-{what}"]',
            '["Path=/admin/{what}"]',
        )
    )
    reply = await fetch(gw, "/admin/users")
    assert reply.status == 403
    assert reply.headers.getall("X-Why") == ["blocked-users"]
    assert reply.body == b""


async def test_no_op_route_with_original_status(start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route("no://op", "[{name: SetStatus, args: {status: 401, originalStatusHeaderName: X-Was}}]")
    )
    reply = await fetch(gw, "/x")
    assert reply.status == 401
    assert reply.headers.getall("X-Was") == ["200"]


async def test_listed_twice_the_outer_one_wins(upstream: Upstream, start_gateway: StartGateway) -> None:
    # On the response side the later filter runs first, so the first one listed has the last word.
    gw = await start_gateway(
        one_route(
            upstream.url,
            "[{name: SetStatus, args: {status: 401, originalStatusHeaderName: X-Before-Outer}},"
            " {name: SetStatus, args: {status: 418, originalStatusHeaderName: X-Before-Inner}}]",
        )
    )
    reply = await fetch(gw, "/x")
    assert reply.status == 401
    assert reply.headers.getall("X-Before-Inner") == ["200"]
    assert reply.headers.getall("X-Before-Outer") == ["418"]


async def test_default_filter_status_applies_to_every_route(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
default-filters: ["SetStatus=202"]
routes:
  - id: a
    uri: {upstream.url}
    predicates: ["Path=/a/**"]
  - id: b
    uri: no://op
    predicates: ["Path=/b/**"]
"""
    )
    assert (await fetch(gw, "/a/1")).status == 202
    assert (await fetch(gw, "/b/1")).status == 202


@pytest.mark.parametrize("code", [204, 304])
async def test_bodiless_status_drops_the_body_and_keeps_the_connection(
    upstream: Upstream, start_gateway: StartGateway, code: int
) -> None:
    # RFC 9110: 204 and 304 have no content. The upstream's body must not leak onto the connection, where the
    # client would read it as the start of the next response.
    gw = await start_gateway(
        f"""
routes:
  - id: empty
    uri: {upstream.url}
    predicates: ["Path=/empty/**"]
    filters: ["SetStatus={code}"]
  - id: echo
    uri: {upstream.url}
    predicates: ["Path=/echo/**"]
"""
    )
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=15)) as session:
        for _ in range(2):
            async with session.get(gw.url("/empty/x")) as resp:
                assert resp.status == code
                assert await resp.read() == b""
            async with session.get(gw.url("/echo/next")) as resp:
                assert resp.status == 200
                assert json.loads(await resp.read())["path"] == "/echo/next"


async def test_head_request_status(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, "[SetStatus=401]"))
    raw = await raw_exchange(gw.port, b"HEAD /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(raw) == 401
    assert raw.endswith(b"\r\n\r\n")  # head only


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ("[SetStatus=NOT_A_STATUS]", "routes[0].filters[0].args.status", "NOT_A_STATUS"),
        ("[SetStatus=99]", "routes[0].filters[0].args.status", "between 200 and 599"),
        ("[SetStatus=600]", "routes[0].filters[0].args.status", "between 200 and 599"),
        ("[SetStatus=CONTINUE]", "routes[0].filters[0].args.status", "between 200 and 599"),
        ("[SetStatus=-401]", "routes[0].filters[0].args.status", "-401"),
        ("[SetStatus=4O1]", "routes[0].filters[0].args.status", "4O1"),
        ("[SetStatus]", "routes[0].filters[0].args.status", "required"),
        ('["SetStatus=401,X-Original"]', "routes[0].filters[0]", "at most 1"),
        ("[{name: SetStatus, args: {status: true}}]", "routes[0].filters[0].args.status", "number or"),
        ("[{name: SetStatus, args: {status: 401.5}}]", "routes[0].filters[0].args.status", "401.5"),
        ("[{name: SetStatus, args: {status: [401]}}]", "routes[0].filters[0].args.status", "status"),
        (
            "[{name: SetStatus, args: {status: 401, originalStatusHeaderName: 'X Bad'}}]",
            "routes[0].filters[0].args.originalStatusHeaderName",
            "pattern",
        ),
        (
            "[{name: SetStatus, args: {status: 401, originalStatusHeader: X-A}}]",
            "routes[0].filters[0].args.originalStatusHeader",
            "unknown argument",
        ),
    ],
)
def test_invalid_set_status_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues


def test_kebab_case_argument_names_are_read_as_spring_does() -> None:
    # Spring's relaxed binding reads original-status-header-name as originalStatusHeaderName.
    text = config_only_route(filters="[{name: SetStatus, args: {status: 401, original-status-header-name: X-A}}]")
    config = Gateway().load_text(text)
    assert config.routes[0].filters[0].args == {"status": 401, "originalStatusHeaderName": "X-A"}  # normalized names


@pytest.mark.parametrize("name", ["Content-Length", "Transfer-Encoding", "Connection"])
def test_original_status_header_cannot_be_a_framing_header(name: str) -> None:
    # The same rule as every response-header name a filter sets (gateway.spec.ResponseHeaderName).
    filters = f"[{{name: SetStatus, args: {{status: 401, originalStatusHeaderName: {name}}}}}]"
    issues = config_issues(config_only_route(filters=filters))
    where = "routes[0].filters[0].args.originalStatusHeaderName"
    assert any(p == where and "managed by the gateway" in m for p, m in issues), issues
