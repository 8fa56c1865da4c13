"""An https pool: requests and health checks are verified against the configured CA, with the instance's host
as SNI; a health check against an instance whose certificate does not verify fails."""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme
from aiohttp import web

from gateway.settings import Settings, UpstreamTls
from tests.conftest import StartGateway, StartUpstream
from tests.helpers import fetch
from tests.lb.support import eventually, pool_of

CHECKS = "    health-check: {interval: 20ms, timeout: 2s, healthy-threshold: 1, unhealthy-threshold: 1}"


def server_context(ca: trustme.CA, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    return context


def app(name: str) -> web.Application:
    async def who(request: web.Request) -> web.Response:
        return web.Response(text=name)

    application = web.Application()
    application.router.add_get("/who", who)
    application.router.add_get("/health", who)
    return application


async def test_https_instances_and_their_health_checks_are_verified(
    tmp_path: Path, start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    ca, other = trustme.CA(), trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    good = await start_upstream(app("good"), ssl_context=server_context(ca, "localhost"))
    rogue = await start_upstream(app("rogue"), ssl_context=server_context(other, "localhost"))
    routes = f"""
upstreams:
  p:
    instances: [{{url: 'https://localhost:{good.port}'}}, {{url: 'https://localhost:{rogue.port}'}}]
{CHECKS}
routes: [{{id: r, uri: 'lb://p'}}]
"""
    gw = await start_gateway(routes, Settings(upstream_tls=UpstreamTls(ca_file=ca_file)))
    pool = pool_of(gw.gateway)
    await eventually(lambda: not pool.instances[1].healthy, "the instance with an untrusted certificate is down")
    assert pool.instances[0].healthy
    assert any(h.path == "/health" for h in good.hits)
    for _ in range(4):
        reply = await fetch(gw, "/who")
        assert (reply.status, reply.body) == (200, b"good")
