"""RewriteLocationResponseHeader through real requests: host and version rewriting, modes, options, config."""

from __future__ import annotations

import pytest
from aiohttp import web

from tests.conftest import GatewayUnderTest, StartGateway, StartUpstream, Upstream
from tests.helpers import Reply, config_issues, config_only_route, fetch, one_route

HOST = "api.example.com:443"


def location_app() -> web.Application:
    """An upstream answering 201 with the Location (and Link) the request asked for in X-Give-* headers."""

    async def created(request: web.Request) -> web.Response:
        headers = {}
        if "X-Give-Location" in request.headers:
            headers["Location"] = request.headers["X-Give-Location"]
        if "X-Give-Link" in request.headers:
            headers["Link"] = request.headers["X-Give-Link"]
        return web.Response(status=201, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", created)
    return app


@pytest.fixture
async def backend(start_upstream: StartUpstream) -> Upstream:
    return await start_upstream(location_app())


async def location_of(gw: GatewayUnderTest, path: str, given: str, host: str = HOST, header: str = "Location") -> str:
    reply: Reply = await fetch(gw, path, method="POST", headers={"Host": host, f"X-Give-{header}": given})
    assert reply.status == 201
    return reply.headers[header]


@pytest.mark.parametrize(
    ("path", "given", "fixed"),
    [
        # SCG's documented example: the backend host and its version go, the client's Host comes in.
        ("/some/object/name", "https://object-service.prod.example.net/v2/some/object/id",
         "https://api.example.com:443/some/object/id"),
        ("/v1/some/object", "https://backend:8080/v2/some/object/id", "https://api.example.com:443/v2/some/object/id"),
        ("/x", "http://backend:8080/a", "http://api.example.com:443/a"),
        ("/x", "ftp://files.internal/v3/f", "ftp://api.example.com:443/f"),
        ("/x", "https://backend:8080/v1", "https://api.example.com:443/v1"),  # no '/' after the version: kept
        ("/x", "https://backend:8080", "https://backend:8080"),  # no '/' after the host: untouched, as SCG
        ("/x", "/relative/v1/x", "/relative/v1/x"),
        ("/x", "ws://backend/v1/x", "ws://backend/v1/x"),  # not a listed protocol
        ("/x", "HTTPS://backend/x", "HTTPS://backend/x"),  # the protocol regex is case-sensitive, as in Java
        ("/x", "https://user@backend/x", "https://api.example.com:443/x"),
    ],
)  # fmt: skip
async def test_default_as_in_request(
    backend: Upstream, start_gateway: StartGateway, path: str, given: str, fixed: str
) -> None:
    gw = await start_gateway(one_route(backend.url, "[RewriteLocationResponseHeader]"))
    assert await location_of(gw, path, given) == fixed


@pytest.mark.parametrize(
    ("mode", "path", "fixed"),
    [
        ("NEVER_STRIP", "/x", "https://api.example.com:443/v2/id"),
        ("ALWAYS_STRIP", "/v1/x", "https://api.example.com:443/id"),
        ("AS_IN_REQUEST", "/v1/x", "https://api.example.com:443/v2/id"),
        ("AS_IN_REQUEST", "/v1", "https://api.example.com:443/id"),  # "/v1" alone is not a versioned path (SCG)
    ],
)
async def test_modes(backend: Upstream, start_gateway: StartGateway, mode: str, path: str, fixed: str) -> None:
    gw = await start_gateway(one_route(backend.url, f'["RewriteLocationResponseHeader={mode}, Location, ,"]'))
    assert await location_of(gw, path, "https://backend:8080/v2/id") == fixed


async def test_version_check_uses_the_path_the_client_sent(backend: Upstream, start_gateway: StartGateway) -> None:
    # StripPrefix removes /v1 before forwarding, but the client asked for a versioned path: the version stays.
    gw = await start_gateway(one_route(backend.url, '["StripPrefix=1", RewriteLocationResponseHeader]'))
    assert await location_of(gw, "/v1/x", "https://backend/v2/id") == "https://api.example.com:443/v2/id"


async def test_expanded_form_with_every_option(backend: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(
            backend.url,
            """
      - name: RewriteLocationResponseHeader
        args:
          stripVersion: ALWAYS_STRIP
          locationHeaderName: Link
          hostValue: example-api.com
          protocols: https|ftps
""",
        )
    )
    given = "https://object-service.prod.example.net/v1/some/object/id"
    assert await location_of(gw, "/v1/x", given, header="Link") == "https://example-api.com/some/object/id"
    assert await location_of(gw, "/x", "http://backend/v1/a", header="Link") == "http://backend/v1/a"
    reply = await fetch(gw, "/x", method="POST", headers={"X-Give-Location": "https://backend/a"})
    assert reply.headers["Location"] == "https://backend/a"  # only the configured header is rewritten


@pytest.mark.parametrize("spelling", ["stripVersionMode: always_strip", "stripVersion: Always-Strip"])
async def test_mode_spellings(backend: Upstream, start_gateway: StartGateway, spelling: str) -> None:
    gw = await start_gateway(one_route(backend.url, f"[{{name: RewriteLocationResponseHeader, args: {{{spelling}}}}}]"))
    assert await location_of(gw, "/v1/x", "https://backend/v1/id") == "https://api.example.com:443/id"


async def test_host_value_in_the_shortcut(backend: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(backend.url, '["RewriteLocationResponseHeader=NEVER_STRIP, Location, gw.example.org:8443"]')
    )
    assert await location_of(gw, "/x", "https://backend/v2/id") == "https://gw.example.org:8443/v2/id"


async def test_response_without_location_is_untouched(backend: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(backend.url, "[RewriteLocationResponseHeader]"))
    reply = await fetch(gw, "/x", method="POST")
    assert reply.status == 201
    assert "Location" not in reply.headers


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ('["RewriteLocationResponseHeader=SOMETIMES"]', "stripVersion", "NEVER_STRIP"),
        ("[{name: RewriteLocationResponseHeader, args: {protocols: 'https?('}}]", "protocols", "missing )"),
        ("[{name: RewriteLocationResponseHeader, args: {protocols: '(?<=x)https'}}]", "protocols", "backtracking"),
        ('["RewriteLocationResponseHeader=NEVER_STRIP, Location, a b"]', "hostValue", "pattern"),
        ('["RewriteLocationResponseHeader=NEVER_STRIP, Location, evil.com/x"]', "hostValue", "pattern"),
        ('["RewriteLocationResponseHeader=NEVER_STRIP, Content-Length"]', "locationHeaderName", "managed by"),
        ('["RewriteLocationResponseHeader=NEVER_STRIP, Bad Name"]', "locationHeaderName", "pattern"),
        ('["RewriteLocationResponseHeader=A, B, c, d, e"]', "", "at most 4"),
        ("[{name: RewriteLocationResponseHeader, args: {mode: NEVER_STRIP}}]", "mode", "unknown argument"),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    where = f"routes[0].filters[0].args.{path}" if path else "routes[0].filters[0]"
    assert any(p == where and fragment in m for p, m in issues), issues


@pytest.mark.parametrize("host", ["a..b", ".a", "-a", "a~b", "a%41", "x:0", "x:99999", "[1.2.3.4]", "a:1:2"])
def test_host_value_follows_the_gateways_one_host_grammar(host: str) -> None:
    # gateway.uri.valid_authority, shared with SetRequestHostHeader: stricter than the old pattern, which let these in.
    issues = config_issues(
        config_only_route(filters=f"[{{name: RewriteLocationResponseHeader, args: {{hostValue: '{host}'}}}}]")
    )
    assert any(p == "routes[0].filters[0].args.hostValue" and "not a host[:port]" in m for p, m in issues), issues


def test_protocols_cannot_close_the_group_they_are_placed_in() -> None:
    # Spliced into `^(?:<protocols>)://`, "https)|(.*" would compile and match any Location; alone it does not.
    filters = "[{name: RewriteLocationResponseHeader, args: {protocols: 'https)|(.*'}}]"
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == "routes[0].filters[0].args.protocols" and "invalid regular expression" in m for p, m in issues)
