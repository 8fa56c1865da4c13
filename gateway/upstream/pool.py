"""Keep-alive connections per upstream endpoint, bounded, kept outside the route table so a reload keeps them.

Per endpoint at most `limits.upstream_max_connections_per_endpoint` connections exist (connecting, active and
idle). At the limit a request waits in FIFO order: a released connection goes straight to the first waiter, and a
closed one gives its place to the next waiter to connect with; after `timeouts.upstream_acquire` the request gets
503. Idle connections expire before the upstream's own keep-alive limit: `timeouts.upstream_idle` (below
gunicorn's 2 s), or sooner when the upstream announced `Keep-Alive: timeout=N` (N minus a safety margin), which is
what keeps SCG's "connection prematurely closed" class of 502 away. An expired connection is never handed out (its
deadline is checked at acquire); one sweep timer per pool closes them, never a timer per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from typing import NamedTuple

from gateway.errors import UpstreamConnectError, UpstreamPoolExhausted, UpstreamTimeout, UpstreamTlsError
from gateway.exchange import Endpoint
from gateway.settings import Settings
from gateway.upstream.connection import UpstreamConnection
from gateway.upstream.dns import Address, Resolver

log = logging.getLogger("sluicegate.upstream")

#: Seconds subtracted from an upstream's `Keep-Alive: timeout=N`: its timer starts when it sent the response, ours
#: when we received it, and our next request still has to travel (undici uses the same 1 s threshold).
KEEP_ALIVE_MARGIN = 1.0


def client_tls_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context for https/wss upstreams: verification on unless explicitly and loudly turned off."""
    tls = settings.upstream_tls
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if not tls.verify:
        log.warning("SECURITY: upstream TLS certificate verification is DISABLED by settings")
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class PoolStats(NamedTuple):
    """One endpoint's numbers: connections holding a place under the limit, idle ones, requests waiting."""

    connections: int
    idle: int
    waiting: int


#: What a waiter is handed: a released connection, or None — a place under the limit to connect with.
_Grant = UpstreamConnection | None


