"""Header hygiene both ways: hop-by-hop and Connection-named fields, underscores, forwarding headers,
Host, and nothing added by the gateway beyond its documented list."""

from __future__ import annotations

import ipaddress
import json

import pytest
from aiohttp import web

from gateway.errors import ConfigError
from gateway.settings import Settings, load_settings
from tests.conftest import StartGateway, StartUpstream, Upstream, status_of
from tests.helpers import app_serving, catch_all, converse, echoed, echoed_header, header_names, parse_responses

HOP_BY_HOP = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
]
#: What the gateway documents adding to a request (Host is rewritten, not added).
FORWARDING_ADDED = {
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "forwarded",
    # observability (docs/routes.md): a request id and a W3C trace context, generated when the client sent none
    "x-request-id",
    "traceparent",
}
CLIENT_CLAIMS = [
    ("X-Forwarded-For", "203.0.113.9"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "claimed.example"),
    ("X-Forwarded-Port", "8443"),
    ("X-Forwarded-Prefix", "/claimed"),
    ("Forwarded", "for=203.0.113.9;proto=https"),
    ("X-Real-IP", "203.0.113.9"),
]


def get(path: str, *fields: tuple[str, str], host: str = "client.example:8080") -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *(f"{n}: {v}" for n, v in fields), "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# -- request side --------------------------------------------------------------------------------------------


async def test_hop_by_hop_request_headers_stripped(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream))
    request = (
        b"GET /hop HTTP/1.1\r\nHost: x\r\n"
        b"Connection: keep-alive, X-Named-One, x-named-two\r\n"
        b"Keep-Alive: timeout=5, max=100\r\nTE: trailers\r\nTrailer: X-Checksum\r\n"
        b"Proxy-Authorization: Basic dXNlcjpwYXNz\r\nProxy-Connection: keep-alive\r\n"
        b"X-Named-One: 1\r\nX-Named-Two: 2\r\nX-End-To-End: kept\r\n\r\n"
        b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    reply = await converse(gw.port, request)
    first, second = parse_responses(reply.data)
    assert (first.status, second.status) == (200, 200)
    names = header_names(json.loads(first.body))
    for name in [*HOP_BY_HOP, "x-named-one", "x-named-two"]:
        assert name not in names, name
    assert "x-end-to-end" in names


async def test_upgrade_on_http_route_not_forwarded(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream))
    request = get("/up", ("Connection", "Upgrade, X-Named"), ("Upgrade", "h2c"), ("X-Named", "1"))
    reply = await converse(gw.port, request)
    assert status_of(reply.data) == 200
    names = header_names(echoed(reply.data))
    assert not {"upgrade", "connection", "x-named"} & set(names)
    assert "Upgrade" not in upstream.hits[0].headers


def hop_by_hop_response_app() -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            text="ok",
            headers={
                "Connection": "X-Internal, X-Other",
                "X-Internal": "secret",
                "X-Other": "also-secret",
                "Keep-Alive": "timeout=5",
                "Proxy-Authenticate": 'Basic realm="upstream"',
                "X-Public": "visible",
            },
        )

    return app_serving("/resp", handler)


async def test_hop_by_hop_response_headers_are_stripped(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    upstream = await start_upstream(hop_by_hop_response_app())
    gw = await start_gateway(catch_all(upstream))
    reply = await converse(gw.port, get("/resp"))
    (response,) = parse_responses(reply.data)
    assert response.status == 200
    assert response.body == b"ok"
    names = {name for name, _ in response.headers}
    for name in ("x-internal", "x-other", "keep-alive", "proxy-authenticate"):
        assert name not in names, name
    assert response.header("connection") in (None, "close")  # only the gateway's own framing value
    assert b"secret" not in reply.data
    assert response.header("x-public") == "visible"


# -- underscores ---------------------------------------------------------------------------------------------


async def test_underscore_headers_dropped_by_default(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream))
    request = get("/u", ("X_Custom", "1"), ("X_Forwarded_For", "203.0.113.9"), ("X-Dashed", "2"))
    reply = await converse(gw.port, request)
    assert status_of(reply.data) == 200
    names = header_names(echoed(reply.data))
    assert "x_custom" not in names and "x_forwarded_for" not in names
    assert "x-dashed" in names
    assert b"203.0.113.9" not in reply.data


async def test_underscore_headers_rejected(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream), Settings(headers_with_underscores="reject"))
    reply = await converse(gw.port, get("/u", ("X_Custom", "1")))
    assert status_of(reply.data) == 400
    assert reply.closed
    assert upstream.hits == []


