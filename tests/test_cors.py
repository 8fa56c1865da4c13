"""CORS through real requests: globalcors and metadata.cors, preflights answered by the gateway."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, fetch

PREFLIGHT = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}


def routes(upstream: Upstream, route_cors: str = "", global_cors: str = "") -> str:
    return f"""
{global_cors}
routes:
  - id: api
    uri: {upstream.url}
    predicates: [Path=/api/**, Method=GET]
    metadata: {{{route_cors}}}
  - id: other
    uri: {upstream.url}
    predicates: [Path=/other/**]
"""


ROUTE_CORS = (
    "cors: {allowedOrigins: [https://app.example.com], allowedMethods: [GET, POST], "
    "allowedHeaders: [X-Token], exposedHeaders: [X-Trace], allowCredentials: true, maxAge: 30}"
)


async def test_preflight_is_answered_by_the_gateway(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(routes(upstream, ROUTE_CORS))
    reply = await fetch(
        gw, "/api/x", method="OPTIONS", headers={**PREFLIGHT, "Access-Control-Request-Headers": "x-token"}
    )
    assert reply.status == 200
    assert reply.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert reply.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert reply.headers["Access-Control-Allow-Headers"] == "x-token"
    assert reply.headers["Access-Control-Allow-Credentials"] == "true"
    assert reply.headers["Access-Control-Max-Age"] == "30"
    assert "Origin" in reply.headers["Vary"]
    assert upstream.hits == []  # answered although the route itself only matches GET


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        {"Origin": "https://app.example.com", "Access-Control-Request-Method": "DELETE"},
        {**PREFLIGHT, "Access-Control-Request-Headers": "X-Token, X-Other"},
    ],
    ids=["origin", "method", "header"],
)
async def test_preflight_asking_for_more_is_refused(
    upstream: Upstream, start_gateway: StartGateway, headers: dict[str, str]
) -> None:
    gw = await start_gateway(routes(upstream, ROUTE_CORS))
    reply = await fetch(gw, "/api/x", method="OPTIONS", headers=headers)
    assert reply.status == 403
    assert "Access-Control-Allow-Origin" not in reply.headers
    assert upstream.hits == []


async def test_actual_request_is_decorated(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(routes(upstream, ROUTE_CORS))
    reply = await fetch(gw, "/api/x", headers={"Origin": "https://app.example.com"})
    assert reply.status == 200
    assert reply.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert reply.headers["Access-Control-Allow-Credentials"] == "true"
    assert reply.headers["Access-Control-Expose-Headers"] == "X-Trace"
    assert reply.headers["Vary"] == "Origin"
    assert reply.upstream_got("Origin") == ["https://app.example.com"]  # the upstream still sees the origin


async def test_disallowed_origin_never_reaches_the_upstream(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(routes(upstream, ROUTE_CORS))
    reply = await fetch(gw, "/api/x", headers={"Origin": "https://evil.example"})
    assert reply.status == 403
    assert upstream.hits == []


async def test_same_origin_and_originless_requests_are_not_cors(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(routes(upstream, ROUTE_CORS))
    same = await fetch(gw, "/api/x", headers={"Origin": f"http://127.0.0.1:{gw.port}"})
    plain = await fetch(gw, "/api/x")
    assert same.status == plain.status == 200
    assert "Access-Control-Allow-Origin" not in same.headers and "Access-Control-Allow-Origin" not in plain.headers


GLOBAL = """
globalcors:
  cors-configurations:
    '[/**]':
      allowedOrigins: "*"
      allowedMethods: "*"
      allowedHeaders: "*"
  add-to-simple-url-handler-mapping: true
"""


async def test_global_configuration_in_scg_shape(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(routes(upstream, global_cors=GLOBAL))
    pre = await fetch(gw, "/other/x", method="OPTIONS", headers={**PREFLIGHT, "Access-Control-Request-Headers": "A, B"})
    assert pre.status == 200
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
    assert pre.headers["Access-Control-Allow-Methods"] == "POST"
    assert pre.headers["Access-Control-Allow-Headers"] == "A, B"
    actual = await fetch(gw, "/nowhere", headers={"Origin": "https://any.example"})
    assert actual.status == 404  # no route; the error still carries CORS so the page can read it
    assert actual.headers["Access-Control-Allow-Origin"] == "*"


async def test_route_configuration_wins_over_global(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(routes(upstream, ROUTE_CORS, GLOBAL))
    reply = await fetch(gw, "/api/x", headers={"Origin": "https://other.example"})
    assert reply.status == 403  # the route's list applies, not the global '*'
    other = await fetch(gw, "/other/x", headers={"Origin": "https://other.example"})
    assert other.status == 200 and other.headers["Access-Control-Allow-Origin"] == "*"


async def test_origin_patterns_with_ports(upstream: Upstream, start_gateway: StartGateway) -> None:
    cors = "cors: {allowedOriginPatterns: ['https://*.example.com:[8080,8443]']}"
    gw = await start_gateway(routes(upstream, cors))
    ok = await fetch(gw, "/api/x", headers={"Origin": "https://a.b.example.com:8443"})
    no_port = await fetch(gw, "/api/x", headers={"Origin": "https://a.example.com"})
    other = await fetch(gw, "/api/x", headers={"Origin": "https://example.org:8080"})
    assert ok.status == 200 and ok.headers["Access-Control-Allow-Origin"] == "https://a.b.example.com:8443"
    assert no_port.status == 403 and other.status == 403


async def test_without_cors_configuration_options_is_proxied(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(routes(upstream))
    reply = await fetch(gw, "/other/x", method="OPTIONS", headers=PREFLIGHT)
    assert reply.status == 200
    assert len(upstream.hits) == 1  # the backend handles its own CORS


def test_credentials_with_any_origin_is_refused() -> None:
    text = "routes: [{id: r, uri: 'http://h', metadata: {cors: {allowedOrigins: '*', allowCredentials: true}}}]"
    issues = config_issues(text)
    assert any(p == "routes[0].metadata.cors" and "allowedOriginPatterns" in m for p, m in issues), issues


def test_global_cors_errors_have_locations() -> None:
    text = "globalcors: {cors-configurations: {'[/**]': {maxAge: -1}}}\nroutes: []\n"
    issues = config_issues(text)
    assert any(p.startswith("globalcors.") and "maxAge" in p for p, _ in issues), issues
