"""Host predicate through real requests: `{sub}` captures, `**` labels, ports, case, the host index, config."""

from __future__ import annotations

import pytest

from gateway.app import Gateway
from tests.conftest import GatewayUnderTest, StartGateway, Upstream, raw_exchange, status_of
from tests.helpers import Reply, config_issues, config_only_route, fetch, route


async def with_host(gw: GatewayUnderTest, host: str, path: str = "/") -> Reply:
    return await fetch(gw, path, headers={"Host": host})


# -- shortcut form ----------------------------------------------------------------------------------------------


async def test_sub_capture_with_port_in_host_header(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:"
        + route(
            upstream,
            '["Host={sub}.example.org"]',
            '["AddRequestHeader=X-Sub, {sub}", "AddResponseHeader=X-Sub, {sub}"]',
        )
    )
    reply = await with_host(gw, "red.example.org:8080", "/anything")
    assert reply.status == 200
    assert reply.upstream_got("X-Sub") == ["red"]
    assert reply.headers.getall("X-Sub") == ["red"]
    # The upstream gets its own authority as Host; the client's Host travels in X-Forwarded-Host.
    assert reply.upstream_got("Host") == [f"127.0.0.1:{upstream.port}"]
    assert reply.upstream_got("X-Forwarded-Host") == ["red.example.org:8080"]

    assert (await with_host(gw, "blue.example.org")).upstream_got("X-Sub") == ["blue"]
    assert (await with_host(gw, "a.b.example.org")).status == 404  # {sub} is exactly one label
    assert (await with_host(gw, "example.org")).status == 404
    assert (await with_host(gw, "red.example.com")).status == 404


