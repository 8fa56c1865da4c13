"""SecureHeaders through real requests: SCG's defaults minus X-Xss-Protection, upstream values kept, args, config."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.conftest import StartGateway, StartUpstream, Upstream
from tests.helpers import Reply, app_serving, config_issues, config_only_route, fetch, one_route

DEFAULTS = {
    "Strict-Transport-Security": "max-age=631138519",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self' https:; font-src 'self' https: data:; img-src 'self' https: data:; "
        "object-src 'none'; script-src https:; style-src 'self' https: 'unsafe-inline'"
    ),
    "X-Download-Options": "noopen",
    "X-Permitted-Cross-Domain-Policies": "none",
}


def secure(reply: Reply) -> dict[str, list[bytes]]:
    """The security headers the client received, with every value."""
    names = [*DEFAULTS, "Permissions-Policy", "X-Xss-Protection"]
    return {name: reply.values(name) for name in names if reply.values(name)}


def expected(changes: Mapping[str, str | None] | None = None) -> dict[str, list[bytes]]:
    """The defaults with `changes` applied (None: the header is absent)."""
    out = {name: [value.encode()] for name, value in DEFAULTS.items()}
    for name, value in (changes or {}).items():
        if value is None:
            out.pop(name)
        else:
            out[name] = [value.encode()]
    return out


async def echoing_headers(start_upstream: StartUpstream) -> Upstream:
    """An upstream answering with each query parameter as a response header, repeats and order kept."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="hello", headers=CIMultiDict(request.query.items()))

    return await start_upstream(app_serving("/{tail:.*}", handler))


@pytest.mark.parametrize("form", ["[SecureHeaders]", "[{name: SecureHeaders}]", "[{name: SecureHeaders, args: {}}]"])
async def test_defaults(upstream: Upstream, start_gateway: StartGateway, form: str) -> None:
    gw = await start_gateway(one_route(upstream.url, form))
    reply = await fetch(gw, "/a")
    assert reply.status == 200
    assert secure(reply) == expected()  # no X-Xss-Protection, no Permissions-Policy
    assert reply.seen()["path"] == "/a"


async def test_upstream_values_are_kept(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    up = await echoing_headers(start_upstream)
    gw = await start_gateway(one_route(up.url, "[SecureHeaders]"))
    csp = "default-src 'none'"
    reply = await fetch(gw, f"/?x-frame-options=SAMEORIGIN&Content-Security-Policy={quote(csp)}")
    assert secure(reply) == expected({"X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": csp})


@pytest.mark.parametrize(
    "args",
    [
        "{disable: [x-frame-options, strict-transport-security]}",
        "{disable: 'x-frame-options,strict-transport-security'}",
        "{disable: [X-Frame-Options, Strict-Transport-Security]}",
        "{disable.0: x-frame-options, disable.1: strict-transport-security}",
    ],
)
async def test_disable(upstream: Upstream, start_gateway: StartGateway, args: str) -> None:
    gw = await start_gateway(one_route(upstream.url, f"[{{name: SecureHeaders, args: {args}}}]"))
    assert secure(await fetch(gw, "/")) == expected({"X-Frame-Options": None, "Strict-Transport-Security": None})


async def test_permissions_policy_is_opt_in(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, "[{name: SecureHeaders, args: {enable: [permissions-policy]}}]"))
    received = secure(await fetch(gw, "/"))
    policy = received.pop("Permissions-Policy")
    assert received == expected()
    assert len(policy) == 1
    assert policy[0].startswith(b"accelerometer=(), ambient-light-sensor=(), autoplay=()")
    assert b"camera=(), " in policy[0]
    assert b"geolocation=(), " in policy[0]
    assert policy[0].endswith(b"xr-spatial-tracking=()")


async def test_values_are_arguments(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(
            upstream.url,
            """
      - name: SecureHeaders
        args:
          enable: [permissions-policy]
          permissionsPolicy: geolocation=(self)
          frameOptions: SAMEORIGIN
          strictTransportSecurity: max-age=31536000; includeSubDomains
          contentSecurityPolicy: "default-src 'self'"
""",
        )
    )
    assert secure(await fetch(gw, "/")) == expected(
        {
            "Permissions-Policy": "geolocation=(self)",
            "X-Frame-Options": "SAMEORIGIN",
            "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
            "Content-Security-Policy": "default-src 'self'",
        }
    )


async def test_a_value_alone_does_not_enable_permissions_policy(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    # As in SCG: the value is only used when the header is enabled.
    gw = await start_gateway(
        one_route(upstream.url, "[{name: SecureHeaders, args: {permissionsPolicy: geolocation=(self)}}]")
    )
    assert secure(await fetch(gw, "/")) == expected()


async def test_disable_wins_over_enable_and_legacy_disable_is_accepted(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(
        one_route(
            upstream.url,
            "[{name: SecureHeaders, args: {enable: [permissions-policy],"
            " disable: [permissions-policy, x-xss-protection, referrer-policy]}}]",
        )
    )
    assert secure(await fetch(gw, "/")) == expected({"Referrer-Policy": None})


async def test_default_filter_and_route_filter_combine(upstream: Upstream, start_gateway: StartGateway) -> None:
    # The route's own SecureHeaders runs inside the default one, so its values win; the default fills the rest.
    gw = await start_gateway(
        f"""
default-filters: [SecureHeaders]
routes:
  - id: framed
    uri: {upstream.url}
    predicates: ["Path=/framed/**"]
    filters: [{{name: SecureHeaders, args: {{frameOptions: SAMEORIGIN}}}}]
  - id: plain
    uri: {upstream.url}
    predicates: ["Path=/plain/**"]
"""
    )
    assert secure(await fetch(gw, "/framed/x")) == expected({"X-Frame-Options": "SAMEORIGIN"})
    assert secure(await fetch(gw, "/plain/x")) == expected()


async def test_local_and_error_responses_get_the_headers(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: local
    uri: no://op
    predicates: ["Path=/local"]
    filters: [SecureHeaders]
  - id: failing
    uri: {upstream.url}
    predicates: ["Path=/status/**"]
    filters: [SecureHeaders]
"""
    )
    assert secure(await fetch(gw, "/local")) == expected()
    failed = await fetch(gw, "/status/500")
    assert failed.status == 500
    assert secure(failed) == expected()


ARGS = "routes[0].filters[0].args"


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ("[{name: SecureHeaders, args: {enable: [x-xss-protection]}}]", f"{ARGS}.enable", "not supported"),
        ("[{name: SecureHeaders, args: {disable: [x-frame-option]}}]", f"{ARGS}.disable", "unknown secure header"),
        ("[{name: SecureHeaders, args: {enable: [cache-control]}}]", f"{ARGS}.enable", "unknown secure header"),
        (
            "[{name: SecureHeaders, args: {xssProtectionHeader: '0'}}]",
            f"{ARGS}.xssProtectionHeader",
            "unknown argument",
        ),
        ("[{name: SecureHeaders, args: {frameOptions: ''}}]", f"{ARGS}.frameOptions", "at least 1"),
        (
            '[{name: SecureHeaders, args: {contentSecurityPolicy: "a\\r\\nSet-Cookie: x=1"}}]',
            f"{ARGS}.contentSecurityPolicy",
            "control character",
        ),
        ("[{name: SecureHeaders, args: {disable: {x: 1}}}]", f"{ARGS}.disable", "list"),
        ("[SecureHeaders=x-frame-options]", "routes[0].filters[0]", "at most 0"),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues
