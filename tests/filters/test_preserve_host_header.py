"""PreserveHostHeader through real requests: the upstream sees the client's Host instead of its own authority."""

from __future__ import annotations

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.errors import ConfigError
from tests.conftest import StartGateway, Upstream
from tests.helpers import one_route


async def host_seen(port_url: str, host: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(port_url, headers={"Host": host}) as resp:
        assert resp.status == 200
        seen = await resp.json()
    hosts = [str(value) for name, value in seen["headers"] if name.lower() == "host"]
    return hosts[0]


@pytest.mark.parametrize("form", ["[PreserveHostHeader]", "[{name: PreserveHostHeader}]"])
async def test_client_host_reaches_the_upstream(upstream: Upstream, start_gateway: StartGateway, form: str) -> None:
    gw = await start_gateway(one_route(upstream.url, form))
    assert await host_seen(gw.url("/x"), "shop.example.org:8443") == "shop.example.org:8443"


async def test_without_the_filter_host_is_the_upstream_authority(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(one_route(upstream.url, "[]"))
    assert await host_seen(gw.url("/x"), "shop.example.org") == f"127.0.0.1:{upstream.port}"


async def test_forwarded_host_still_records_the_client_host(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, "[PreserveHostHeader]"))
    async with aiohttp.ClientSession() as session, session.get(gw.url("/x"), headers={"Host": "a.example"}) as resp:
        seen = await resp.json()
    assert ["X-Forwarded-Host", "a.example"] in seen["headers"]


def test_takes_no_arguments() -> None:
    with pytest.raises(ConfigError) as caught:
        Gateway().load_text("routes: [{id: r, uri: 'http://h', filters: [{name: PreserveHostHeader, args: {x: 1}}]}]")
    assert caught.value.issues[0].path == "routes[0].filters[0].args.x"
