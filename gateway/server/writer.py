"""Writing responses to the client: framing, flow control, honest aborts, upgrades, and the access-log line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from gateway.body import StreamBody
from gateway.errors import GatewayError, InternalError, Overloaded
from gateway.exchange import Exchange, Response, UpgradeResponse
from gateway.hygiene import UPGRADE
from gateway.metrics import METRICS, UNMATCHED
from gateway.observability import ACCESS_LOG, REQUEST_ID, TRACE_ID, iso_now
from gateway.problem import problem_response_parts
from gateway.server.wire import CONTINUE, LAST_CHUNK, build_head, chunk, declared_length
from gateway.server.wsrelay import WsRelay

if TYPE_CHECKING:
    from collections.abc import AsyncIterable

    from gateway.server.protocol import HttpProtocol, Pending

UPGRADE_PAUSE = "upgrade"

log = logging.getLogger("sluicegate.server")


class ResponseAborted(Exception):
    """The response could not be completed honestly; the connection was aborted instead."""


class ResponseWriter:
    """Serves one Pending request at a time for its connection."""

    def __init__(self, proto: HttpProtocol) -> None:
        self.proto = proto
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.head_sent = False
        self.bytes_out = 0

    # -- flow control -----------------------------------------------------------------------------------------
    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("client connection lost"))

    async def drain(self, idle_timeout: float | None) -> None:
        """Wait while the client's receive window is full; ResponseAborted after `idle_timeout` without progress."""
        if self.proto.closing:
            raise ConnectionResetError("client connection lost")
        if self.paused:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(idle_timeout):
                    await self.waiter
            except TimeoutError as exc:
                raise ResponseAborted(f"the client read nothing for {idle_timeout:g}s") from exc

    def write(self, data: bytes) -> None:
        transport = self.proto.transport
        if transport is None or self.proto.closing:
            raise ConnectionResetError("client connection lost")
        self.bytes_out += len(data)
        transport.write(data)

    def send_continue(self) -> None:
        """Answer `Expect: 100-continue` once somebody actually reads the body."""
        if not self.head_sent and not self.proto.closing and self.proto.transport is not None:
            self.proto.transport.write(CONTINUE)

    # -- serving ----------------------------------------------------------------------------------------------
    async def serve(self, pending: Pending) -> bool:
        """Run the handler for `pending` and write its response; True when the connection may stay open."""
        started = time.monotonic()
        pending.started = True
        self.head_sent, self.bytes_out = False, 0
        if pending.error is not None or pending.exchange is None or pending.head is None:
            error = pending.error or InternalError("request lost")
            self._write_problem(error, keep_alive=False)
            self._log(pending, error.status, started)
            return False
        METRICS.active_requests += 1
        try:
            return await self._serve(pending, pending.exchange, started)
        finally:
            METRICS.active_requests -= 1

    async def _serve(self, pending: Pending, exchange: Exchange, started: float) -> bool:
        assert pending.head is not None
        shed = self._shed_reason()
        try:
            response = _problem(shed) if shed is not None else await self.proto.handler(exchange)
        except asyncio.CancelledError:
            self._log(pending, 499, started)
            raise
        except Exception:  # the dispatcher maps errors; this is the last line of defence
            log.exception("handler failed for %s %s", pending.head.method, exchange.path)
            response = _problem(InternalError("the gateway failed to handle the request"))
        request_id = exchange.get(REQUEST_ID)
        if request_id is not None:  # generated, or validated when taken from a trusted proxy; a validated name
            response.headers.set_trusted(self.proto.id_lower, self.proto.id_header, request_id)
        try:
            keep_open = await self._write(pending, response)
        except asyncio.CancelledError:
            await _close_streams(pending.exchange)
            self._log(pending, 499, started)
            raise
        except (ResponseAborted, ConnectionError) as exc:
            log.info("response aborted for %s %s: %s", pending.head.method, exchange.path, exc)
            self.proto.abort()
            self._log(pending, response.status, started, aborted=True)
            return False
        except Exception:  # never leave a client waiting on a response we failed to write
            log.exception("writing the response failed for %s %s", pending.head.method, exchange.path)
            if not self.head_sent:
                self._write_problem(InternalError("the gateway failed to write the response"), keep_alive=False)
            self.proto.abort() if self.head_sent else self.proto.close()
            self._log(pending, 500, started, aborted=True)
            return False
        finally:
            await _close_streams(pending.exchange)
        self._log(pending, response.status, started)
        return keep_open

    def _shed_reason(self) -> GatewayError | None:
        """A 503 when this worker is over a limit (its connections, or requests in flight), else None."""
        limits = self.proto.limits
        if self.proto.overloaded:
            METRICS.shed_request("connections")
            return Overloaded(f"more than {limits.max_connections} connections on this worker")
        if METRICS.active_requests > limits.max_in_flight:
            METRICS.shed_request("in_flight")
            return Overloaded(f"more than {limits.max_in_flight} requests in flight on this worker")
        return None

    def _write_problem(self, error: GatewayError, keep_alive: bool) -> None:
        status, headers, body = problem_response_parts(error)
        framing = f"Content-Length: {len(body)}\r\n"
        self.head_sent = True
        with contextlib.suppress(ConnectionError):  # the client may already be gone; nothing else to do
            self.write(build_head(status, "", headers, framing, None if keep_alive else "close") + body)

    async def _write(self, pending: Pending, response: Response) -> bool:
        assert pending.head is not None
        if isinstance(response, UpgradeResponse):
            await self._tunnel(pending, response)
            return False
        head = pending.head
        status = response.status
        request_body = pending.body
        # After a refused or upgrade request nothing more is read: keep the connection only for what is queued.
        keep_alive = head.keep_alive and (not self.proto.dead_parser or len(self.proto.queue) > 1)
        if self.proto.overloaded or self.proto.draining and len(self.proto.queue) <= 1:
            keep_alive = False  # drain: the last request read on this connection closes it
        if isinstance(request_body, StreamBody) and not request_body.complete:
            keep_alive = False  # the unread rest of the body would be parsed as the next request
        if pending.exchange is not None and pending.exchange.outcomes.close_connection:
            keep_alive = False
        no_body = head.method == "HEAD" or status < 200 or status in (204, 304)
        body = response.body
        if isinstance(body, bytes | bytearray | memoryview):
            framing = "" if status < 200 or status in (204, 304) else f"Content-Length: {len(body)}\r\n"
            connection = _connection(keep_alive, head.version)
            self.head_sent = True
            self.write(
                build_head(status, response.reason, response.headers, framing, connection)
                + (b"" if no_body else bytes(body))
            )
            return keep_alive
        return await self._stream(pending, response, body, no_body, keep_alive)

    async def _stream(
        self,
        pending: Pending,
        response: Response,
        body: AsyncIterable[bytes],
        no_body: bool,
        keep_alive: bool,
    ) -> bool:
        assert pending.head is not None
        status = response.status
        declared = declared_length(response.headers)
        chunked = False
        if no_body:
            framing = (
                f"Content-Length: {declared}\r\n" if declared is not None and status >= 200 and status != 204 else ""
            )
        elif declared is not None:
            framing = f"Content-Length: {declared}\r\n"
        elif pending.head.version != "1.0":
            framing, chunked = "Transfer-Encoding: chunked\r\n", True
        else:
            framing, keep_alive = "", False  # HTTP/1.0 client: the end of the body is the end of the connection
        head = build_head(
            status, response.reason, response.headers, framing, _connection(keep_alive, pending.head.version)
        )
        self.head_sent = True
        try:
            if no_body:
                self.write(head)
            else:
                route = pending.exchange.route if pending.exchange is not None else None
                idle = route.timeouts.body_idle if route is not None else self.proto.timeouts.body_idle
                await self._pump(head, body, declared, chunked, idle)
        finally:
            await _aclose(body)
        return keep_alive

    async def _pump(
        self, head: bytes, body: AsyncIterable[bytes], declared: int | None, chunked: bool, idle: float
    ) -> None:
        """Write the head and the body. Bytes already received go out with the head: one write, one syscall."""
        first = body.take_buffered() if isinstance(body, StreamBody) else b""
        sent = len(first)
        if declared is not None and sent > declared:
            raise ResponseAborted(f"body longer than its Content-Length {declared}")
        payload = chunk(first) if chunked and first else first
        if isinstance(body, StreamBody) and body.exhausted:
            # The common small response: all of it arrived with the upstream's head. One write, no iterator.
            if declared is not None and sent != declared:
                raise ResponseAborted(f"body of {sent} bytes ended before its Content-Length {declared}")
            self.write(head + payload + LAST_CHUNK if chunked else head + payload)
            return
        self.write(head + payload)
        sent = await self._pump_rest(body, sent, declared, chunked, idle)
        if declared is not None and sent != declared:
            raise ResponseAborted(f"body of {sent} bytes ended before its Content-Length {declared}")
        if chunked:
            self.write(LAST_CHUNK)

    async def _pump_rest(
        self, body: AsyncIterable[bytes], sent: int, declared: int | None, chunked: bool, idle: float
    ) -> int:
        """Write the body after what went out with the head; returns the bytes of body sent in all."""
        try:
            async for data in body:
                if not data:
                    continue
                sent += len(data)
                if declared is not None and sent > declared:
                    raise ResponseAborted(f"body longer than its Content-Length {declared}")
                self.write(chunk(data) if chunked else data)
                if self.paused:
                    await self.drain(idle)
        except GatewayError as exc:
            # SECURITY/correctness: an upstream failing mid-body must never look like a complete response.
            raise ResponseAborted(f"upstream body failed: {exc.detail}") from exc
        return sent

    async def _tunnel(self, pending: Pending, response: UpgradeResponse) -> None:
        """Write the 101 head, then copy bytes both ways until either side closes."""
        assert pending.exchange is not None
        proto = self.proto
        # The upstream's token (the forwarder checked it is the one the client asked for), never the client's.
        protocol = getattr(response.tunnel, "protocol", None) or pending.exchange.get(UPGRADE) or "websocket"
        self.head_sent = True
        self.write(build_head(101, response.reason, response.headers, f"Upgrade: {protocol}\r\n", "Upgrade"))
        sink = StreamBody(None, lambda: proto.pause_reading(sink), lambda: proto.resume_reading(sink))
        proto.tunnel_sink = sink
        if proto.upgrade_rest:
            sink.feed(proto.upgrade_rest)
        if proto.client_eof:
            sink.feed_eof()
        proto.resume_reading(UPGRADE_PAUSE)  # reading paused when the upgrade head was parsed
        tunnel = response.tunnel
        relay = proto.ws_relay = WsRelay(self.write, tunnel)  # the drain may end it with close 1001
        upstream = asyncio.create_task(relay.copy_up(sink))
        try:
            while data := await tunnel.read():
                relay.down(data)
                if self.paused:
                    await self.drain(None)  # a WebSocket has no idle limit of ours
            await asyncio.wait([upstream], timeout=0)
        finally:
            relay.ended()
            upstream.cancel()
            tunnel.close()

    def _log(self, pending: Pending, status: int, started: float, aborted: bool = False) -> None:
        """Metrics for every request; the access-log line when it is on."""
        exchange = pending.exchange
        route = exchange.route if exchange is not None else None
        route_id = route.id if route is not None else UNMATCHED
        method = pending.head.method if pending.head else "OTHER"
        elapsed = time.monotonic() - started
        METRICS.request(route_id, method, status, elapsed)
        if ACCESS_LOG.enabled:
            ACCESS_LOG.write(self._entry(pending, route_id, status, elapsed, aborted))

    def _entry(self, pending: Pending, route_id: str, status: int, elapsed: float, aborted: bool) -> dict[str, Any]:
        exchange = pending.exchange
        outcomes = exchange.outcomes if exchange is not None else None
        upstream_ms = outcomes.upstream_seconds if outcomes is not None else None
        tried = outcomes.tried if outcomes is not None else ()
        entry: dict[str, Any] = {
            "time": iso_now(),
            "request_id": exchange.get(REQUEST_ID) if exchange is not None else None,
            "trace_id": exchange.get(TRACE_ID) if exchange is not None else None,
            "client": self.proto.peer[0],
            "method": pending.head.method if pending.head else None,
            "path": exchange.original_path if exchange is not None else None,
            "route": route_id,
            "upstream": tried[-1].label if tried else None,
            "attempts": len(tried),  # Retry's attempts, the one resend and a forward: fallback's upstream included
            "status": status,
            "bytes_in": pending.body.received if isinstance(pending.body, StreamBody) else 0,
            "bytes_out": self.bytes_out,
            "duration_ms": round(elapsed * 1000, 3),
            "upstream_ms": round(upstream_ms * 1000, 3) if upstream_ms is not None else None,
            "user_agent": pending.head.headers.get("user-agent") if pending.head else None,
        }
        if aborted:
            entry["aborted"] = True
        return entry


async def _close_streams(exchange: Exchange | None) -> None:
    """Close upstream bodies this exchange opened but did not send (a filter replaced or dropped them)."""
    if exchange is not None and exchange.outcomes.streams:
        opened = exchange.outcomes.streams
        streams, opened[:] = list(opened), []
        for stream in streams:
            await _aclose(stream)


def _connection(keep_alive: bool, version: str) -> str | None:
    if not keep_alive:
        return "close"
    return "keep-alive" if version == "1.0" else None


def _problem(error: GatewayError) -> Response:
    status, headers, body = problem_response_parts(error)
    return Response(status, headers, body)


async def _aclose(body: object) -> None:
    if isinstance(body, StreamBody) and body.exhausted:
        return  # read to its end: nothing to release (the usual case, and no coroutine to run for it)
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # releasing an upstream stream must not mask the response's own outcome
            log.debug("closing a response body failed", exc_info=True)
