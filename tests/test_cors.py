"""CORS through real requests: globalcors and metadata.cors, preflights answered by the gateway."""

from __future__ import annotations

import pytest
from aiohttp import web

from tests.conftest import StartGateway, StartUpstream, Upstream
from tests.helpers import config_issues, fetch

PREFLIGHT = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}


def routes(upstream: Upstream, route_cors: str = "", global_cors: str = "") -> str:
    return f"""
{global_cors}
routes:
  - id: api
    uri: {upstream.url}
    predicates: [Path=/api/**]
    metadata: {{{route_cors}}}
  - id: reports
    uri: {upstream.url}
    predicates: [Path=/reports/**, Method=GET]
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
    assert upstream.hits == []  # answered by the gateway


async def test_preflight_takes_the_policy_of_the_route_the_announced_method_reaches(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(routes(upstream, ROUTE_CORS))
    headers = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}
    served = await fetch(gw, "/reports/x", method="OPTIONS", headers=headers)
    assert served.status == 200  # the GET-only route answers a preflight announcing GET
    unserved = await fetch(gw, "/reports/x", method="OPTIONS", headers=PREFLIGHT)
    assert unserved.status == 404  # no route takes POST there: no policy grants it
    assert "Access-Control-Allow-Origin" not in unserved.headers


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


async def test_a_route_policy_does_not_leak_to_another_host_on_the_same_path(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: a
    uri: {upstream.url}
    predicates: [Path=/api/**, Host=a.example.com]
    metadata: {{cors: {{allowedOrigins: [https://evil.example], allowCredentials: true}}}}
  - id: b
    uri: {upstream.url}
    predicates: [Path=/api/**, Host=b.example.com]
"""
    )
    reply = await fetch(gw, "/api/x", headers={"Host": "b.example.com", "Origin": "https://evil.example"})
    assert reply.status == 200
    assert "Access-Control-Allow-Origin" not in reply.headers  # route b has no policy; a's does not apply


async def test_actual_request_with_a_method_not_allowed_is_refused(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(routes(upstream, "cors: {allowedOrigins: [https://app.example.com], allowedMethods: GET}"))
    reply = await fetch(gw, "/api/x", method="POST", headers={"Origin": "https://app.example.com"})
    assert reply.status == 403
    assert upstream.hits == []


async def test_upstream_cors_headers_are_replaced_not_doubled(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    async def cors_backend(request: web.Request) -> web.Response:
        headers = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": "false"}
        return web.Response(text="ok", headers=headers)

    app = web.Application()
    app.router.add_get("/api/x", cors_backend)
    upstream = await start_upstream(app)
    gw = await start_gateway(routes(upstream, ROUTE_CORS))
    reply = await fetch(gw, "/api/x", headers={"Origin": "https://app.example.com"})
    assert reply.headers.getall("Access-Control-Allow-Origin") == ["https://app.example.com"]
    assert reply.headers.getall("Access-Control-Allow-Credentials") == ["true"]


async def test_every_response_under_a_policy_varies_by_origin(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(routes(upstream, ROUTE_CORS))
    plain = await fetch(gw, "/api/x")
    refused = await fetch(gw, "/api/x", headers={"Origin": "https://evil.example"})
    assert "Origin" in plain.headers["Vary"] and "Origin" in refused.headers["Vary"]


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("gw.example:80", "http://gw.example"),
        ("gw.example", "http://GW.example:80"),
        ("[::1]:8080", "http://[::1]:8080"),
    ],
)
async def test_same_origin_compares_scheme_host_and_port(
    upstream: Upstream, start_gateway: StartGateway, host: str, origin: str
) -> None:
    gw = await start_gateway(routes(upstream, ROUTE_CORS))
    reply = await fetch(gw, "/api/x", headers={"Host": host, "Origin": origin})
    assert reply.status == 200 and "Access-Control-Allow-Origin" not in reply.headers


async def test_comma_separated_lists_as_spring_binds_them(upstream: Upstream, start_gateway: StartGateway) -> None:
    cors = "cors: {allowedOrigins: 'https://a.example, https://b.example', allowedMethods: 'GET,POST'}"
    gw = await start_gateway(routes(upstream, cors))
    for origin in ("https://a.example", "https://b.example"):
        reply = await fetch(
            gw, "/api/x", method="OPTIONS", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
        )
        assert reply.status == 200 and reply.headers["Access-Control-Allow-Methods"] == "GET, POST"


def test_cors_header_values_are_validated_at_load() -> None:
    text = "routes: [{id: r, uri: 'http://h', metadata: {cors: {exposedHeaders: ['X-A\\r\\nSet-Cookie: x=1']}}}]"
    issues = config_issues(text)
    assert any(p == "routes[0].metadata.cors.exposedHeaders" for p, _ in issues), issues


def test_a_webflux_prefixed_file_without_routes_is_still_read() -> None:
    text = "spring:\n  cloud:\n    gateway:\n      server:\n        webflux:\n          globalcors: {nonsense: 1}\n"
    issues = config_issues(text)
    assert any(p.startswith("spring.cloud.gateway.server.webflux.globalcors") for p, _ in issues), issues


def test_keys_left_at_the_old_prefix_beside_the_new_one_are_errors() -> None:
    text = (
        "spring:\n  cloud:\n    gateway:\n      trusted-proxies: '.*'\n"
        "      server:\n        webflux:\n          routes: []\n"
    )
    issues = config_issues(text)
    assert any(p == "spring.cloud.gateway.trusted-proxies" and "webflux" in m for p, m in issues), issues
