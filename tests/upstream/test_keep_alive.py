"""Idle pooled connections expire before the upstream's own keep-alive limit, including a `Keep-Alive: timeout=N`
the upstream announces (Apache, nginx and Node send one).

The raw upstream below enforces what it announces the way a race with a real server looks from the wire: a request
arriving on a connection that sat idle for longer than the announced timeout is one the server's close crossed, so
it is read and the connection is closed without an answer (`late`). A gateway that honours the header never sends
one; the server counts connections to show a new one was opened instead.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gateway.exchange import Endpoint
from gateway.upstream.connection import parse_keep_alive_timeout
from gateway.upstream.pool import ConnectionPool
from tests.conftest import StartGateway, StartRaw
from tests.helpers import api_route, fetch
from tests.upstream.support import eventually, settings


@dataclass
class AnnouncesKeepAlive:
    """Answers every request with `Keep-Alive: timeout=N`; a request after more than N idle seconds is `late`."""

    timeout: int
    connections: int = 0
    answered: int = 0
    late: int = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        loop = asyncio.get_running_loop()
        idle_since: float | None = None
        while True:
            await reader.readuntil(b"\r\n\r\n")
            if idle_since is not None and loop.time() - idle_since > self.timeout:
                self.late += 1
                return  # the server's idle close crossed this request: no answer
            writer.write(b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=%d\r\nContent-Length: 2\r\n\r\nok" % self.timeout)
            await writer.drain()
            self.answered += 1
            idle_since = loop.time()


async def test_an_upstream_allowing_only_the_margin_is_not_pooled(
    start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    upstream = AnnouncesKeepAlive(timeout=1)
    port = await start_raw(upstream)
    gw = await start_gateway(api_route(port))
    pool = gw.gateway.forwarder.pool
    assert isinstance(pool, ConnectionPool)
    assert (await fetch(gw, "/api/one")).status == 200
    assert pool.stats(Endpoint("127.0.0.1", port, False)).idle == 0  # 1 s minus the 1 s margin: not pooled
    await asyncio.sleep(1.2)  # past the upstream's keep-alive (a wait the scenario needs, not a measurement)
    assert (await fetch(gw, "/api/two")).status == 200
    assert (upstream.connections, upstream.answered, upstream.late) == (2, 2, 0)


async def test_the_announced_timeout_shortens_a_longer_idle_setting(
    start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    upstream = AnnouncesKeepAlive(timeout=2)
    port = await start_raw(upstream)
    gw = await start_gateway(api_route(port), settings(timeouts={"upstream_idle": 30}))
    assert (await fetch(gw, "/api/one")).status == 200
    assert (await fetch(gw, "/api/two")).status == 200
    assert upstream.connections == 1  # reused at once: honouring the header does not turn pooling off
    await asyncio.sleep(2.2)  # past the announced 2 s, far inside the 30 s setting
    assert (await fetch(gw, "/api/three")).status == 200
    assert (upstream.connections, upstream.answered, upstream.late) == (2, 3, 0)


async def test_an_idle_connection_past_its_lifetime_is_closed_by_the_pool(
    start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    closed = asyncio.Event()

    async def answer_then_watch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()  # b"" once the gateway closes the idle connection
        closed.set()

    port = await start_raw(answer_then_watch)
    gw = await start_gateway(api_route(port), settings(timeouts={"upstream_idle": 0.2}))
    assert (await fetch(gw, "/api/x")).status == 200
    await eventually(closed.is_set)  # the pool's sweep closed it: the upstream saw our FIN
    pool = gw.gateway.forwarder.pool
    assert isinstance(pool, ConnectionPool)
    assert pool.stats(Endpoint("127.0.0.1", port, False)) == (0, 0, 0)


# -- parsing the header value ------------------------------------------------------------------------------------


def test_keep_alive_timeout_parsing() -> None:
    assert parse_keep_alive_timeout("timeout=5, max=1000") == 5
    assert parse_keep_alive_timeout("max=1000, timeout=5") == 5
    assert parse_keep_alive_timeout(" Timeout = 7 ") == 7
    assert parse_keep_alive_timeout('timeout="3"') == 3
    assert parse_keep_alive_timeout("timeout=0") == 0
    assert parse_keep_alive_timeout("timeout=5, timeout=1") == 5  # the first one counts


def test_malformed_keep_alive_timeouts_are_ignored() -> None:
    for value in (
        "",
        "max=5",
        "timeout",
        "timeout=",
        "timeout=-1",
        "timeout=+1",
        "timeout=1.5",
        "timeout=5x",
        "timeout=0x10",
        "timeout=\u0663",  # ARABIC-INDIC DIGIT THREE: str.isdigit() alone would accept it
        "timeout=\u00b2",  # SUPERSCRIPT TWO, likewise
        "timeout=1234567890",
        'timeout="5',
        "timeout=5 5",
    ):
        assert parse_keep_alive_timeout(value) is None, value


@hypothesis_settings(deadline=None)
@given(st.text())
def test_any_keep_alive_value_parses_to_none_or_a_small_count(value: str) -> None:
    seconds = parse_keep_alive_timeout(value)
    assert seconds is None or 0 <= seconds < 10**9
