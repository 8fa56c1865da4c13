"""Forwarding core, upstream TLS: verified by default, a configurable CA bundle, SNI per route, a handshake timeout.

Certificates are issued in the test by trustme; every upstream is a real TLS server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from gateway.demo import demo_app
from gateway.settings import Settings, Timeouts, UpstreamTls
from tests.conftest import StartGateway, StartUpstream
from tests.helpers import api_route

GUARD = 10.0  # seconds: only a guard against a hang, never a measurement


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def server_context(ca: trustme.CA, *names: str, **issue: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names, **issue).configure_cert(context)
    return context


def trusting(ca_file: Path, **settings: Any) -> Settings:
    return Settings(upstream_tls=UpstreamTls(ca_file=ca_file), **settings)


def routes(uri: str, metadata: str = "{}") -> str:
    """The one route `tls`: /api/** to `uri` (https:// or wss://), /api stripped."""
    return api_route(uri, metadata, rid="tls")


async def fetch(url: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


def problem_detail(content_type: str, body: bytes) -> str:
    assert content_type == "application/problem+json"
    detail = json.loads(body)["detail"]
    assert isinstance(detail, str)
    return detail.lower()


async def test_ca_bundle_from_settings_verifies_localhost(
    ca: trustme.CA, ca_file: Path, start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await start_upstream(ssl_context=server_context(ca, "localhost"))
    gw = await start_gateway(routes(f"https://localhost:{up.port}"), trusting(ca_file))
    status, _, body = await fetch(gw.url("/api/hello?x=1"))
    assert status == 200
    seen = json.loads(body)
    assert seen["path"] == "/hello" and seen["query"] == "x=1"
    assert dict((k.lower(), v) for k, v in seen["headers"])["host"] == f"localhost:{up.port}"


async def test_system_store_refuses_an_unknown_ca(
    ca: trustme.CA, start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await start_upstream(ssl_context=server_context(ca, "localhost"))
    gw = await start_gateway(routes(f"https://localhost:{up.port}"))
    status, content_type, body = await fetch(gw.url("/api/x"))
    assert status == 502
    detail = problem_detail(content_type, body)
    assert "verification" in detail and "certificate" in detail
    assert len(up.hits) == 0


async def test_certificate_for_another_name_is_502(
    ca: trustme.CA, ca_file: Path, start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await start_upstream(ssl_context=server_context(ca, "other.example"))
    gw = await start_gateway(routes(f"https://localhost:{up.port}"), trusting(ca_file))
    status, content_type, body = await fetch(gw.url("/api/x"))
    assert status == 502
    assert "verification" in problem_detail(content_type, body)
    assert len(up.hits) == 0


async def test_expired_certificate_is_502(
    ca: trustme.CA, ca_file: Path, start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    expired = server_context(
        ca, "localhost", not_before=now - datetime.timedelta(days=10), not_after=now - datetime.timedelta(days=1)
    )
    up = await start_upstream(ssl_context=expired)
    gw = await start_gateway(routes(f"https://localhost:{up.port}"), trusting(ca_file))
    status, content_type, body = await fetch(gw.url("/api/x"))
    assert status == 502
    assert "expired" in problem_detail(content_type, body)
    assert len(up.hits) == 0


async def test_ip_address_does_not_match_a_name_certificate(
    ca: trustme.CA, ca_file: Path, start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await start_upstream(ssl_context=server_context(ca, "localhost"))
    gw = await start_gateway(routes(f"https://127.0.0.1:{up.port}"), trusting(ca_file))
    status, _, _ = await fetch(gw.url("/api/x"))
    assert status == 502


async def test_tls_server_name_sets_sni_and_the_verified_name(
    ca: trustme.CA, ca_file: Path, start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    server_names: list[str | None] = []
    context = server_context(ca, "backend.internal")

    def record_sni(sock: Any, name: str | None, ctx: ssl.SSLContext) -> None:
        server_names.append(name)

    context.sni_callback = record_sni
    up = await start_upstream(ssl_context=context)
    gw = await start_gateway(
        routes(f"https://127.0.0.1:{up.port}", "{tls-server-name: backend.internal}"), trusting(ca_file)
    )
    status, _, body = await fetch(gw.url("/api/x"))
    assert status == 200
    assert json.loads(body)["path"] == "/x"
    assert server_names == ["backend.internal"]


async def test_tls_connections_are_pooled(
    ca: trustme.CA, ca_file: Path, start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    handshakes: list[str | None] = []
    context = server_context(ca, "localhost")
    context.sni_callback = lambda sock, name, ctx: handshakes.append(name)
    up = await start_upstream(ssl_context=context)
    gw = await start_gateway(routes(f"https://localhost:{up.port}"), trusting(ca_file))
    for _ in range(10):
        status, _, _ = await fetch(gw.url("/api/x"))
        assert status == 200
    assert len(up.hits) == 10
    assert handshakes == ["localhost"]  # one TLS connection, reused


@pytest.fixture
async def silent_tcp_port() -> AsyncIterator[int]:
    """A TCP server that accepts and never speaks: a TLS handshake with it can only time out."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    for writer in held:
        writer.close()
    await server.wait_closed()


async def test_tls_handshake_timeout_is_504(silent_tcp_port: int, ca_file: Path, start_gateway: StartGateway) -> None:
    settings = trusting(ca_file, timeouts=Timeouts(tls_handshake=0.3, connect=30))
    gw = await start_gateway(routes(f"https://localhost:{silent_tcp_port}"), settings)
    status, content_type, body = await asyncio.wait_for(fetch(gw.url("/api/x")), GUARD)
    assert status == 504
    assert json.loads(body)["status"] == 504
    assert content_type == "application/problem+json"


async def test_wss_upstream(
    ca: trustme.CA, ca_file: Path, start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await start_upstream(demo_app(), ssl_context=server_context(ca, "localhost"))
    gw = await start_gateway(routes(f"wss://localhost:{up.port}"), trusting(ca_file))
    async with aiohttp.ClientSession() as session, session.ws_connect(gw.url("/api/ws"), protocols=("chat",)) as ws:
        assert ws.protocol == "chat"
        await ws.send_str("over tls")
        assert await asyncio.wait_for(ws.receive_str(), GUARD) == "over tls"
        await ws.send_bytes(b"\x00\xff" * 40_000)
        assert await asyncio.wait_for(ws.receive_bytes(), GUARD) == b"\x00\xff" * 40_000


async def test_wss_upstream_with_unknown_ca_is_refused(
    ca: trustme.CA, start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await start_upstream(demo_app(), ssl_context=server_context(ca, "localhost"))
    gw = await start_gateway(routes(f"wss://localhost:{up.port}"))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as failed:
            await session.ws_connect(gw.url("/api/ws"))
    assert failed.value.status == 502
    assert len(up.hits) == 0