async def test_host_match_is_case_insensitive_and_captures_lower_case(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(
        "routes:" + route(upstream, '["Host={sub}.Example.ORG"]', '["AddRequestHeader=X-Sub, {sub}"]')
    )
    reply = await with_host(gw, "RED.example.Org")
    assert reply.status == 200
    assert reply.upstream_got("X-Sub") == ["red"]


async def test_double_star_labels(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Host=**.example.org"]'))
    assert (await with_host(gw, "a.example.org")).status == 200
    assert (await with_host(gw, "a.b.c.example.org:8443")).status == 200
    assert (await with_host(gw, "example.org")).status == 200  # `**` matches zero labels (AntPathMatcher)
    assert (await with_host(gw, "example.org.")).status == 200  # a trailing dot is ignored
    assert (await with_host(gw, "notexample.org")).status == 404  # labels, not substrings
    assert (await with_host(gw, "a.example.org.evil.com")).status == 404
    assert (await with_host(gw, "a.example.com")).status == 404


async def test_several_patterns_any_may_match(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:"
        + route(upstream, '["Host=**.somehost.org,{sub}.anotherhost.org"]', '["AddRequestHeader=X-Sub, [{sub}]"]')
    )
    assert (await with_host(gw, "www.somehost.org")).upstream_got("X-Sub") == ["[{sub}]"]
    assert (await with_host(gw, "beta.anotherhost.org")).upstream_got("X-Sub") == ["[beta]"]
    assert (await with_host(gw, "beta.thirdhost.org")).status == 404


async def test_pattern_with_port_requires_that_port(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Host=api.example.org:8443"]'))
    assert (await with_host(gw, "api.example.org:8443")).status == 200
    assert (await with_host(gw, "api.example.org:8080")).status == 404
    assert (await with_host(gw, "api.example.org")).status == 404


async def test_missing_or_malformed_host_does_not_match(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:"
        + route(upstream, '["Host=**.example.org"]', rid="hosted")
        + route(upstream, '["Path=/**"]', '["SetStatus=299"]', rid="fallback", order=1)
    )
    # HTTP/1.0 without Host: the Host route cannot match, the fallback answers.
    raw = await raw_exchange(gw.port, b"GET /x HTTP/1.0\r\n\r\n")
    assert status_of(raw) == 299
    hits = len(upstream.hits)
    assert (await with_host(gw, "a.example.org:http")).status == 400  # RFC 9112: an invalid Host is a 400
    assert len(upstream.hits) == hits


async def test_host_and_path_together(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:"
        + route(
            upstream,
            '["Host={tenant}.api.example.org", "Path=/v1/{resource}/**"]',
            '["AddRequestHeader=X-Who, {tenant}/{resource}"]',
        )
    )
    reply = await with_host(gw, "acme.api.example.org", "/v1/orders/17")
    assert reply.status == 200
    assert reply.upstream_got("X-Who") == ["acme/orders"]
    assert (await with_host(gw, "acme.api.example.org", "/v2/orders/17")).status == 404
    assert (await with_host(gw, "acme.web.example.org", "/v1/orders/17")).status == 404


# -- the host index and order -----------------------------------------------------------------------------------


async def test_exact_host_routes_and_order_across_the_index(upstream: Upstream, start_gateway: StartGateway) -> None:
    routes = (
        "routes:"
        + route(upstream, '["Host=api.example.org", "Path=/x/**"]', '["AddRequestHeader=X-Route, api"]', rid="api")
        + route(upstream, '["Host=www.example.org"]', '["AddRequestHeader=X-Route, www"]', rid="www", order=-1)
        + route(upstream, '["Path=/**"]', '["AddRequestHeader=X-Route, any"]', rid="any", order=1)
        + route(upstream, '["Host=API.example.org"]', '["AddRequestHeader=X-Route, api-early"]', rid="early", order=-5)
    )
    gw = await start_gateway(routes)
    assert (await with_host(gw, "api.example.org", "/x/1")).upstream_got("X-Route") == ["api-early"]
    assert (await with_host(gw, "www.example.org:80", "/x/1")).upstream_got("X-Route") == ["www"]
    assert (await with_host(gw, "other.example.org", "/x/1")).upstream_got("X-Route") == ["any"]


async def test_exact_host_route_beats_later_catch_all(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:"
        + route(upstream, '["Host=api.example.org"]', '["AddRequestHeader=X-Route, api"]', rid="api")
        + route(upstream, '["Path=/**"]', '["AddRequestHeader=X-Route, any"]', rid="any")
    )
    assert (await with_host(gw, "API.Example.Org.", "/x")).upstream_got("X-Route") == ["api"]
    assert (await with_host(gw, "web.example.org", "/x")).upstream_got("X-Route") == ["any"]


# -- expanded form ----------------------------------------------------------------------------------------------


async def test_expanded_form_list_string_and_indexed(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: list
    uri: {upstream.url}
    predicates:
      - name: Host
        args:
          patterns: ["{{sub}}.one.test", "**.two.test"]
    filters:
      - name: AddRequestHeader
        args: {{name: X-Route, value: "list-{{sub}}"}}
  - id: indexed
    uri: {upstream.url}
    predicates:
      - name: Host
        args:
          patterns.0: three.test
          patterns.1: "*.four.test"
    filters: ["AddRequestHeader=X-Route, indexed"]
  - id: single
    uri: {upstream.url}
    predicates:
      - {{name: Host, args: {{patterns: five.test}}}}
    filters: ["AddRequestHeader=X-Route, single"]
"""
    )
    assert (await with_host(gw, "a.one.test")).upstream_got("X-Route") == ["list-a"]
    assert (await with_host(gw, "x.y.two.test")).upstream_got("X-Route") == ["list-{sub}"]
    assert (await with_host(gw, "three.test")).upstream_got("X-Route") == ["indexed"]
    assert (await with_host(gw, "q.four.test")).upstream_got("X-Route") == ["indexed"]
    assert (await with_host(gw, "four.test")).status == 404  # `*` is one non-empty label
    assert (await with_host(gw, "five.test")).upstream_got("X-Route") == ["single"]


# -- config accepted / rejected ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("predicates", "path", "fragment"),
    [
        ('["Host=a..example.org"]', "routes[0].predicates[0].args.patterns", "label 2 is empty"),
        ('["Host={*rest}.example.org"]', "routes[0].predicates[0].args.patterns", "not supported in host"),
        ('["Host=a.example.org:99999"]', "routes[0].predicates[0].args.patterns", "out of range"),
        ('["Host=a.example.org:0"]', "routes[0].predicates[0].args.patterns", "out of range"),
        ('["Host=a b.example.org"]', "routes[0].predicates[0].args.patterns", "not allowed"),
        ('["Host=user@example.org"]', "routes[0].predicates[0].args.patterns", "not allowed"),
        ('["Host=**.**.example.org"]', "routes[0].predicates[0].args.patterns", "redundant"),
        ('["Host=a**.example.org"]', "routes[0].predicates[0].args.patterns", "whole label"),
        ('["Host={x}.{x}.org"]', "routes[0].predicates[0].args.patterns", "duplicate variable"),
        ('["Host={x.org"]', "routes[0].predicates[0].args.patterns", "unclosed"),
        ('["Host=ok.org,bad..org"]', "routes[0].predicates[0].args.patterns", "'bad..org'"),
        ("[{name: Host, args: {patterns: []}}]", "routes[0].predicates[0].args.patterns", "at least 1"),
        ("[{name: Host, args: {}}]", "routes[0].predicates[0].args.patterns", "required"),
        (
            "[{name: Host, args: {patterns: [a.org], includePort: true}}]",
            "routes[0].predicates[0].args.includePort",
            "True is not one",  # gathered into patterns, as SCG does, and refused: not a host pattern
        ),
        ("[{name: Host, args: {patterns: {a: b}}}]", "routes[0].predicates[0].args.patterns", "list"),
    ],
)
def test_invalid_host_config(predicates: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(predicates=predicates))
    assert any(p == path and fragment in m for p, m in issues), issues


def test_valid_host_patterns_are_accepted() -> None:
    config = Gateway().load_text(
        config_only_route(predicates='["Host=**.example.org,{sub}.example.org,example.org:8080,[::1],*.a.b"]'),
        "routes.yaml",
    )
    assert len(config.routes) == 1