async def test_underscore_headers_kept_when_allowed(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream), Settings(headers_with_underscores="allow"))
    reply = await converse(gw.port, get("/u", ("X_Custom", "1")))
    assert status_of(reply.data) == 200
    assert ["X_Custom", "1"] in echoed(reply.data)["headers"]


async def test_allowed_underscore_names_never_smuggle_dropped_headers(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    # CGI/PHP and some nginx setups read X_Original_URL as X-Original-URL: an allowed underscore must not alias a
    # forwarding, proxy-only or hop-by-hop field past the drop rules.
    gw = await start_gateway(catch_all(upstream), Settings(headers_with_underscores="allow"))
    aliases = [
        ("X_Original_URL", "/admin"),
        ("True_Client_IP", "203.0.113.7"),
        ("X_Forwarded_For", "203.0.113.8"),
        ("X_Real_IP", "203.0.113.9"),
        ("Proxy_Authorization", "Basic c2VjcmV0"),
    ]
    reply = await converse(gw.port, get("/u", *aliases, ("X_Custom", "1")))
    assert status_of(reply.data) == 200
    echo = echoed(reply.data)
    names = header_names(echo)
    for name, value in aliases:
        assert name.lower() not in names
        assert value.encode() not in reply.data
    assert ["X_Custom", "1"] in echo["headers"]


# -- forwarding headers --------------------------------------------------------------------------------------


async def test_untrusted_forwarding_claims_replaced(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream))
    reply = await converse(gw.port, get("/fwd", *CLIENT_CLAIMS))
    assert status_of(reply.data) == 200
    echo = echoed(reply.data)
    assert echoed_header(echo, "x-forwarded-for") == ["127.0.0.1"]
    assert echoed_header(echo, "x-forwarded-proto") == ["http"]
    assert echoed_header(echo, "x-forwarded-host") == ["client.example:8080"]
    assert echoed_header(echo, "x-forwarded-port") == ["8080"]
    assert echoed_header(echo, "forwarded") == ['for=127.0.0.1;proto=http;host="client.example:8080"']
    assert echoed_header(echo, "x-real-ip") == []
    assert echoed_header(echo, "x-forwarded-prefix") == []
    for _, value in echo["headers"]:
        assert "203.0.113.9" not in value and "claimed" not in value and value != "https"


async def test_trusted_proxy_claims_are_kept_and_this_hop_appended(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    settings = Settings(trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    gw = await start_gateway(catch_all(upstream), settings)
    reply = await converse(gw.port, get("/fwd", *CLIENT_CLAIMS))
    assert status_of(reply.data) == 200
    echo = echoed(reply.data)
    assert echoed_header(echo, "x-forwarded-for") == ["203.0.113.9, 127.0.0.1"]
    assert echoed_header(echo, "x-forwarded-proto") == ["https, http"]
    assert echoed_header(echo, "x-forwarded-host") == ["claimed.example, client.example:8080"]
    assert echoed_header(echo, "x-forwarded-port") == ["8443, 8080"]
    assert echoed_header(echo, "forwarded") == [
        'for=203.0.113.9;proto=https, for=127.0.0.1;proto=http;host="client.example:8080"'
    ]
    assert echoed_header(echo, "x-real-ip") == ["203.0.113.9"]


async def test_trusted_list_without_the_peer_strips(upstream: Upstream, start_gateway: StartGateway) -> None:
    settings = Settings(trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),))
    gw = await start_gateway(catch_all(upstream), settings)
    reply = await converse(gw.port, get("/fwd", *CLIENT_CLAIMS))
    echo = echoed(reply.data)
    assert echoed_header(echo, "x-forwarded-for") == ["127.0.0.1"]
    assert echoed_header(echo, "x-real-ip") == []


# -- issue 9, finding 2: client-IP and URL-override claims ----------------------------------------------------------

PROXY_ONLY_CLAIMS = [
    ("True-Client-IP", "203.0.113.9"),
    ("X-Client-IP", "203.0.113.9"),
    ("cf-connecting-ip", "203.0.113.9"),
    ("X-Cluster-Client-IP", "203.0.113.9"),
    ("X-Original-URL", "/admin"),
    ("X-REWRITE-URL", "/admin"),
]


