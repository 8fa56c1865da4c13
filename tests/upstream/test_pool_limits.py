"""The bounded pool: at most N connections per endpoint, FIFO waiting with hand-off, 503 after the acquire timeout,
and waiters that leave (their client went away) without leaking a place.

Upstreams are real servers on 127.0.0.1 that hold requests until the test opens a gate, so "busy" is a state the
test controls, never a duration it guesses.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from gateway.errors import UpstreamConnectError, UpstreamPoolExhausted
from gateway.exchange import Endpoint
from gateway.metrics import METRICS
from gateway.upstream.pool import ConnectionPool
from tests.conftest import StartGateway, StartRaw, StartUpstream, Upstream
from tests.helpers import api_route, fetch, free_port
from tests.upstream.conftest import MakePool
from tests.upstream.support import GUARD, eventually, settings


@dataclass
class Gated:
    """An aiohttp upstream: /api/hold?n=ID waits for the gate; records arrival order and client ports seen."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: list[str] = field(default_factory=list)
    ports: set[int] = field(default_factory=set)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/hold", self.hold)
        return app

    async def hold(self, request: web.Request) -> web.Response:
        self.arrived.append(request.query["n"])
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.ports.add(int(peer[1]))
        await self.gate.wait()
        return web.Response(text="ok " + request.query["n"])


def endpoint_of(upstream: Upstream | int) -> Endpoint:
    return Endpoint("127.0.0.1", upstream if isinstance(upstream, int) else upstream.port, False)


def pool_of(gateway_pool: object) -> ConnectionPool:
    assert isinstance(gateway_pool, ConnectionPool)
    return gateway_pool


async def test_at_the_limit_a_request_waits_and_gets_a_released_connection(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    gated = Gated()
    up = await start_upstream(gated.app())
    gw = await start_gateway(api_route(up.port), settings(limits={"upstream_max_connections_per_endpoint": 2}))
    pool = pool_of(gw.gateway.forwarder.pool)
    first = [asyncio.create_task(fetch(gw, f"/api/hold?n={n}")) for n in ("a", "b")]
    await eventually(lambda: len(gated.arrived) == 2)
    third = asyncio.create_task(fetch(gw, "/api/hold?n=c"))
    await eventually(lambda: pool.stats(endpoint_of(up)).waiting == 1)
    assert gated.arrived == ["a", "b"] and pool.stats(endpoint_of(up)).connections == 2
    gated.gate.set()
    replies = await asyncio.wait_for(asyncio.gather(*first, third), GUARD)
    assert [(r.status, r.body) for r in replies] == [(200, b"ok a"), (200, b"ok b"), (200, b"ok c")]
    assert len(gated.ports) == 2  # the third request went out on a connection one of the first two released
    assert pool.stats(endpoint_of(up)) == (2, 2, 0)


async def test_waiters_are_served_in_arrival_order(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    gated = Gated()
    up = await start_upstream(gated.app())
    gw = await start_gateway(api_route(up.port), settings(limits={"upstream_max_connections_per_endpoint": 1}))
    pool = pool_of(gw.gateway.forwarder.pool)
    tasks = [asyncio.create_task(fetch(gw, "/api/hold?n=a"))]
    await eventually(lambda: gated.arrived == ["a"])
    for name in ("b", "c", "d"):  # each one queued before the next arrives
        tasks.append(asyncio.create_task(fetch(gw, f"/api/hold?n={name}")))
        await eventually(lambda: pool.stats(endpoint_of(up)).waiting == len(tasks) - 1)
    gated.gate.set()
    replies = await asyncio.wait_for(asyncio.gather(*tasks), GUARD)
    assert all(reply.status == 200 for reply in replies)
    assert gated.arrived == ["a", "b", "c", "d"]
    assert len(gated.ports) == 1  # one connection, handed from each request to the next waiter


async def test_acquire_timeout_is_a_503_problem_counted_as_pool(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    gated = Gated()
    up = await start_upstream(gated.app())
    config = settings(limits={"upstream_max_connections_per_endpoint": 1}, timeouts={"upstream_acquire": 0.2})
    gw = await start_gateway(api_route(up.port), config)
    before = METRICS.upstream_errors.get(("r", "pool"), 0)
    held = asyncio.create_task(fetch(gw, "/api/hold?n=a"))
    await eventually(lambda: gated.arrived == ["a"])
    refused = await fetch(gw, "/api/hold?n=b")
    assert refused.status == 503
    assert refused.headers["Content-Type"] == "application/problem+json"
    problem = json.loads(refused.body)
    assert problem["status"] == 503
    assert problem["detail"] == f"upstream connection pool for 127.0.0.1:{up.port} exhausted"
    assert METRICS.upstream_errors.get(("r", "pool"), 0) == before + 1
    assert gated.arrived == ["a"]  # the refused request never reached the upstream
    assert pool_of(gw.gateway.forwarder.pool).stats(endpoint_of(up)).waiting == 0
    gated.gate.set()
    assert (await asyncio.wait_for(held, GUARD)).status == 200


async def test_a_client_leaving_while_waiting_leaves_the_queue(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    gated = Gated()
    up = await start_upstream(gated.app())
    gw = await start_gateway(api_route(up.port), settings(limits={"upstream_max_connections_per_endpoint": 1}))
    pool = pool_of(gw.gateway.forwarder.pool)
    held = asyncio.create_task(fetch(gw, "/api/hold?n=a"))
    await eventually(lambda: gated.arrived == ["a"])
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(b"GET /api/hold?n=gone HTTP/1.1\r\nHost: gw\r\n\r\n")
    await eventually(lambda: pool.stats(endpoint_of(up)).waiting == 1)
    writer.close()
    await writer.wait_closed()
    await eventually(lambda: pool.stats(endpoint_of(up)).waiting == 0)
    gated.gate.set()
    assert (await asyncio.wait_for(held, GUARD)).status == 200
    later = await fetch(gw, "/api/hold?n=c")
    assert later.status == 200
    assert gated.arrived == ["a", "c"]  # the request whose client left was never sent
    assert pool.stats(endpoint_of(up)) == (1, 1, 0)  # and it kept no place


# -- the pool on its own, against a real listening socket ---------------------------------------------------------


async def hold_open(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A raw upstream that accepts and keeps each connection until the client closes it."""
    await reader.read()


async def test_release_goes_to_the_first_waiter_and_close_lets_the_next_connect(
    start_raw: StartRaw, make_pool: MakePool
) -> None:
    endpoint = endpoint_of(await start_raw(hold_open))
    under = make_pool(settings(limits={"upstream_max_connections_per_endpoint": 1}))
    pool = under.pool
    first = await under.acquire(endpoint)
    waiting = [asyncio.create_task(under.acquire(endpoint))]
    await eventually(lambda: pool.stats(endpoint).waiting == 1)
    waiting.append(asyncio.create_task(under.acquire(endpoint)))
    await eventually(lambda: pool.stats(endpoint).waiting == 2)
    pool.release(first)
    assert await asyncio.wait_for(waiting[0], GUARD) is first  # handed over, not pooled, not a new connection
    assert not waiting[1].done() and pool.stats(endpoint) == (1, 0, 1)
    first.close()  # a closed connection gives its place to the next waiter, which connects anew
    second = await asyncio.wait_for(waiting[1], GUARD)
    assert second is not first and second.usable
    assert pool.stats(endpoint) == (1, 0, 0)


async def test_a_cancelled_waiter_is_skipped_and_keeps_nothing(start_raw: StartRaw, make_pool: MakePool) -> None:
    endpoint = endpoint_of(await start_raw(hold_open))
    under = make_pool(settings(limits={"upstream_max_connections_per_endpoint": 1}))
    pool = under.pool
    conn = await under.acquire(endpoint)
    gone = asyncio.create_task(under.acquire(endpoint))
    await eventually(lambda: pool.stats(endpoint).waiting == 1)
    stays = asyncio.create_task(under.acquire(endpoint))
    await eventually(lambda: pool.stats(endpoint).waiting == 2)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert pool.stats(endpoint).waiting == 1
    pool.release(conn)
    assert await asyncio.wait_for(stays, GUARD) is conn
    pool.release(conn)
    assert pool.stats(endpoint) == (1, 1, 0)


async def test_waiting_past_the_acquire_timeout_raises_pool_exhausted(start_raw: StartRaw, make_pool: MakePool) -> None:
    endpoint = endpoint_of(await start_raw(hold_open))
    config = settings(limits={"upstream_max_connections_per_endpoint": 1}, timeouts={"upstream_acquire": 0.05})
    under = make_pool(config)
    await under.acquire(endpoint)
    with pytest.raises(UpstreamPoolExhausted) as info:
        await asyncio.wait_for(under.acquire(endpoint), GUARD)
    assert info.value.status == 503
    assert under.pool.stats(endpoint) == (1, 0, 0)


async def test_a_failed_connect_gives_its_place_back(make_pool: MakePool) -> None:
    endpoint = endpoint_of(free_port())
    under = make_pool(settings(limits={"upstream_max_connections_per_endpoint": 1}))
    for _ in range(3):  # with the place leaked, the second attempt would wait and end in 503
        with pytest.raises(UpstreamConnectError):
            await asyncio.wait_for(under.acquire(endpoint), GUARD)
    assert under.pool.stats(endpoint) == (0, 0, 0)
