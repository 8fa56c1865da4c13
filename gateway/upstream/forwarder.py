"""The innermost step of every proxied chain: send the exchange upstream and hand back the streaming response.

Byte-transparent except a documented list (docs/routes.md "What the gateway changes"): hop-by-hop and
Connection-named fields removed both ways, Host set to the upstream's authority (unless preserved), forwarding
headers appended, framing recomputed, `Expect` answered by the gateway. Nothing is ever sent twice here.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Protocol

from gateway.body import Body
from gateway.errors import (
    BadRequest,
    GatewayError,
    InternalError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamTlsError,
)
from gateway.exchange import UPSTREAM_SECONDS, Endpoint, Exchange, Response, UpgradeResponse, UpstreamRef
from gateway.hygiene import PRESERVE_HOST, UPGRADE, add_forwarding_headers, strip_hop_by_hop
from gateway.metrics import METRICS, UNMATCHED
from gateway.observability import REQUEST_ID
from gateway.routing.route import UpstreamTimeouts
from gateway.server.wire import LAST_CHUNK, chunk
from gateway.settings import Settings
from gateway.upstream.connection import ConnectionTunnel, ResponseBody, ResponseHead, UpstreamConnection
from gateway.upstream.pool import ConnectionPool

_TARGET = re.compile(r"/[\x21-\x7e]*")
#: Upstream failures by kind, for gateway_upstream_errors_total (client-side 4xx are not upstream errors).
_ERROR_KINDS: dict[type[GatewayError], str] = {
    UpstreamConnectError: "connect",
    UpstreamTimeout: "timeout",
    UpstreamTlsError: "tls",
    UpstreamProtocolError: "protocol",
    UpstreamError: "reset",
}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_FRAMING = frozenset({"content-length", "transfer-encoding"})


class Forwarder(Protocol):
    """What the dispatcher needs from a data plane; the lean pool of the data-plane work plugs in here."""

    async def forward(self, exchange: Exchange) -> Response: ...

    async def close(self) -> None: ...


class EndpointResolver(Protocol):
    """Turns the exchange's target reference into the instance to try (pools plug in here with `lb://`)."""

    def resolve(self, ref: UpstreamRef, exchange: Exchange) -> Endpoint: ...


class DirectResolver:
    """A direct `http(s)://`/`ws(s)://` route has exactly one endpoint."""

    def resolve(self, ref: UpstreamRef, exchange: Exchange) -> Endpoint:
        if ref.endpoint is None:
            raise InternalError(f"no endpoint for upstream {ref.uri!r}")
        return ref.endpoint


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
        exchange.set(UPSTREAM_SECONDS, elapsed)
        METRICS.upstream_time(exchange.route.id if exchange.route else UNMATCHED, elapsed)
        return response

    async def _forward(self, exchange: Exchange) -> Response:
        ref = exchange.target
        if ref is None:
            raise InternalError("the route has no upstream")
        endpoint = self.resolver.resolve(ref, exchange)
        upgrade = exchange.get(UPGRADE) if ref.kind == "ws" else None
        head_bytes, chunked = serialize_request(exchange, ref, upgrade, self.settings.observability.request_id_header)
        timeouts = self._timeouts(exchange)
        exchange.tried.append(endpoint)  # recorded before connecting: a failed connect was still an attempt
        conn = await self.pool.acquire(endpoint, timeouts.connect)
        conn.begin(exchange.method == "HEAD", timeouts.body_idle)
        sender: asyncio.Task[None] | None = None
        try:
            conn.write(head_bytes)
            if chunked is not None:
                sender = asyncio.get_running_loop().create_task(
                    _send_body(conn, exchange.body, chunked, timeouts.body_idle)
                )
            head = await _await_head(conn, sender, timeouts.response)
        except BaseException:
            conn.abort()  # the upstream must see an incomplete request, never a complete one we gave up on
            if sender is not None:
                sender.cancel()
            raise
        response = self._response(conn, head, sender, upgrade)
        if isinstance(response.body, ResponseBody):
            exchange.streams.append(response.body)  # closed by the server if a filter never sends it on
        return response

    def _response(
        self,
        conn: UpstreamConnection,
        head: ResponseHead,
        sender: asyncio.Task[None] | None,
        upgrade: str | None,
    ) -> Response:
        headers = head.headers
        strip_hop_by_hop(headers)
        if head.status == 101:
            if not upgrade:
                conn.abort()
                raise UpstreamError("the upstream switched protocols without being asked to")
            return UpgradeResponse(headers, ConnectionTunnel(conn), reason=head.reason or "Switching Protocols")
        body = conn.body
        assert body is not None and conn.on_complete is not None
        if (headers.get("content-type") or "").startswith("text/event-stream"):
            body.set_idle_timeout(None)  # server-sent events may be quiet for long; they end when either side does
        conn.on_complete.add_done_callback(lambda _: self._finished(conn, sender))
        return Response(head.status, headers, body, origin="upstream", reason=head.reason)

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


def serialize_request(
    exchange: Exchange, ref: UpstreamRef, upgrade: str | None, id_header: str = "X-Request-Id"
) -> tuple[bytes, bool | None]:
    """The request head as bytes, and how the body goes: None (no body), False (Content-Length), True (chunked)."""
    target = exchange.path + ("?" + exchange.query if exchange.query else "")
    if not _TARGET.fullmatch(target):
        raise BadRequest("the rewritten request target holds characters that cannot be sent")
    headers = exchange.headers
    if not exchange.get(PRESERVE_HOST) or "host" not in headers:
        headers.set("Host", ref.authority)
    add_forwarding_headers(exchange, headers)
    request_id = exchange.get(REQUEST_ID)
    if request_id is not None:
        headers.set(id_header, request_id)
    body = exchange.body
    declared = "content-length" in headers
    headers.remove_many(_FRAMING)
    framing, chunked = _framing(exchange.method, body, declared)
    lines = [f"{exchange.method} {target} HTTP/1.1\r\n"]
    lines.extend(f"{name}: {value}\r\n" for _, name, value in headers.raw())
    lines.append(framing)
    if upgrade:
        lines.append(f"Connection: Upgrade\r\nUpgrade: {upgrade}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1"), chunked


def _framing(method: str, body: Body, declared: bool) -> tuple[str, bool | None]:
    if body.length is None:
        return "Transfer-Encoding: chunked\r\n", True
    if body.length > 0:
        return f"Content-Length: {body.length}\r\n", False
    return ("Content-Length: 0\r\n" if declared or method in _BODY_METHODS else ""), None


async def _send_body(conn: UpstreamConnection, body: Body, chunked: bool, idle: float) -> None:
    """Stream the request body upstream; the declared length is enforced, whatever `Body` a filter installed."""
    declared, sent = body.length, 0
    while data := await body.read():
        sent += len(data)
        if declared is not None and sent > declared:
            raise InternalError(f"the request body is longer than its declared {declared} bytes")
        conn.write(chunk(data) if chunked else data)
        await conn.drain(idle)
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
    try:
        async with asyncio.timeout(timeout):
            return await head
    except TimeoutError as exc:
        raise UpstreamTimeout(f"no response head within {timeout:g}s") from exc
    except GatewayError:
        raise
    except OSError as exc:
        raise UpstreamError(f"upstream connection failed: {exc}") from exc
