"""RemoteAddr predicate through real requests: the socket peer, X-Forwarded-For only through trusted proxies."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from gateway.settings import Settings
from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, route

# The test client connects from 127.0.0.1; trusting it makes the gateway keep (and these predicates read) XFF.
BEHIND_PROXY = Settings.model_validate({"trusted_proxies": ["127.0.0.1/32", "172.16.0.0/12"]})


async def test_socket_peer_by_default(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:"
        + route(upstream, '["RemoteAddr=10.0.0.0/8, 127.0.0.1", "Path=/local/**"]', rid="local")
        + route(upstream, '["RemoteAddr=192.168.0.0/16", "Path=/lan/**"]', rid="lan")
        + route(upstream, '["RemoteAddr=127.0.0.0/8", "Path=/loopback/**"]', rid="loopback")
    )
    assert (await fetch(gw, "/local/a")).status == 200
    assert (await fetch(gw, "/loopback/a")).status == 200
    assert (await fetch(gw, "/lan/a")).status == 404


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["RemoteAddr=192.168.0.0/16"]'))
    reply = await fetch(gw, "/", headers={"X-Forwarded-For": "192.168.1.10"})  # a spoofing attempt
    assert reply.status == 404


async def test_client_behind_trusted_proxies(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["RemoteAddr=192.168.0.0/16"]'), BEHIND_PROXY)
    matches = [
        "192.168.1.10",
        "192.168.1.10, 172.16.0.5",  # a trusted hop between the client and us is skipped
        "6.6.6.6, 192.168.1.10",  # what the client wrote itself (left of its own address) is never read
        "garbage, 192.168.1.10, 172.31.0.1",
    ]
    for xff in matches:
        reply = await fetch(gw, "/", headers={"X-Forwarded-For": xff})
        assert reply.status == 200, xff
        assert reply.upstream_got("X-Forwarded-For") == [f"{xff}, 127.0.0.1"]  # forwarded and appended to
    misses = [
        "192.168.1.10, 203.0.113.7",  # the right-most untrusted address is the client, not the one before it
        "192.168.1.10, garbage",  # unreadable where the client should be: fail closed
        "192.168.1.10, unknown, 172.16.0.5",
        "",
    ]
    for xff in misses:
        assert (await fetch(gw, "/", headers={"X-Forwarded-For": xff})).status == 404, xff
    assert (await fetch(gw, "/")).status == 404  # no header: the client is the proxy itself


async def test_several_forwarded_for_lines_are_one_list(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["RemoteAddr=192.168.0.0/16"]'), BEHIND_PROXY)
    lines = CIMultiDict([("X-Forwarded-For", "192.168.1.10"), ("X-Forwarded-For", "172.16.0.5")])
    assert (await fetch(gw, "/", headers=lines)).status == 200
    lines = CIMultiDict([("X-Forwarded-For", "192.168.1.10"), ("X-Forwarded-For", "203.0.113.7")])
    assert (await fetch(gw, "/", headers=lines)).status == 404


async def test_all_hops_trusted_and_ipv6_forms(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: internal
    uri: {upstream.url}
    predicates:
      - name: RemoteAddr
        args:
          sources: ["172.16.0.0/12", "2001:db8::/32"]
"""
    )
    assert (await fetch(gw, "/")).status == 404  # peer 127.0.0.1, not trusted here, not a source
    gw = await start_gateway(
        f"""
routes:
  - id: internal
    uri: {upstream.url}
    predicates:
      - name: RemoteAddr
        args: {{sources: ["172.16.0.0/12", "2001:db8::/32"]}}
""",
        BEHIND_PROXY,
    )
    for xff in ("172.16.9.9, 172.16.0.5", "2001:db8::7", "[2001:db8::7]:4711", "::ffff:172.16.0.1"):
        assert (await fetch(gw, "/", headers={"X-Forwarded-For": xff})).status == 200, xff
    for xff in ("2001:db9::7", "10.0.0.1, 172.16.0.5"):
        assert (await fetch(gw, "/", headers={"X-Forwarded-For": xff})).status == 404, xff


@pytest.mark.parametrize(
    ("predicates", "path", "fragment"),
    [
        ('["RemoteAddr"]', "routes[0].predicates[0].args.sources", "required"),
        ("[{name: RemoteAddr, args: {sources: []}}]", "routes[0].predicates[0].args.sources", "at least 1"),
        ('["RemoteAddr=10.0.0.0/33"]', "routes[0].predicates[0].args.sources", "not an IP address or CIDR"),
        ('["RemoteAddr=10.0.0.0/8, gateway.local"]', "routes[0].predicates[0].args.sources", "host names"),
        ("[{name: RemoteAddr, args: {sources: 10.0.0.300}}]", "routes[0].predicates[0].args.sources", "'10.0.0.300'"),
        ("[{name: RemoteAddr, args: {sources: [1]}}]", "routes[0].predicates[0].args.sources[0]", "string"),
    ],
)
def test_invalid_remote_addr_config(predicates: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(predicates=predicates))
    assert any(p == path and fragment in m for p, m in issues), issues
