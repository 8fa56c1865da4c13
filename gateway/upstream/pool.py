"""Keep-alive connections per upstream endpoint, kept outside the route table so a reload does not reset them.

Idle connections expire before common upstream keep-alive limits (gunicorn closes after 2 s), which is what keeps
SCG's "connection prematurely closed" class of 502 away without resending anything.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from gateway.errors import UpstreamConnectError, UpstreamTimeout, UpstreamTlsError
from gateway.exchange import Endpoint
from gateway.settings import Settings
from gateway.upstream.connection import UpstreamConnection

log = logging.getLogger("sluicegate.upstream")


def client_tls_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context for https/wss upstreams: verification on unless explicitly and loudly turned off."""
    tls = settings.upstream_tls
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if not tls.verify:
        log.warning("SECURITY: upstream TLS certificate verification is DISABLED by settings")
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ConnectionPool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.idle: dict[Endpoint, list[UpstreamConnection]] = {}
        self._tls: ssl.SSLContext | None = None
        self.max_idle = settings.limits.upstream_max_idle_per_endpoint
        self.idle_timeout = settings.timeouts.upstream_idle

    @property
    def tls(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = client_tls_context(self.settings)
        return self._tls

    async def acquire(self, endpoint: Endpoint, connect_timeout: float) -> UpstreamConnection:
        """An idle pooled connection to `endpoint`, or a new one. Raises UpstreamConnectError/Timeout/TlsError."""
        idle = self.idle.get(endpoint)
        while idle:
            conn = idle.pop()
            if conn.idle_timer is not None:
                conn.idle_timer.cancel()
                conn.idle_timer = None
            if conn.usable:
                return conn
            conn.close()
        return await self._connect(endpoint, connect_timeout)

    async def _connect(self, endpoint: Endpoint, timeout: float) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, conn = await loop.create_connection(
                    lambda: UpstreamConnection(endpoint), endpoint.host, endpoint.port
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"connecting to {endpoint.label} timed out after {timeout:g}s") from exc
        except OSError as exc:
            raise UpstreamConnectError(f"cannot connect to {endpoint.label}: {exc.strerror or exc}") from exc
        if endpoint.tls:
            await self._handshake(conn, transport, endpoint)
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
        if tls_transport is None:
            raise UpstreamTlsError(f"TLS handshake with {endpoint.label} failed")
        conn.transport = tls_transport

    def release(self, conn: UpstreamConnection) -> None:
        """Return a connection whose exchange ended cleanly; anything doubtful is closed instead."""
        if not conn.usable:
            conn.close()
            return
        idle = self.idle.setdefault(conn.endpoint, [])
        if len(idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_timer = asyncio.get_running_loop().call_later(self.idle_timeout, self._expire, conn)
        idle.append(conn)

    def _expire(self, conn: UpstreamConnection) -> None:
        conn.idle_timer = None
        idle = self.idle.get(conn.endpoint)
        if idle and conn in idle:
            idle.remove(conn)
        conn.close()

    def close(self) -> None:
        for idle in self.idle.values():
            for conn in idle:
                conn.close()
        self.idle.clear()