class _EndpointPool:
    """The connections to one endpoint and the requests waiting for one (the `PoolSlot` of its connections)."""

    __slots__ = ("endpoint", "limit", "idle", "waiters", "connections")

    def __init__(self, endpoint: Endpoint, limit: int) -> None:
        self.endpoint = endpoint
        self.limit = limit
        self.idle: list[UpstreamConnection] = []  # most recently released last: reuse the warmest
        self.waiters: deque[asyncio.Future[_Grant]] = deque()
        self.connections = 0  # places taken: connecting, active and idle connections

    def free(self) -> None:
        """A connection is gone: its place goes to the first waiter (to connect with), or back to the pool."""
        if not self.hand_over(None):
            self.connections -= 1

    def hand_over(self, grant: _Grant) -> bool:
        """Give `grant` to the first waiter still waiting; False when nobody is."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(grant)
                return True
        return False


async def connect_in_order(
    endpoint: Endpoint, addresses: tuple[Address, ...]
) -> tuple[asyncio.Transport, UpstreamConnection]:
    """Connect to the addresses in order, the next one when one fails; raises the last failure (OSError).

    The caller bounds the whole sequence with the connect timeout.
    """
    loop = asyncio.get_running_loop()
    failure: OSError | None = None
    for family, host, port in addresses:
        try:
            transport, conn = await loop.create_connection(
                lambda: UpstreamConnection(endpoint), host, port, family=family
            )
        except OSError as exc:
            failure = exc
            continue
        return transport, conn
    raise failure or OSError(f"no addresses for {endpoint.host}")


def _take_place(pool: _EndpointPool, conn: UpstreamConnection, abort: bool = False) -> bool:
    """Close `conn`; True when its place under the limit passed to the caller instead of being freed."""
    taken = conn.slot is pool
    if taken:
        conn.slot = None
    if abort:
        conn.abort()
    else:
        conn.close()
    return taken


class ConnectionPool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pools: dict[Endpoint, _EndpointPool] = {}
        self._tls: ssl.SSLContext | None = None
        self.max_idle = settings.limits.upstream_max_idle_per_endpoint
        self.max_connections = settings.limits.upstream_max_connections_per_endpoint
        self.idle_timeout = settings.timeouts.upstream_idle
        self.acquire_timeout = settings.timeouts.upstream_acquire
        self.dns = Resolver(settings.timeouts.dns_ttl, settings.timeouts.dns_stale)
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at = 0.0
        self._closed = False

    @property
    def tls(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = client_tls_context(self.settings)
        return self._tls

    def stats(self, endpoint: Endpoint) -> PoolStats:
        pool = self._pools.get(endpoint)
        if pool is None:
            return PoolStats(0, 0, 0)
        waiting = sum(1 for waiter in pool.waiters if not waiter.done())
        return PoolStats(pool.connections, len(pool.idle), waiting)

    def idle_connections(self, endpoint: Endpoint) -> tuple[UpstreamConnection, ...]:
        """The idle connections to `endpoint`, least recently used first (diagnostics and tests)."""
        pool = self._pools.get(endpoint)
        return tuple(pool.idle) if pool is not None else ()

    # -- acquire ----------------------------------------------------------------------------------------------
    async def acquire(self, endpoint: Endpoint, connect_timeout: float) -> UpstreamConnection:
        """A pooled connection to `endpoint`, or a new one; at the limit, the first one freed.

        Raises UpstreamPoolExhausted (503) after the acquire timeout, UpstreamConnectError/DnsError (502),
        UpstreamTimeout (504) or UpstreamTlsError (502) when a new connection fails.
        """
        pool = self._pools.get(endpoint)
        if pool is None:
            pool = self._pools[endpoint] = _EndpointPool(endpoint, self.max_connections)
        idle = pool.idle
        if idle:
            now = asyncio.get_running_loop().time()
            while idle:
                conn = idle.pop()
                # Seen closed (or past its deadline) before writing: skipped here, so nothing needs resending.
                if conn.usable and conn.idle_deadline > now:
                    return conn
                conn.close()
        if pool.connections < pool.limit:
            pool.connections += 1
            return await self._connect(pool, connect_timeout)
        return await self._wait(pool, connect_timeout)

    async def _wait(self, pool: _EndpointPool, connect_timeout: float) -> UpstreamConnection:
        grant = await self._queue(pool)
        if grant is None:
            return await self._connect(pool, connect_timeout)
        if grant.usable:
            return grant
        if _take_place(pool, grant):  # closed meanwhile: connect in its place
            return await self._connect(pool, connect_timeout)
        return await self.acquire(pool.endpoint, connect_timeout)  # its place already went to another waiter

    async def _queue(self, pool: _EndpointPool) -> _Grant:
        """Wait in FIFO order for a released connection or a free place; UpstreamPoolExhausted after the timeout."""
        waiter: asyncio.Future[_Grant] = asyncio.get_running_loop().create_future()
        pool.waiters.append(waiter)
        try:
            async with asyncio.timeout(self.acquire_timeout):
                return await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return waiter.result()  # handed over just as the timeout fired: use it
            self._abandon(pool, waiter)
            raise UpstreamPoolExhausted(f"upstream connection pool for {pool.endpoint.label} exhausted") from None
        except BaseException:
            self._abandon(pool, waiter)  # the client left: leave the queue, pass on anything handed over
            raise

    def _abandon(self, pool: _EndpointPool, waiter: asyncio.Future[_Grant]) -> None:
        if waiter.done() and not waiter.cancelled():
            grant = waiter.result()
            if grant is None:
                pool.free()
            else:
                self.release(grant)
            return
        waiter.cancel()
        with contextlib.suppress(ValueError):  # already taken off by a hand-over that skipped it
            pool.waiters.remove(waiter)

    # -- connect ----------------------------------------------------------------------------------------------
    async def replace(self, conn: UpstreamConnection, connect_timeout: float) -> UpstreamConnection:
        """Abort `conn` and return a fresh connection to its endpoint, never a pooled one (the one resend).

        A connection still holding its place hands it straight to the new one; otherwise the new connection
        takes a place like any other (waiting at the limit), or the place of the least recently used idle one.
        """
        pool = self._pools[conn.endpoint]
        if _take_place(pool, conn, abort=True):
            return await self._connect(pool, connect_timeout)
        while True:
            if pool.connections < pool.limit:
                pool.connections += 1
                return await self._connect(pool, connect_timeout)
            grant = pool.idle.pop(0) if pool.idle else await self._queue(pool)
            if grant is None or _take_place(pool, grant):
                return await self._connect(pool, connect_timeout)

    async def _connect(self, pool: _EndpointPool, timeout: float) -> UpstreamConnection:
        """A new connection holding a place already counted in `pool`; the place is given back if it fails."""
        endpoint = pool.endpoint
        try:
            try:
                async with asyncio.timeout(timeout):
                    addresses = await self.dns.resolve(endpoint.host, endpoint.port)
                    transport, conn = await connect_in_order(endpoint, addresses)
            except TimeoutError as exc:
                raise UpstreamTimeout(f"connecting to {endpoint.label} timed out after {timeout:g}s") from exc
            except OSError as exc:
                raise UpstreamConnectError(f"cannot connect to {endpoint.label}: {exc.strerror or exc}") from exc
            if endpoint.tls:
                await self._handshake(conn, transport, endpoint)
        except BaseException:
            pool.free()
            raise
        conn.slot = pool
        return conn

    async def _handshake(self, conn: UpstreamConnection, transport: asyncio.Transport, endpoint: Endpoint) -> None:
        """TLS as a separate step, so its timeout is a 504 of its own rather than a generic connection error."""
        loop = asyncio.get_running_loop()
        limit = self.settings.timeouts.tls_handshake
        try:
            async with asyncio.timeout(limit):
                tls_transport = await loop.start_tls(
                    transport, conn, self.tls, server_hostname=endpoint.server_name or endpoint.host
                )
        except TimeoutError as exc:
            transport.abort()
            raise UpstreamTimeout(f"TLS handshake with {endpoint.label} timed out after {limit:g}s") from exc
        except ssl.SSLCertVerificationError as exc:
            transport.abort()
            raise UpstreamTlsError(f"TLS verification of {endpoint.label} failed: {exc.verify_message}") from exc
        except (ssl.SSLError, OSError) as exc:
            transport.abort()
            reason = exc.reason if isinstance(exc, ssl.SSLError) else exc.strerror
            raise UpstreamTlsError(f"TLS handshake with {endpoint.label} failed: {reason or exc}") from exc
        except BaseException:
            transport.abort()  # the client left mid-handshake: do not leak the socket
            raise
        if tls_transport is None:
            transport.abort()
            raise UpstreamTlsError(f"TLS handshake with {endpoint.label} failed")
        conn.transport = tls_transport

    # -- release ----------------------------------------------------------------------------------------------
    def release(self, conn: UpstreamConnection) -> None:
        """Return a connection whose exchange ended cleanly: to the first waiter, else idle; doubtful ones close."""
        pool = conn.slot
        if not isinstance(pool, _EndpointPool) or not conn.usable or self._closed:
            conn.close()
            return
        lifetime = self.idle_timeout
        announced = conn.keep_alive_timeout
        if announced is not None:
            lifetime = min(lifetime, announced - KEEP_ALIVE_MARGIN)
            if lifetime <= 0:
                conn.close()  # the upstream keeps it too briefly to reuse safely
                return
        if pool.waiters and pool.hand_over(conn):
            return
        if len(pool.idle) >= self.max_idle:
            conn.close()
            return
        deadline = conn.idle_deadline = asyncio.get_running_loop().time() + lifetime
        pool.idle.append(conn)
        if self._sweep is None or deadline < self._sweep_at:
            self._arm_sweep(deadline)

    def _arm_sweep(self, when: float) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
        self._sweep_at = when
        self._sweep = asyncio.get_running_loop().call_at(when, self._sweep_idle)

    def _sweep_idle(self) -> None:
        """Close idle connections past their deadline; re-arm for the earliest remaining deadline."""
        self._sweep = None
        now = asyncio.get_running_loop().time()
        earliest: float | None = None
        for pool in self._pools.values():
            if not pool.idle:
                continue
            keep: list[UpstreamConnection] = []
            for conn in pool.idle:
                if conn.usable and conn.idle_deadline > now:
                    keep.append(conn)
                    earliest = conn.idle_deadline if earliest is None else min(earliest, conn.idle_deadline)
                else:
                    conn.close()
            pool.idle[:] = keep
        if earliest is not None:
            self._arm_sweep(earliest)

    def close(self) -> None:
        """Close the idle connections; connections still in use close when their exchange ends (shutdown)."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for pool in self._pools.values():
            idle, pool.idle = pool.idle, []
            for conn in idle:
                conn.close()
