"""The innermost step of every proxied chain: send the exchange upstream and hand back the streaming response.

Byte-transparent except a documented list (docs/routes.md "What the gateway changes"): hop-by-hop and
Connection-named fields removed both ways, Host set to the upstream's authority (unless preserved), forwarding
headers appended, framing recomputed, `Expect` answered by the gateway.

The one resend below the Retry filter: a request is re-sent once on a fresh connection only if the pooled
connection was seen closed before writing (skipped at acquire, so nothing to resend), or the write was refused
with 0 bytes sent (any method), or — for idempotent methods only, with no body or a replayable or still unread
one — the connection hit EOF (or a reset) before any response byte. Nothing else is ever sent twice. The resend is
an attempt (`exchange.outcomes.tried`, `gateway_upstream_resends_total`, an INFO log line); it spends no retry budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from gateway.body import Body
from gateway.errors import (
    GatewayError,
    InternalError,
    NoHealthyInstance,
    UpstreamConnectError,
    UpstreamDnsError,
    UpstreamError,
    UpstreamPoolExhausted,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamTlsError,
)
from gateway.exchange import Exchange, Response, UpgradeResponse, UpstreamRef
from gateway.hygiene import UPGRADE, strip_hop_by_hop
from gateway.lb.pool import Outcome
from gateway.metrics import METRICS, UNMATCHED
from gateway.observability import REQUEST_ID
from gateway.routing.route import UpstreamTimeouts
from gateway.server.wire import LAST_CHUNK, chunk
from gateway.settings import Settings
from gateway.upstream.connection import ConnectionTunnel, ResponseBody, ResponseHead, UpstreamConnection
from gateway.upstream.pool import ConnectionPool
from gateway.upstream.request_head import serialize_request

log = logging.getLogger("sluicegate.upstream")

#: Upstream failures by kind, for gateway_upstream_errors_total (client-side 4xx are not upstream errors).
_ERROR_KINDS: dict[type[GatewayError], str] = {
    UpstreamConnectError: "connect",
    NoHealthyInstance: "no_healthy_instance",
    UpstreamDnsError: "dns",
    UpstreamPoolExhausted: "pool",
    UpstreamTimeout: "timeout",
    UpstreamTlsError: "tls",
    UpstreamProtocolError: "protocol",
    UpstreamError: "reset",
}
#: RFC 9110 §9.2.2: a request with one of these methods may be sent again after a connection was lost.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
WRITE_REFUSED = "write_refused"
EOF_BEFORE_RESPONSE = "eof_before_response"


class Forwarder(Protocol):
    """What the dispatcher needs from a data plane; the lean pool of the data-plane work plugs in here."""

    async def forward(self, exchange: Exchange) -> Response: ...

    async def close(self) -> None: ...


class EndpointResolver(Protocol):
    """Turns the exchange's target reference into the direct reference of the instance to try (pools: `lb://`).

    `report` and `release` are called only for targets whose `pool` is set: once per attempt with its outcome,
    and once when the attempt is over (response ended, failed or abandoned), for in-flight counts.
    """

    def resolve(self, ref: UpstreamRef, exchange: Exchange) -> UpstreamRef: ...

    def report(self, target: UpstreamRef, outcome: Outcome) -> None: ...

    def release(self, target: UpstreamRef) -> None: ...


class DirectResolver:
    """A direct `http(s)://`/`ws(s)://` route has exactly one endpoint."""

    def resolve(self, ref: UpstreamRef, exchange: Exchange) -> UpstreamRef:
        if ref.endpoint is None:
            raise InternalError(f"no endpoint for upstream {ref.uri!r}")
        return ref

    def report(self, target: UpstreamRef, outcome: Outcome) -> None:
        pass

    def release(self, target: UpstreamRef) -> None:
        pass


class HttpForwarder:
    def __init__(
        self, settings: Settings, pool: ConnectionPool | None = None, resolver: EndpointResolver | None = None
    ) -> None:
        self.settings = settings
        self.pool = pool or ConnectionPool(settings)
        self.resolver = resolver or DirectResolver()
        self.default_timeouts = UpstreamTimeouts.of(settings.timeouts)

    async def close(self) -> None:
        self.pool.close()

    def _timeouts(self, exchange: Exchange) -> UpstreamTimeouts:
        route = exchange.route
        return route.timeouts if route is not None else self.default_timeouts

    async def forward(self, exchange: Exchange) -> Response:
        """Send the request; return once the response head arrived. Raises a GatewayError (502/504/4xx)."""
        started = time.monotonic()
        try:
            response = await self._forward(exchange)
        except GatewayError as error:
            kind = _ERROR_KINDS.get(type(error))
            if kind is not None:
                METRICS.upstream_error(exchange.route.id if exchange.route else UNMATCHED, kind)
            raise
        elapsed = time.monotonic() - started
        exchange.outcomes.upstream_seconds = elapsed
        METRICS.upstream_time(exchange.route.id if exchange.route else UNMATCHED, elapsed)
        return response

    async def _forward(self, exchange: Exchange) -> Response:
        ref = exchange.target
        if ref is None:
            raise InternalError("the route has no upstream")
        target = self.resolver.resolve(ref, exchange)
        if target.pool is None:
            return await self._send(exchange, target, None)
        attempt = _Attempt()
        try:
            response = await self._send(exchange, target, attempt)
        except BaseException as error:
            self.resolver.report(target, _failure(error, attempt.connected))
            self.resolver.release(target)
            raise
        self.resolver.report(target, "5xx" if response.status >= 500 else "success")
        if attempt.complete is None:
            self.resolver.release(target)  # an upgrade: the tunnel is no request in flight
        else:
            attempt.complete.add_done_callback(lambda _: self.resolver.release(target))
        return response

    async def _send(self, exchange: Exchange, ref: UpstreamRef, attempt: _Attempt | None) -> Response:
        """One attempt on the direct reference `ref`; `attempt`, when given, learns how far it got."""
        endpoint = ref.endpoint
        if endpoint is None:
            raise InternalError(f"no endpoint for upstream {ref.uri!r}")
        upgrade = exchange.get(UPGRADE) if ref.kind == "ws" else None
        head_bytes, chunked = serialize_request(exchange, ref, upgrade, self.settings.observability.request_id_header)
        timeouts = self._timeouts(exchange)
        exchange.outcomes.tried.append(endpoint)  # recorded before connecting: a failed connect was still an attempt
        conn = await self.pool.acquire(endpoint, timeouts.connect)
        if attempt is not None:
            attempt.connected = True
        sender = _BodySender(exchange.body, chunked, timeouts.body_idle) if chunked is not None else None
        sent = await self._attempt(conn, exchange.method, head_bytes, sender, timeouts, conn.requests > 0)
        if isinstance(sent, str):
            if attempt is not None:
                attempt.connected = False  # the resend connects afresh: a refusal now is a connect failure
            conn, sender = await self._prepare_resend(exchange, conn, sender, sent, timeouts)
            if attempt is not None:
                attempt.connected = True
            sent = await self._attempt(conn, exchange.method, head_bytes, sender, timeouts, False)
            assert not isinstance(sent, str)  # a fresh connection is never resent on
        head, task = sent
        response = self._response(conn, head, task, upgrade)
        if attempt is not None and not isinstance(response, UpgradeResponse):
            attempt.complete = conn.on_complete
        if isinstance(response.body, ResponseBody):
            exchange.outcomes.streams.append(response.body)  # closed by the server if a filter never sends it on
        return response

    async def _attempt(
        self,
        conn: UpstreamConnection,
        method: str,
        head_bytes: bytes,
        sender: _BodySender | None,
        timeouts: UpstreamTimeouts,
        pooled: bool,
    ) -> tuple[ResponseHead, asyncio.Task[None] | None] | str:
        """Send the request on `conn` and wait for the response head.

        Returns the head (and the body-sending task), or — only when `pooled` — the reason the request may be sent
        once more on a fresh connection. Raises a GatewayError otherwise, with the connection aborted.
        """
        conn.begin(method == "HEAD", timeouts.body_idle)
        task: asyncio.Task[None] | None = None
        try:
            if conn.send_head(head_bytes) and pooled:
                return WRITE_REFUSED  # not one byte left: safe for any method, and the body is still unread
            if sender is not None:
                task = asyncio.get_running_loop().create_task(sender.run(conn))
            return await _await_head(conn, task, timeouts.response), task
        except BaseException as error:
            if task is not None:
                task.cancel()
            if not (pooled and isinstance(error, UpstreamError) and _lost_unanswered(conn, method, sender)):
                conn.abort()  # the upstream must see an incomplete request, never a complete one we gave up on
                raise
        if task is not None:
            await asyncio.wait((task,))  # let it unwind before another sender reads the same body
        return EOF_BEFORE_RESPONSE

    async def _prepare_resend(
        self,
        exchange: Exchange,
        conn: UpstreamConnection,
        sender: _BodySender | None,
        reason: str,
        timeouts: UpstreamTimeouts,
    ) -> tuple[UpstreamConnection, _BodySender | None]:
        """Record the resend as an attempt and get a fresh connection in place of the failed pooled one."""
        endpoint = conn.endpoint
        exchange.outcomes.tried.append(endpoint)
        METRICS.upstream_resend(exchange.route.id if exchange.route else UNMATCHED, reason)
        request_id: str | None = exchange.get(REQUEST_ID)
        log.info(
            "request %s: %s re-sent to %s on a fresh connection (%s)",
            request_id,
            exchange.method,
            endpoint.label,
            reason,
        )
        fresh = await self.pool.replace(conn, timeouts.connect)
        return fresh, (sender.again() if sender is not None else None)

    def _response(
        self,
        conn: UpstreamConnection,
        head: ResponseHead,
        sender: asyncio.Task[None] | None,
        upgrade: str | None,
    ) -> Response:
        headers = head.headers
        if head.status == 101:
            return self._switched(conn, head, upgrade)
        strip_hop_by_hop(headers)
        body = conn.body
        assert body is not None and conn.on_complete is not None
        if (headers.get("content-type") or "").startswith("text/event-stream"):
            body.set_idle_timeout(None)  # server-sent events may be quiet for long; they end when either side does
        conn.on_complete.add_done_callback(lambda _: self._finished(conn, sender))
        return Response(head.status, headers, body, origin="upstream", reason=head.reason)

    def _switched(self, conn: UpstreamConnection, head: ResponseHead, upgrade: str | None) -> UpgradeResponse:
        """A 101 answer: a tunnel only when the client asked for a WebSocket and the upstream switched to exactly that.

        Raises UpstreamError (502) otherwise: the client would be handed a protocol it did not ask for.
        """
        protocol = (head.headers.get("upgrade") or "").strip()
        if not upgrade or protocol.lower() != upgrade:
            conn.abort()
            if not upgrade:
                raise UpstreamError("the upstream switched protocols without being asked to")
            raise UpstreamError(f"the upstream switched to {protocol or 'no protocol'!r}, not to {upgrade!r}")
        strip_hop_by_hop(head.headers)
        tunnel = ConnectionTunnel(conn, protocol)
        return UpgradeResponse(head.headers, tunnel, reason=head.reason or "Switching Protocols")

    def _finished(self, conn: UpstreamConnection, sender: asyncio.Task[None] | None) -> None:
        """The response ended: pool the connection if the request was fully and cleanly sent too."""
        if sender is not None and not (sender.done() and not sender.cancelled() and sender.exception() is None):
            sender.cancel()  # the upstream answered before taking the whole body: that connection is spent
            conn.close()
            return
        if conn.reusable and not conn.closed:
            self.pool.release(conn)
        else:
            conn.close()


class _Attempt:
    """How far one attempt on a pool instance got, for its outcome report."""

    __slots__ = ("connected", "complete")

    def __init__(self) -> None:
        self.connected = False
        self.complete: asyncio.Future[None] | None = None


def _failure(error: BaseException, connected: bool) -> Outcome:
    """An attempt's failure as outlier detection counts it (Envoy's local-origin errors).

    Before a connection: refused, connect timeout, TLS, DNS → connect_failure. After: timeout, reset, invalid
    response → 5xx (the 502/504 the client sees). Our own limits (pool exhausted, 503) and anything the client
    caused (it left: 499; its body was bad or slow: 4xx) say nothing about the instance.
    """
    if isinstance(error, UpstreamPoolExhausted) or not isinstance(error, UpstreamError | UpstreamTimeout):
        return "ignored"
    return "5xx" if connected else "connect_failure"


def _lost_unanswered(conn: UpstreamConnection, method: str, sender: _BodySender | None) -> bool:
    """The resend rule's last case: idempotent, body absent or replayable or unread, lost before any response byte."""
    return conn.lost_before_response and method in IDEMPOTENT and (sender is None or sender.replayable)