async def test_untrusted_client_ip_and_url_override_claims_are_stripped(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(catch_all(upstream))
    reply = await converse(gw.port, get("/claims", *PROXY_ONLY_CLAIMS, ("X-Kept", "yes")))
    assert status_of(reply.data) == 200
    echo = echoed(reply.data)
    names = header_names(echo)
    for name, _ in PROXY_ONLY_CLAIMS:
        assert name.lower() not in names
    assert echoed_header(echo, "x-kept") == ["yes"]
    for _, value in echo["headers"]:
        assert "203.0.113.9" not in value and value != "/admin"


async def test_a_trusted_proxy_may_send_client_ip_and_url_override_claims(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    settings = Settings(trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    gw = await start_gateway(catch_all(upstream), settings)
    reply = await converse(gw.port, get("/claims", *PROXY_ONLY_CLAIMS))
    echo = echoed(reply.data)
    for name, value in PROXY_ONLY_CLAIMS:
        assert echoed_header(echo, name) == [value]


async def test_the_proxy_only_list_is_configurable(upstream: Upstream, start_gateway: StartGateway) -> None:
    settings = Settings(proxy_only_headers=("X-Internal-User",))
    gw = await start_gateway(catch_all(upstream), settings)
    reply = await converse(gw.port, get("/claims", ("x-internal-user", "root"), ("True-Client-IP", "203.0.113.9")))
    echo = echoed(reply.data)
    assert echoed_header(echo, "x-internal-user") == []
    assert echoed_header(echo, "true-client-ip") == ["203.0.113.9"]  # the list replaces the default one


def test_proxy_only_headers_from_the_environment_and_refused_names() -> None:
    loaded = load_settings(None, environ={"SLUICEGATE_PROXY_ONLY_HEADERS": "X-A, X-B"})
    assert loaded.proxy_only_headers == ("X-A", "X-B")
    for bad in (["X A"], ["Host"], ["content-length"], [""]):
        with pytest.raises(ConfigError) as info:
            load_settings(None, {"proxy_only_headers": bad}, environ={})
        assert [issue.path for issue in info.value.issues] == ["proxy_only_headers"]


# -- Host and transparency -----------------------------------------------------------------------------------


async def test_host_rewritten_to_upstream_authority(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream))
    reply = await converse(gw.port, get("/host", host="client.example"))
    echo = echoed(reply.data)
    assert echoed_header(echo, "host") == [f"127.0.0.1:{upstream.port}"]
    assert echoed_header(echo, "x-forwarded-host") == ["client.example"]
    assert echoed_header(echo, "x-forwarded-port") == ["80"]


@pytest.mark.parametrize("method", ["GET", "DELETE", "OPTIONS", "POST"])
async def test_gateway_adds_only_documented_request_headers(
    method: str, upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(catch_all(upstream))
    sent = [("Host", "client.example"), ("X-Client", "1"), ("Cookie", "a=b"), ("Authorization", "Bearer t")]
    body = b"payload" if method == "POST" else b""
    if body:
        sent.append(("Content-Length", str(len(body))))
    head = "".join(f"{n}: {v}\r\n" for n, v in sent)
    request = f"{method} /plain HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode() + body
    reply = await converse(gw.port, request)
    assert status_of(reply.data) == 200
    echo = echoed(reply.data)
    seen = header_names(echo)
    assert sorted(seen) == sorted([n.lower() for n, _ in sent] + sorted(FORWARDING_ADDED))
    for name in ("user-agent", "accept", "accept-encoding", "server", "via"):
        assert name not in seen
    client_values = {n.lower(): v for n, v in sent if n != "Host"}
    assert {n.lower(): v for n, v in echo["headers"] if n.lower() in client_values} == client_values


SAMPLES = [("/status/204", 204), ("/status/200", 200), ("/bytes/3000", 200)]


@pytest.mark.parametrize(("path", "status"), SAMPLES)
async def test_response_headers_pass_through_unchanged(
    path: str, status: int, upstream: Upstream, start_gateway: StartGateway
) -> None:
    """Differential: the same request direct and through the gateway yields the same response header set."""
    gw = await start_gateway(catch_all(upstream))
    direct = parse_responses((await converse(upstream.port, get(path))).data)[0]
    proxied = parse_responses((await converse(gw.port, get(path))).data)[0]
    assert (direct.status, proxied.status) == (status, status)
    assert proxied.body == direct.body

    def comparable(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return sorted((n, v) for n, v in headers if n not in ("date", "connection", "x-request-id"))

    assert comparable(proxied.headers) == comparable(direct.headers)
    assert len([v for n, v in proxied.headers if n == "x-request-id"]) == 1  # the one documented addition
    assert [v for n, v in proxied.headers if n == "server"] == [v for n, v in direct.headers if n == "server"]
