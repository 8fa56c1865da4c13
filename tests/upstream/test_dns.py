"""Upstream names resolved off the loop with a TTL cache: one lookup per name in flight, literals never looked up,
the last good answer served for a bounded time when lookups fail, and a 502 naming the host otherwise.

Every lookup is a real `getaddrinfo` through the system resolver (`localhost`, and `nonexistent.invalid`, which RFC
6761 guarantees never resolves); `Resolver.lookups` counts them. Expiry is driven by an injected clock, so no test
waits for a TTL to pass.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from gateway.errors import UpstreamDnsError
from gateway.exchange import Endpoint
from gateway.metrics import METRICS
from gateway.upstream.dns import Address, Resolver
from gateway.upstream.pool import ConnectionPool, connect_in_order
from tests.conftest import StartGateway, StartRaw, StartUpstream
from tests.helpers import api_route, fetch, free_port
from tests.upstream.support import GUARD

UNRESOLVABLE = "nonexistent.invalid"
#: A failing lookup may wait for the system resolver's own timeouts where DNS is unreachable: a longer hang guard.
DNS_GUARD = 60.0


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


class Moving(Resolver):
    """A resolver whose one name is looked up, for real, under whichever real name it currently stands for."""

    def __init__(self, ttl: float, stale: float, clock: Clock) -> None:
        super().__init__(ttl, stale, clock, patience=DNS_GUARD)  # each resolve sees its own refresh's outcome
        self.stands_for = "localhost"

    async def _lookup(self, host: str, port: int) -> tuple[Address, ...]:
        return await super()._lookup(self.stands_for, port)


def localhost_families() -> set[int]:
    return {info[0] for info in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)}


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_localhost_resolves_and_a_cache_hit_does_not_look_up_again() -> None:
    resolver = Resolver(ttl=30, stale=300)
    addresses = await resolver.resolve("localhost", 8080)
    assert (socket.AF_INET, "127.0.0.1", 8080) in addresses
    assert resolver.lookups == 1
    assert await resolver.resolve("localhost", 8080) == addresses
    assert resolver.lookups == 1


async def test_concurrent_misses_share_one_lookup() -> None:
    resolver = Resolver(ttl=30, stale=300)
    answers = await asyncio.wait_for(asyncio.gather(*(resolver.resolve("localhost", 80) for _ in range(8))), GUARD)
    assert len(set(answers)) == 1
    assert resolver.lookups == 1


async def test_ip_literals_are_never_looked_up() -> None:
    resolver = Resolver(ttl=0, stale=0)
    assert await resolver.resolve("127.0.0.1", 80) == ((socket.AF_INET, "127.0.0.1", 80),)
    assert await resolver.resolve("::1", 443) == ((socket.AF_INET6, "::1", 443),)
    assert resolver.lookups == 0


async def test_the_ttl_bounds_the_cache_and_zero_resolves_every_time() -> None:
    clock = Clock()
    cached = Resolver(ttl=30, stale=300, clock=clock)
    await cached.resolve("localhost", 80)
    clock.now += 29.9
    await cached.resolve("localhost", 80)
    assert cached.lookups == 1
    clock.now += 0.2
    await cached.resolve("localhost", 80)
    assert cached.lookups == 2
    uncached = Resolver(ttl=0, stale=300, clock=clock)
    for _ in range(3):
        await uncached.resolve("localhost", 80)
    assert uncached.lookups == 3


async def test_a_name_that_never_resolved_is_a_502_naming_the_host() -> None:
    clock = Clock()
    resolver = Resolver(ttl=30, stale=300, clock=clock)
    with pytest.raises(UpstreamDnsError) as info:
        await asyncio.wait_for(resolver.resolve(UNRESOLVABLE, 80), DNS_GUARD)
    assert info.value.status == 502 and UNRESOLVABLE in info.value.detail
    with pytest.raises(UpstreamDnsError):
        await resolver.resolve(UNRESOLVABLE, 80)
    assert resolver.lookups == 1  # the failure is remembered briefly: a dead name is not asked for on every connect
    clock.now += 1.5
    with pytest.raises(UpstreamDnsError):
        await asyncio.wait_for(resolver.resolve(UNRESOLVABLE, 80), DNS_GUARD)
    assert resolver.lookups == 2


async def test_a_failed_refresh_serves_the_last_good_answer_for_the_stale_period_only() -> None:
    clock = Clock()
    resolver = Moving(ttl=30, stale=300, clock=clock)
    good = await resolver.resolve("upstream.example", 80)
    assert (socket.AF_INET, "127.0.0.1", 80) in good
    resolver.stands_for = UNRESOLVABLE  # from now on every lookup really fails
    clock.now += 31
    assert await asyncio.wait_for(resolver.resolve("upstream.example", 80), DNS_GUARD) == good
    assert resolver.lookups == 2
    clock.now += 200  # still within 300 s of the answer's expiry
    assert await asyncio.wait_for(resolver.resolve("upstream.example", 80), DNS_GUARD) == good
    assert resolver.lookups == 3
    clock.now += 101  # past the stale period: nothing good is left
    with pytest.raises(UpstreamDnsError):
        await asyncio.wait_for(resolver.resolve("upstream.example", 80), DNS_GUARD)
    resolver.stands_for = "localhost"  # the resolver recovers: so does the name
    clock.now += 2
    assert await asyncio.wait_for(resolver.resolve("upstream.example", 80), DNS_GUARD) == good


async def test_connecting_tries_the_addresses_in_order(start_raw: StartRaw) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    live = await start_raw(answer)
    refused = (socket.AF_INET, "127.0.0.1", free_port())
    endpoint = Endpoint("upstream.example", live, False)
    transport, conn = await asyncio.wait_for(
        connect_in_order(endpoint, (refused, (socket.AF_INET, "127.0.0.1", live))), GUARD
    )
    try:
        assert transport.get_extra_info("peername")[1] == live and conn.endpoint == endpoint
    finally:
        transport.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(connect_in_order(endpoint, (refused,)), GUARD)


# -- through the gateway ---------------------------------------------------------------------------------------


async def test_a_route_to_localhost_resolves_once_for_many_new_connections(
    start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    connections = 0

    async def close_after_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    port = await start_raw(close_after_each)
    gw = await start_gateway(api_route(f"http://localhost:{port}"))
    for _ in range(3):
        reply = await fetch(gw, "/api/x")
        assert (reply.status, reply.body) == (200, b"ok")
    pool = gw.gateway.forwarder.pool
    assert isinstance(pool, ConnectionPool)
    assert connections == 3 and pool.dns.lookups == 1


async def test_a_pooled_connection_is_reused_without_a_lookup(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await start_upstream()
    gw = await start_gateway(api_route(f"http://localhost:{up.port}"), None)
    pool = gw.gateway.forwarder.pool
    assert isinstance(pool, ConnectionPool)
    pool.dns.ttl = 0  # every new connection would look the name up
    for _ in range(3):
        assert (await fetch(gw, "/api/get")).status == 200
    assert pool.dns.lookups == 1
    assert pool.stats(Endpoint("localhost", up.port, False)).connections == 1


@pytest.fixture
async def ipv6_upstream() -> AsyncIterator[int]:
    """A raw upstream listening on ::1 only (answers "v6" on each connection); skips where there is no ::1."""
    if not has_ipv6_loopback():
        pytest.skip("this machine has no ::1")
    writers: list[asyncio.StreamWriter] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6")
        await writer.drain()

    server = await asyncio.start_server(answer, "::1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    for writer in writers:
        writer.close()
    await server.wait_closed()


async def test_an_ipv6_upstream_by_literal_is_never_looked_up(ipv6_upstream: int, start_gateway: StartGateway) -> None:
    gw = await start_gateway(api_route(f"http://[::1]:{ipv6_upstream}"))
    reply = await fetch(gw, "/api/x")
    assert (reply.status, reply.body) == (200, b"v6")
    pool = gw.gateway.forwarder.pool
    assert isinstance(pool, ConnectionPool) and pool.dns.lookups == 0


async def test_an_ipv6_only_upstream_by_name(ipv6_upstream: int, start_gateway: StartGateway) -> None:
    if socket.AF_INET6 not in localhost_families():
        pytest.skip("localhost does not resolve to ::1 on this machine")
    # Whichever family localhost lists first, the IPv6-only upstream is reached (the next address on failure).
    gw = await start_gateway(api_route(f"http://localhost:{ipv6_upstream}"))
    reply = await fetch(gw, "/api/x")
    assert (reply.status, reply.body) == (200, b"v6")


async def test_an_unresolvable_upstream_is_a_502_problem_counted_as_dns(start_gateway: StartGateway) -> None:
    before = METRICS.upstream_errors.get(("r", "dns"), 0)
    # A connect timeout above a slow resolver's own: the answer is the lookup's failure, not our timeout.
    gw = await start_gateway(api_route(f"http://{UNRESOLVABLE}:80", "{connect-timeout: 60000}"))
    reply = await fetch(gw, "/api/x", guard=DNS_GUARD + 10)
    assert reply.status == 502
    assert reply.headers["Content-Type"] == "application/problem+json"
    assert UNRESOLVABLE in json.loads(reply.body)["detail"]
    assert METRICS.upstream_errors.get(("r", "dns"), 0) == before + 1
