"""XForwardedRemoteAddr through real requests: SCG's maxTrustedIndex from the right, the gateway's XFF hygiene."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from gateway.settings import Settings
from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, route

# The test client connects from 127.0.0.1; trusting it makes the gateway keep the X-Forwarded-For it sends.
BEHIND_PROXY = Settings.model_validate({"trusted_proxies": ["127.0.0.1/32"]})
CHAIN = "192.168.1.10, 10.0.0.2, 172.16.0.3"  # client, first proxy, second proxy (as the nearest proxy sent it)


async def test_untrusted_peer_cannot_spoof(upstream: Upstream, start_gateway: StartGateway) -> None:
    """Without trusted proxies the gateway drops a client's X-Forwarded-For, so the socket peer is checked."""
    gw = await start_gateway(
        "routes:"
        + route(upstream, '["XForwardedRemoteAddr=192.168.0.0/16", "Path=/lan"]', rid="lan")
        + route(upstream, '["XForwardedRemoteAddr=127.0.0.1", "Path=/local"]', rid="local")
    )
    assert (await fetch(gw, "/lan", headers={"X-Forwarded-For": "192.168.1.10"})).status == 404
    reply = await fetch(gw, "/local", headers={"X-Forwarded-For": "192.168.1.10"})
    assert reply.status == 200
    assert reply.upstream_got("X-Forwarded-For") == ["127.0.0.1"]  # the claim never reached the upstream either


async def test_default_index_is_the_right_most_entry(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        "routes:"
        + route(upstream, '["XForwardedRemoteAddr=172.16.0.0/12", "Path=/a"]', rid="a")
        + route(upstream, '["XForwardedRemoteAddr=192.168.0.0/16", "Path=/b"]', rid="b"),
        BEHIND_PROXY,
    )
    assert (await fetch(gw, "/a", headers={"X-Forwarded-For": CHAIN})).status == 200
    assert (await fetch(gw, "/b", headers={"X-Forwarded-For": CHAIN})).status == 404
    assert (await fetch(gw, "/b", headers={"X-Forwarded-For": "192.168.1.10"})).status == 200
    assert (await fetch(gw, "/b")).status == 404  # no header: the socket peer (127.0.0.1), as in SCG
    assert (await fetch(gw, "/b", headers={"X-Forwarded-For": "192.168.1.10, bogus"})).status == 404


@pytest.mark.parametrize(
    ("index", "matching"),
    [(1, "172.16.0.0/12"), (2, "10.0.0.0/8"), (3, "192.168.0.0/16"), (7, "192.168.0.0/16")],  # 7 > 3 entries
)
async def test_max_trusted_index(index: int, matching: str, upstream: Upstream, start_gateway: StartGateway) -> None:
    others = [n for n in ("172.16.0.0/12", "10.0.0.0/8", "192.168.0.0/16") if n != matching]
    routes = "routes:"
    for rid, source in (("hit", matching), *((f"miss{n}", s) for n, s in enumerate(others))):
        routes += f"""
  - id: {rid}
    uri: {upstream.url}
    predicates:
      - name: XForwardedRemoteAddr
        args: {{sources: ["{source}"], maxTrustedIndex: {index}}}
      - Path=/{rid}
"""
    gw = await start_gateway(routes, BEHIND_PROXY)
    assert (await fetch(gw, "/hit", headers={"X-Forwarded-For": CHAIN})).status == 200
    for n in range(len(others)):
        assert (await fetch(gw, f"/miss{n}", headers={"X-Forwarded-For": CHAIN})).status == 404


async def test_lines_are_joined_in_order(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: r
    uri: {upstream.url}
    predicates:
      - name: XForwardedRemoteAddr
        args: {{sources: 192.168.0.0/16, maxTrustedIndex: 2}}
""",
        BEHIND_PROXY,
    )
    lines = CIMultiDict([("X-Forwarded-For", "192.168.1.10"), ("X-Forwarded-For", "10.0.0.2")])
    assert (await fetch(gw, "/", headers=lines)).status == 200


@pytest.mark.parametrize(
    ("predicates", "path", "fragment"),
    [
        (
            "[{name: XForwardedRemoteAddr, args: {sources: [10.0.0.0/8], maxTrustedIndex: 0}}]",
            "routes[0].predicates[0].args.maxTrustedIndex",
            "greater than or equal to 1",
        ),
        (
            "[{name: XForwardedRemoteAddr, args: {sources: [10.0.0.0/8], maxTrustedIndex: -1}}]",
            "routes[0].predicates[0].args.maxTrustedIndex",
            "greater than or equal to 1",
        ),
        (
            "[{name: XForwardedRemoteAddr, args: {sources: [10.0.0.0/8], maxTrustedIndex: true}}]",
            "routes[0].predicates[0].args.maxTrustedIndex",
            "not a boolean",
        ),
        ('["XForwardedRemoteAddr"]', "routes[0].predicates[0].args.sources", "required"),
        ('["XForwardedRemoteAddr=10.0.0.0/8, nope"]', "routes[0].predicates[0].args.sources", "'nope'"),
    ],
)
def test_invalid_x_forwarded_remote_addr_config(predicates: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(predicates=predicates))
    assert any(p == path and fragment in m for p, m in issues), issues