class _BodySender:
    """Streams the request body upstream; the declared length is enforced, whatever `Body` a filter installed.

    `started` turns true with the first bytes taken from the body: a one-shot stream can then not be sent again.
    """

    __slots__ = ("body", "chunked", "idle", "started")

    def __init__(self, body: Body, chunked: bool, idle: float) -> None:
        self.body, self.chunked, self.idle = body, chunked, idle
        self.started = False

    @property
    def replayable(self) -> bool:
        return not self.started or self.body.replayable

    def again(self) -> _BodySender:
        """A sender of the same bytes for another attempt (only when `replayable`)."""
        return _BodySender(self.body.replay() if self.started else self.body, self.chunked, self.idle)

    async def run(self, conn: UpstreamConnection) -> None:
        body, chunked = self.body, self.chunked
        declared, sent = body.length, 0
        while data := await body.read():
            self.started = True
            sent += len(data)
            if declared is not None and sent > declared:
                raise InternalError(f"the request body is longer than its declared {declared} bytes")
            conn.write(chunk(data) if chunked else data)
            await conn.drain(self.idle)
        if declared is not None and sent != declared:
            raise InternalError(f"the request body ended after {sent} of its declared {declared} bytes")
        if chunked:
            conn.write(LAST_CHUNK)


async def _await_head(
    conn: UpstreamConnection, sender: asyncio.Task[None] | None, timeout: float | None
) -> ResponseHead:
    """Wait for the response head; the response timeout starts once the request is fully sent."""
    head = conn.head
    assert head is not None
    if sender is not None:
        await asyncio.wait((head, sender), return_when=asyncio.FIRST_COMPLETED)
        if not head.done():
            error = sender.exception()
            if error is not None and not isinstance(error, UpstreamError):
                raise error  # the client's side failed (400/408/client gone): abort the upstream request
    # A plain timer that fails the future, not asyncio.timeout(): the same effect for a fraction of the calls.
    timer = None if timeout is None else conn.loop.call_later(timeout, _head_timed_out, head, timeout)
    try:
        return await head
    except GatewayError:
        raise
    except OSError as exc:
        raise UpstreamError(f"upstream connection failed: {exc}") from exc
    finally:
        if timer is not None:
            timer.cancel()


def _head_timed_out(head: asyncio.Future[ResponseHead], timeout: float) -> None:
    if not head.done():
        head.set_exception(UpstreamTimeout(f"no response head within {timeout:g}s"))
