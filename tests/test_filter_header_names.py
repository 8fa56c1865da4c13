"""Which header names filters may write: forwarding headers never on the request, freely on the response.

The gateway strips X-Forwarded-*/Forwarded/X-Real-IP from peers that are not `trusted_proxies` and then appends
its own hop (gateway/hygiene.py). A filter writing one of them on the request would slip a client-controlled
value (a copied header, a path variable) past that rule, so every request-side filter refuses them at load.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.hygiene import FORWARDING
from gateway.settings import Settings
from gateway.spec import header_name, reserved_request_headers, response_header_name
from tests.conftest import StartGateway, Upstream
from tests.helpers import (
    config_issues,
    config_only_route,
    converse,
    echoed,
    echoed_header,
    fetch,
    header_names,
    one_route,
)

ARGS = "routes[0].filters[0].args"
SPELLINGS = ["X-Forwarded-For", "x-forwarded-host", "X-Forwarded-Port", "X-Forwarded-Proto", "X-FORWARDED-PREFIX"]
SPELLINGS += ["Forwarded", "X-Real-IP"]

#: Every filter that writes a request header whose name comes from config: (filters YAML, where the name is).
REQUEST_WRITERS = [
    ("[{{name: AddRequestHeader, args: {{name: {h}, value: '1.2.3.4'}}}}]", f"{ARGS}.name"),
    ("[{{name: SetRequestHeader, args: {{name: {h}, value: 'for={{ip}}'}}}}]", f"{ARGS}.name"),
    ("[{{name: MapRequestHeader, args: {{fromHeader: X-Client, toHeader: {h}}}}}]", f"{ARGS}.toHeader"),
    ("[{{name: AddRequestHeadersIfNotPresent, args: {{keyValues: ['{h}:1.2.3.4']}}}}]", f"{ARGS}.keyValues"),
]


def test_the_spellings_cover_every_forwarding_header() -> None:
    assert {s.lower() for s in SPELLINGS} == FORWARDING
    assert reserved_request_headers() >= FORWARDING


@pytest.mark.parametrize("header", SPELLINGS)
@pytest.mark.parametrize(("template", "where"), REQUEST_WRITERS)
def test_request_side_filters_refuse_forwarding_headers(template: str, where: str, header: str) -> None:
    issues = config_issues(config_only_route(filters=template.format(h=header)))
    assert any(p == where and "managed by the gateway" in m and "trusted_proxies" in m for p, m in issues), issues


def test_the_default_validator_is_the_strict_one() -> None:
    # A plugin calling `header_name` without saying which side it writes gets the request-side rule.
    with pytest.raises(ValueError, match="trusted_proxies"):
        header_name("X-Forwarded-For")
    assert response_header_name("X-Forwarded-For") == "X-Forwarded-For"
    with pytest.raises(ValueError, match="managed by the gateway"):
        response_header_name("Content-Length")


async def test_a_copied_client_header_cannot_become_x_forwarded_for(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    # The reviewer's repro, minus the refused filter: what the client sends under any name stays under that name,
    # and the forwarding headers the upstream sees are the gateway's alone.
    gw = await start_gateway(one_route(upstream.url, "['MapRequestHeader=X-Client, X-Original-Client']"))
    head = (
        "GET /a HTTP/1.1\r\nHost: x\r\nX-Client: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\nX-Real-IP: 7.7.7.7\r\n"
        "Forwarded: for=7.7.7.7\r\nConnection: close\r\n\r\n"
    )
    seen = echoed((await converse(gw.port, head.encode())).data)
    assert echoed_header(seen, "X-Original-Client") == ["6.6.6.6"]
    assert echoed_header(seen, "X-Forwarded-For") == ["127.0.0.1"]
    assert echoed_header(seen, "X-Real-IP") == []
    assert [v.split(";")[0] for v in echoed_header(seen, "Forwarded")] == ["for=127.0.0.1"]


async def test_behind_a_trusted_proxy_the_chain_is_still_the_proxys(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    settings = Settings.model_validate({"trusted_proxies": ["127.0.0.1/32"]})
    gw = await start_gateway(one_route(upstream.url, "['AddRequestHeader=X-Hop, gateway']"), settings)
    reply = await fetch(gw, "/", headers={"X-Forwarded-For": "203.0.113.9"})
    assert reply.upstream_got("X-Forwarded-For") == ["203.0.113.9, 127.0.0.1"]


async def test_response_side_filters_may_write_forwarding_headers(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    # On a response they are information for the client; nothing trusts them, so they stay allowed.
    filters = """
      - AddResponseHeader=X-Forwarded-For, 198.51.100.1
      - SetResponseHeader=X-Real-IP, 198.51.100.2
"""
    gw = await start_gateway(one_route(upstream.url, filters))
    reply = await fetch(gw, "/")
    assert reply.status == 200
    assert reply.values("X-Forwarded-For") == [b"198.51.100.1"]
    assert reply.values("X-Real-IP") == [b"198.51.100.2"]
    assert reply.upstream_got("X-Forwarded-For") == ["127.0.0.1"]  # the request side is untouched


def test_the_request_id_header_setting_must_be_a_header_name() -> None:
    # The gateway writes this name into every request and response head without further checks.
    with pytest.raises(ValidationError):
        Settings.model_validate({"observability": {"request_id_header": "X-Id\r\nX-Injected: 1"}})
    assert Settings.model_validate({"observability": {"request_id_header": "X-Trace-Id"}})


async def test_a_trusted_proxys_forwarding_chain_and_request_id_are_extended_in_place(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    settings = Settings.model_validate({"trusted_proxies": ["127.0.0.1/32"]})
    gw = await start_gateway(one_route(upstream.url, "[]"), settings)
    head = (
        "GET / HTTP/1.1\r\nHost: api.example.org\r\nX-Forwarded-Proto: https\r\nX-Request-Id: edge-42\r\n"
        "Forwarded: for=203.0.113.9;proto=https\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n"
    )
    seen = echoed((await converse(gw.port, head.encode())).data)
    assert echoed_header(seen, "X-Forwarded-For") == ["203.0.113.9, 127.0.0.1"]
    assert echoed_header(seen, "X-Forwarded-Proto") == ["https, http"]
    assert echoed_header(seen, "Forwarded") == [
        'for=203.0.113.9;proto=https, for=127.0.0.1;proto=http;host="api.example.org"'
    ]
    assert echoed_header(seen, "X-Request-Id") == ["edge-42"]
    names = [name.lower() for name in header_names(seen)]
    # Fields a proxy sent stay where they were (appended to), ours follow the client's fields.
    assert names.index("x-forwarded-proto") < names.index("forwarded") < names.index("x-forwarded-for")
    assert names.index("x-forwarded-for") < names.index("x-forwarded-host")
