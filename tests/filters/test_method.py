"""Method predicate through real requests: method lists, case, routing by method, config errors."""

from __future__ import annotations

import pytest

from gateway.app import Gateway
from tests.conftest import StartGateway, Upstream, raw_exchange, status_of
from tests.helpers import config_issues, config_only_route, fetch, route


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


@pytest.mark.parametrize(
    ("predicates", "path", "fragment"),
    [
        # A method is an RFC 9110 token: digits are fine (G3T is a legal extension method), '/' is not.
        ('["Method=G/T"]', "routes[0].predicates[0].args.methods", "G/T"),
        ('["Method=GET,P OST"]', "routes[0].predicates[0].args.methods", "P OST"),
        ("[{name: Method, args: {methods: [GET, '']}}]", "routes[0].predicates[0].args.methods", "not HTTP methods"),
        # Not an RFC 9110 token although str.isalpha() says it is letters.
        ('["Method=G\u00c9T"]', "routes[0].predicates[0].args.methods", "G\u00c9T"),
        ("[{name: Method, args: {methods: []}}]", "routes[0].predicates[0].args.methods", "at least 1"),
        ("[{name: Method, args: {}}]", "routes[0].predicates[0].args.methods", "required"),
        ("[{name: Method, args: {methods: 5}}]", "routes[0].predicates[0].args.methods[0]", "valid string"),
        ('["Methods=GET"]', "routes[0].predicates[0]", "did you mean 'Method'"),
    ],
)
def test_invalid_method_config(predicates: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(predicates=predicates))
    assert any(p == path and fragment in m for p, m in issues), issues


def test_extension_methods_are_accepted() -> None:
    # RFC 9110 §9.1: a method is any token; "-" is a token character (M-SEARCH is UPnP's discovery method).
    config = Gateway().load_text(config_only_route(predicates='["Method=PROPFIND,MKCOL,M-SEARCH"]'), "routes.yaml")
    assert config.routes[0].predicates[0].name == "Method"
