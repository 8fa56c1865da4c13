"""Method predicate through real requests: method lists, case, routing by method, config errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import pytest
from aiohttp.typedefs import LooseHeaders
from multidict import CIMultiDictProxy

from gateway.app import Gateway
from gateway.errors import ConfigError
from tests.conftest import GatewayUnderTest, StartGateway, Upstream, raw_exchange, status_of


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def seen(self) -> dict[str, Any]:
        """What the demo upstream echoed."""
        return cast(dict[str, Any], json.loads(self.body))

    def upstream_got(self, name: str) -> list[str]:
        """Every value of header `name` as the upstream received it, in order."""
        return [v for k, v in self.seen()["headers"] if k.lower() == name.lower()]


async def fetch(
    gw: GatewayUnderTest, path: str, *, method: str = "GET", headers: LooseHeaders = (), data: bytes | None = None
) -> Reply:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
        session.request(method, gw.url(path), headers=headers, data=data) as resp,
    ):
        return Reply(resp.status, resp.headers, await resp.read())


def route(upstream: Upstream, predicates: str, filters: str = "[]", *, rid: str = "r", order: int = 0) -> str:
    return f"""
  - id: {rid}
    uri: {upstream.url}
    order: {order}
    predicates: {predicates}
    filters: {filters}
"""


def config_issues(text: str) -> list[tuple[str, str]]:
    """Compile routes YAML in a fresh gateway; return (path, message) of every issue (fails if accepted)."""
    with pytest.raises(ConfigError) as info:
        Gateway().load_text(text, "routes.yaml")
    return [(issue.path, issue.message) for issue in info.value.issues]


async def test_shortcut_method_list(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Method=GET,POST"]'))
    got = await fetch(gw, "/a")
    assert got.status == 200 and got.seen()["method"] == "GET"
    posted = await fetch(gw, "/a", method="POST", data=b"hello")
    assert posted.status == 200
    assert posted.seen()["method"] == "POST"
    assert posted.seen()["body_bytes"] == 5
    for other in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        assert (await fetch(gw, "/a", method=other)).status == 404, other
    assert upstream.hits and {r.method for r in upstream.hits} == {"GET", "POST"}


async def test_head_is_not_get(upstream: Upstream, start_gateway: StartGateway) -> None:
    # SCG compares the method exactly: Method=GET does not match HEAD.
    gw = await start_gateway("routes:" + route(upstream, '["Method=GET"]'))
    assert (await fetch(gw, "/a", method="HEAD")).status == 404


async def test_lower_case_config_matches(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Method=get, put"]'))
    assert (await fetch(gw, "/a")).status == 200
    assert (await fetch(gw, "/a", method="PUT")).status == 200
    assert (await fetch(gw, "/a", method="POST")).status == 404


async def test_request_method_is_case_sensitive(upstream: Upstream, start_gateway: StartGateway) -> None:
    # RFC 9110 §9.1: method names are case-sensitive, so a request "get" is not GET.
    gw = await start_gateway("routes:" + route(upstream, '["Method=GET"]'))
    raw = await raw_exchange(gw.port, b"get /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(raw) in (400, 404, 501)
    assert upstream.hits == []


async def test_extension_method_is_routed(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Method=PROPFIND"]'))
    reply = await fetch(gw, "/dav/x", method="PROPFIND")
    assert reply.status == 200
    assert reply.seen()["method"] == "PROPFIND"
    assert (await fetch(gw, "/dav/x")).status == 404


async def test_same_path_routed_by_method(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:"
        + route(upstream, '["Path=/items/**", "Method=GET"]', '["AddRequestHeader=X-Route, read"]', rid="read")
        + route(
            upstream, '["Path=/items/**", "Method=POST,PUT,DELETE"]', '["AddRequestHeader=X-Route, write"]', rid="write"
        )
    )
    assert (await fetch(gw, "/items/1")).upstream_got("X-Route") == ["read"]
    assert (await fetch(gw, "/items/1", method="DELETE")).upstream_got("X-Route") == ["write"]
    assert (await fetch(gw, "/items/1", method="PUT", data=b"x")).upstream_got("X-Route") == ["write"]
    assert (await fetch(gw, "/items/1", method="PATCH")).status == 404


async def test_expanded_forms(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: list
    uri: {upstream.url}
    predicates:
      - name: Method
        args: {{methods: [PUT, PATCH]}}
    filters: ["AddRequestHeader=X-Route, list"]
  - id: indexed
    uri: {upstream.url}
    predicates:
      - name: Method
        args:
          methods.0: DELETE
          methods.1: OPTIONS
    filters: ["AddRequestHeader=X-Route, indexed"]
  - id: single
    uri: {upstream.url}
    predicates:
      - {{name: Method, args: {{methods: GET}}}}
    filters: ["AddRequestHeader=X-Route, single"]
"""
    )
    assert (await fetch(gw, "/", method="PATCH", data=b"p")).upstream_got("X-Route") == ["list"]
    assert (await fetch(gw, "/", method="OPTIONS")).upstream_got("X-Route") == ["indexed"]
    assert (await fetch(gw, "/", method="DELETE")).upstream_got("X-Route") == ["indexed"]
    assert (await fetch(gw, "/")).upstream_got("X-Route") == ["single"]
    assert (await fetch(gw, "/", method="POST")).status == 404


def _one_route(predicates: str) -> str:
    return f"routes:\n  - id: r\n    uri: http://127.0.0.1:9\n    predicates: {predicates}\n"


@pytest.mark.parametrize(
    ("predicates", "path", "fragment"),
    [
        # A method is an RFC 9110 token: digits are fine (G3T is a legal extension method), '/' is not.
        ('["Method=G/T"]', "routes[0].predicates[0].args.methods", "G/T"),
        ('["Method=GET,P OST"]', "routes[0].predicates[0].args.methods", "P OST"),
        ('["Method=GET,"]', "routes[0].predicates[0].args.methods", "not HTTP methods"),
        # Not an RFC 9110 token although str.isalpha() says it is letters.
        ('["Method=G\u00c9T"]', "routes[0].predicates[0].args.methods", "G\u00c9T"),
        ("[{name: Method, args: {methods: []}}]", "routes[0].predicates[0].args.methods", "at least 1"),
        ("[{name: Method, args: {}}]", "routes[0].predicates[0].args.methods", "required"),
        ("[{name: Method, args: {methods: 5}}]", "routes[0].predicates[0].args.methods", "list"),
        (
            "[{name: Method, args: {methods: [GET], verbs: [POST]}}]",
            "routes[0].predicates[0].args.verbs",
            "Extra inputs",
        ),
        ('["Methods=GET"]', "routes[0].predicates[0]", "did you mean 'Method'"),
    ],
)
def test_invalid_method_config(predicates: str, path: str, fragment: str) -> None:
    issues = config_issues(_one_route(predicates))
    assert any(p == path and fragment in m for p, m in issues), issues


def test_extension_methods_are_accepted() -> None:
    # RFC 9110 §9.1: a method is any token; "-" is a token character (M-SEARCH is UPnP's discovery method).
    config = Gateway().load_text(_one_route('["Method=PROPFIND,MKCOL,M-SEARCH"]'), "routes.yaml")
    assert config.routes[0].predicates[0].name == "Method"
