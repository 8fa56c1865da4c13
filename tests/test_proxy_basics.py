"""Forwarding through real sockets: the request the upstream sees and the response the client gets."""

from __future__ import annotations

import aiohttp

from tests.conftest import StartGateway, Upstream


def routes(upstream: Upstream) -> str:
    return f"""
routes:
  - id: echo
    uri: {upstream.url}
    predicates: [Path=/api/**]
    filters: [StripPrefix=1]
"""


async def test_forwards_method_path_query_and_body(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(routes(upstream))
    async with (
        aiohttp.ClientSession() as session,
        session.post(gw.url("/api/things/1?a=1&b=%20x"), data=b"payload") as resp,
    ):
        assert resp.status == 200
        seen = await resp.json()
    assert seen["method"] == "POST"
    assert seen["path"] == "/things/1"
    assert seen["query"] == "a=1&b=%20x"
    assert seen["body_bytes"] == 7
    names = [name.lower() for name, _ in seen["headers"]]
    assert "x-forwarded-for" in names and "forwarded" in names
    assert dict((k.lower(), v) for k, v in seen["headers"])["host"] == f"127.0.0.1:{upstream.port}"
