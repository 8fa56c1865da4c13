"""The data-port server: HTTP/1.1 on asyncio Protocols with llhttp (httptools), building `Exchange`s.

Why not aiohttp's server here: its public API has no header-read timeout and answers header limits with 400, not
431 (reliability.md); both are edge rules this gateway must keep. aiohttp remains for the admin listener and tests.

Per connection, requests are served strictly in order. A request whose head fails a rule gets a 4xx and the
connection closes: nothing after it on the connection is executed, and nothing of it reaches an upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from typing import cast

import httptools

from gateway.body import EMPTY, Body, StreamBody
from gateway.errors import (
    BadRequest,
    GatewayError,
    HeadersTooLarge,
    MethodNotAllowed,
    RequestTimeout,
    UriTooLong,
)
from gateway.exchange import Exchange, Response
from gateway.headers import Headers
from gateway.metrics import METRICS
from gateway.server.chunks import MAX_CHUNK_LINE, ChunkLines
from gateway.server.request import EdgeFields, RequestHead, build_exchange
from gateway.server.writer import UPGRADE_PAUSE, ResponseWriter
from gateway.server.wsrelay import WsRelay
from gateway.settings import Settings

log = logging.getLogger("sluicegate.server")

Handler = Callable[[Exchange], Awaitable[Response]]
_ALLOW = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
#: While a head is being read, bytes go to llhttp in slices of this size, so an oversized field is refused once
#: the head budget is spent instead of being accumulated in full by httptools before any callback runs.
HEAD_SLICE = 16 * 1024
#: After the last response, how long a closing connection keeps reading and discarding what the client still
#: sends (lingering close): closing with unread input makes the kernel reset the connection and the client
#: would lose the response it has not read yet.
LINGER_SECONDS = 5.0
_PIPELINE, _STOPPED, _DRAIN, _HELD = "pipeline", "stopped", "drain", "held"
#: Every request head, and every chunked body, ends with this: a read holding fewer of them than the pipelining
#: queue has room for cannot overfill it, and pieces cut after one end at most one head each.
_HEAD_END = b"\r\n\r\n"
#: How the last chunk of a chunked body begins: the LF ending the head or a chunk's data, then a zero size.
_LAST_CHUNK = b"\n0"
#: The shortest request llhttp completes ("GET /" and the head end): a read shorter than this many bytes per free
#: place in the queue cannot overfill it, without counting anything.
_SHORTEST_REQUEST = 9


class Pending:
    """A request read off the connection, waiting for (or in) its turn to be served."""

    __slots__ = ("exchange", "head", "body", "error", "started")

    def __init__(
        self, exchange: Exchange | None, head: RequestHead | None, body: Body, error: GatewayError | None
    ) -> None:
        self.exchange = exchange
        self.head = head
        self.body = body
        self.error = error
        self.started = False  # the writer began serving it: from then on it may be reaching an upstream


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(
        self,
        handler: Handler,
        settings: Settings,
        connections: set[HttpProtocol],
        edge_fields: EdgeFields | None = None,
    ) -> None:
        self.handler = handler
        self.settings = settings
        self.edge_fields = edge_fields or EdgeFields.of(settings)  # the server builds it once for all connections
        self.limits = settings.limits
        self.max_pipelined = settings.limits.max_pipelined
        self.timeouts = settings.timeouts
        self.id_header = settings.observability.request_id_header
        self.id_lower = self.id_header.lower()
        self.connections = connections
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = ("", 0)
        self.queue: deque[Pending] = deque()
        self.task: asyncio.Task[None] | None = None
        #: Resolved by `_enqueue` when the serving task waits for the next request of a keep-alive connection.
        self.idle_waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = 0.0
        self.on_deadline: Callable[[], None] | None = None
        self.writer = ResponseWriter(self)
        self.closing = False
        self.lingering = False
        self.draining = False
        self.overloaded = False  # over max_connections: its requests get 503 and the connection closes
        self.client_eof = False
        self.trusted_peer = False
        #: Who asked for reading to pause (a body over its high-water mark, a queued pipelined request, an
        #: upgrade); the socket reads again only when nobody does.
        self.paused_by: set[object] = set()
        self.dead_parser = False
        self.in_body = False
        self.head_limit = settings.limits.max_request_line + settings.limits.max_header_bytes + HEAD_SLICE
        self.head_budget = self.head_limit
        self.tunnel_sink: StreamBody | None = None
        self.ws_relay: WsRelay | None = None
        self.upgrade_rest = b""
        #: Bytes read but not parsed yet because `limits.max_pipelined` requests wait (back-pressure, not a 400).
        self.held = b""
        #: The bound on chunk-size lines of the chunked request body being read, if any.
        self.chunk_lines: ChunkLines | None = None
        self._reset_message()

    # -- connection lifecycle ---------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = (str(peer[0]), int(peer[1]))
        self.trusted_peer = self.settings.is_trusted_proxy(self.peer[0])  # once per connection, not per request
        self.connections.add(self)
        METRICS.open_connections += 1
        self.overloaded = len(self.connections) > self.limits.max_connections
        # A connection that never sends a byte is held no longer than a slow header would be.
        self._arm(self.timeouts.header_read, self._on_idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self in self.connections:
            self.connections.discard(self)
            METRICS.open_connections -= 1
        self._cancel_timer()
        error = ConnectionResetError("client connection lost")
        for pending in self.queue:
            if isinstance(pending.body, StreamBody):
                pending.body.abort(error)
        if self.tunnel_sink is not None:
            self.tunnel_sink.abort(error)
        if self.task is not None and not self.task.done():
            self.task.cancel()  # a client that goes away cancels its upstream call
        self.writer.connection_lost()

    def eof_received(self) -> bool:
        self.client_eof = True
        if self.tunnel_sink is not None:
            self.tunnel_sink.feed_eof()
            return True
        if self.lingering:
            return False  # the client read our response and closed: done
        # As nginx does by default: a client that closes its side has given up. Closing here runs
        # connection_lost, which cancels the in-flight upstream call (logged as 499) instead of holding it.
        return False

    def pause_writing(self) -> None:
        self.writer.pause()

    def resume_writing(self) -> None:
        self.writer.resume()

    # -- reading ----------------------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.tunnel_sink is not None:
            self.tunnel_sink.feed(data)
            return
        if self.dead_parser or self.lingering:
            return  # after the last request of this connection: discarded
        if self.held:
            self.held += data  # read before pausing took effect: parsed after what is already held
            return
        if self.in_body:
            body = self.current.body if self.current is not None else None
            if isinstance(body, StreamBody) and body.length is not None and body.length - body.received >= len(data):
                self._feed(data, data, 0)  # all of it is this body (the usual read of an upload): nothing to bound
            else:
                self._feed_bounded(data)
            return
        room = self.max_pipelined - len(self.queue)
        # Inline, for the usual read of one request: too short to hold as many requests as the queue has room for,
        # or (a head up to one slice long, as browsers send) holding no head end but at its very end.
        if len(data) < _SHORTEST_REQUEST * (room - 1) or (
            room > self.reading_head and len(data) <= HEAD_SLICE and data.find(_HEAD_END, 0, len(data) - 4) < 0
        ):
            if self._charge_head(len(data)):
                self._feed(data, data, 0)
        elif data.count(_HEAD_END) + self.reading_head > room:
            # Each request queued while `data` is parsed has its head end in it (but one head already begun).
            self._feed_bounded(data)
        elif len(data) > HEAD_SLICE:
            self._feed_slices(data)
        elif self._charge_head(len(data)):
            self._feed(data, data, 0)

    def _feed_bounded(self, data: bytes) -> None:
        """Feed `data` in pieces that hold at most one head end where a head may end, and stop between messages
        once the queue is full.

        The rest is held, and reading paused, until a response frees a place (`_release_held`): a client pipelining
        more than the queue holds is slowed down, not refused. A piece completes one head (two when it also ends one
        begun in an earlier read), so the queue overshoots the limit by one request at most. Body bytes the message
        cannot end in go to the parser whole (`_body_piece_end`): a blank line in a body costs nothing.
        """
        view, pos, size = memoryview(data), 0, len(data)
        while pos < size and not self.dead_parser:
            if self.in_body:
                stop = self._body_piece_end(data, pos)
            elif len(self.queue) >= self.max_pipelined:
                self.held = data[pos:]
                self.pause_reading(_HELD)
                if self.reading_head:
                    self._disarm()  # we stopped reading this head, the client did not
                return
            else:
                end = data.find(_HEAD_END, pos)
                stop = min(size if end < 0 else end + len(_HEAD_END), pos + HEAD_SLICE)
            piece = view[pos:stop]
            if not self._charge_head(len(piece)) or not self._feed(piece, data, pos):
                return
            pos = stop

    def _body_piece_end(self, data: bytes, pos: int) -> int:
        """Where the piece of body bytes from `pos` ends: where the message ends or may end, not before.

        A sized body ends after its remaining length. A chunked message ends at the first head end (CRLF CRLF)
        after its last chunk began, and a last chunk begins with `0` after an LF (the head's, or that of the CRLF
        ending a chunk's data): bytes before the next LF-`0` (one may straddle the cut) cannot end the message and
        go whole; from one, the piece stops at the next head end, as it does at a read's start (the last chunk may
        have begun in an earlier read). So only the body bytes between a `\n0` and the next blank line are cut.
        """
        size = len(data)
        body = self.current.body if self.current is not None else None
        if isinstance(body, StreamBody):
            remaining = body.length - body.received if body.length is not None else -1
            if remaining > 0:
                return min(size, pos + remaining)
            if remaining < 0 and pos:
                # SECURITY: sound only as llhttp is strict (no lenient flags): a chunk's data ends with CRLF and a
                # size has no leading whitespace, so no last chunk (and no message end) hides from this search.
                start = data.find(_LAST_CHUNK, pos - 1)
                if start < 0:
                    return size
                if start > pos:
                    return start
        end = data.find(_HEAD_END, pos)
        return size if end < 0 else end + len(_HEAD_END)

    def _release_held(self) -> None:
        """A place in the queue came free: parse what was held back, then read from the socket again."""
        held, self.held = self.held, b""
        self.data_received(held)  # as if just read (and dropped if parsing stopped meanwhile)
        if not self.held:
            self.resume_reading(_HELD)

    def _charge_head(self, size: int) -> bool:
        """Count bytes read while no body is being read; refuse the head once its budget is spent."""
        if not self.in_body:
            self.head_budget -= size
            if self.head_budget < 0:
                self._fail(HeadersTooLarge("the request head is too large"))
                return False
        return True

    def _feed_slices(self, data: bytes) -> None:
        view, pos = memoryview(data), 0
        while pos < len(data) and not self.dead_parser:
            piece = view[pos:] if self.in_body else view[pos : pos + HEAD_SLICE]
            if not self._charge_head(len(piece)) or not self._feed(piece, data, pos):
                return
            pos += len(piece)

    def _feed(self, piece: bytes | memoryview, data: bytes, base: int) -> bool:
        """Feed llhttp; False once this connection's parsing stopped (error or upgrade)."""
        try:
            self.parser.feed_data(piece)
            lines = self.chunk_lines
            if lines is None or lines.account(data, base, base + len(piece)):
                return True
            # SECURITY: llhttp would skip an extension of any size; Node refuses one over 16 KiB too.
            self._fail(BadRequest(f"a chunk-size line or the trailers exceed {MAX_CHUNK_LINE} bytes"))
        except httptools.HttpParserUpgrade as upgrade:
            self.upgrade_rest = data[base + upgrade.args[0] :]
            self.dead_parser = True  # after an upgrade request the connection is the tunnel's or closes
            self.pause_reading(UPGRADE_PAUSE)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause if isinstance(cause, GatewayError) else BadRequest(f"malformed request: {exc}"))
        except httptools.HttpParserError as exc:
            self._fail(BadRequest(f"malformed request: {exc}"))
        return False

    def _reset_message(self) -> None:
        self.url = b""
        self.reading_head = False
        self.raw_headers: list[tuple[str, str, str]] = []
        self.header_bytes = 0
        self.current: Pending | None = None

    def on_message_begin(self) -> None:
        self._reset_message()
        self.reading_head = True
        if _PIPELINE not in self.paused_by:  # a head we stopped reading ourselves is not the client's slowness
            self._arm(self.timeouts.header_read, self._on_header_timeout)

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.max_request_line:
            raise UriTooLong(f"request target longer than {self.limits.max_request_line} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > self.limits.max_header_bytes:
            raise HeadersTooLarge(f"request headers larger than {self.limits.max_header_bytes} bytes")
        if len(self.raw_headers) >= self.limits.max_headers:
            raise HeadersTooLarge(f"more than {self.limits.max_headers} request header fields")
        text = name.decode("latin-1")
        if "_" in text:
            policy = self.settings.headers_with_underscores
            if policy == "reject":
                raise BadRequest(f"header name {text!r} contains an underscore")
            if policy == "drop":
                return  # SECURITY: X_Forwarded_For would alias X-Forwarded-For in CGI-style backends
        # llhttp drops leading whitespace; trailing OWS is not part of the value either (RFC 9112 §5).
        self.raw_headers.append((text.lower(), text, value.rstrip(b" \t").decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._disarm()
        self.reading_head = False
        self.in_body = True
        self.head_budget = self.head_limit
        method = self.parser.get_method().decode("ascii")
        if method in ("CONNECT", "TRACE"):
            raise MethodNotAllowed(f"{method} is not served by this gateway", headers=(("Allow", _ALLOW),))
        head = RequestHead(
            method=method,
            target=self.url.decode("latin-1"),
            version=self.parser.get_http_version(),
            headers=Headers.trusted(self.raw_headers),
            keep_alive=self.parser.should_keep_alive(),
            upgrade=self.parser.should_upgrade(),
        )
        exchange, body = build_exchange(head, self, self.settings)
        pending = Pending(exchange, head, body, None)
        self.current = pending
        self._enqueue(pending)

    def on_body(self, data: bytes) -> None:
        current = self.current
        if current is not None and isinstance(current.body, StreamBody):
            current.body.feed(data)

    def on_chunk_header(self) -> None:
        if self.chunk_lines is not None:
            self.chunk_lines.on_line()

    def on_chunk_complete(self) -> None:
        if self.chunk_lines is not None:
            self.chunk_lines.on_end()

    def on_message_complete(self) -> None:
        self.chunk_lines = None
        current = self.current
        if current is not None and isinstance(current.body, StreamBody):
            current.body.feed_eof()
        self.current = None
        self.in_body = False
        if self.draining:
            self.pause_reading(_DRAIN)
        if len(self.queue) > 1:
            self.pause_reading(_PIPELINE)  # a pipelined request waits its turn; stop reading until it is served

    def new_body(self, length: int | None, expect_continue: bool) -> StreamBody:
        """A request body fed from this connection, with flow control back to the socket."""
        owner = object()
        body = StreamBody(
            length,
            lambda: self.pause_reading(owner),
            lambda: self.resume_reading(owner),
            on_first_read=self.writer.send_continue if expect_continue else None,
            idle_timeout=self.timeouts.body_idle,
        )
        if length is None:
            self.chunk_lines = ChunkLines(body)
        return body

    def pause_reading(self, owner: object) -> None:
        """Stop reading on behalf of `owner`; idempotent per owner."""
        was_reading = not self.paused_by
        self.paused_by.add(owner)
        if was_reading and self.transport is not None and not self.closing:
            self.transport.pause_reading()

    def resume_reading(self, owner: object) -> None:
        """`owner` no longer needs reading paused; the socket reads again when no owner does."""
        if owner not in self.paused_by:
            return
        self.paused_by.discard(owner)
        if not self.paused_by and self.transport is not None and not self.closing:
            self.transport.resume_reading()

    # -- serving ----------------------------------------------------------------------------------------------
    def _enqueue(self, pending: Pending) -> None:
        self.queue.append(pending)
        if self.task is None:
            self.task = self.loop.create_task(self._serve())
        elif self.idle_waiter is not None:
            waiter, self.idle_waiter = self.idle_waiter, None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: GatewayError) -> None:
        """The request being read is refused: answer it in turn, then close. Stop parsing this connection."""
        self.dead_parser = True
        self.chunk_lines = None
        self._disarm()
        current, self.current = self.current, None
        self.pause_reading(_STOPPED)
        if current is not None:
            if isinstance(current.body, StreamBody):
                current.body.abort(error)  # the upstream sees an aborted body, never a complete one
            if not current.started and current in self.queue:
                # Refused before anything was sent upstream (the usual case: the bad bytes came with the head).
                current.error, current.exchange = error, None
                return
        self._enqueue(Pending(None, None, EMPTY, error))

    async def _serve(self) -> None:
        """Serve queued requests in order for as long as the connection lives.

        One task per connection, not per request: between requests it waits on a future that `_enqueue` resolves
        (a task costs about twice a future's wake-up, and its registration runs Python code of asyncio's)."""
        try:
            while await self._next_request():
                pending = self.queue[0]
                keep_open = await self.writer.serve(pending)
                self.queue.popleft()
                if not keep_open or self.client_eof or self.dead_parser and not self.queue:
                    self.linger_close()
                    return
                if self.held and not self.draining and len(self.queue) < self.max_pipelined:
                    self._release_held()
                    if self.reading_head and not self.held:
                        self._arm(self.timeouts.header_read, self._on_header_timeout)
                if len(self.queue) <= 1 and _PIPELINE in self.paused_by:
                    self.resume_reading(_PIPELINE)
                    if self.reading_head and not self.held:
                        self._arm(self.timeouts.header_read, self._on_header_timeout)
        except asyncio.CancelledError:
            pass  # the client left (the writer logged a request in progress as 499), or the idle connection closed
        finally:
            self.task = None
            self.idle_waiter = None

    async def _next_request(self) -> bool:
        """True once a request is queued; False when the connection is done (closing, or drained after its last)."""
        while not self.queue:
            if self.closing:
                return False
            if self.draining:
                self.linger_close()  # the last response of a draining connection went out
                return False
            if not self.reading_head:
                self._arm(self.timeouts.keepalive_idle, self._on_idle_timeout)
            waiter = self.idle_waiter = self.loop.create_future()
            await waiter
        return not self.closing

    # -- timers -----------------------------------------------------------------------------------------------
    # One lazily moved deadline per connection instead of a timer per request: arming sets `deadline` and
    # `on_deadline`; the one TimerHandle is rescheduled only when the new deadline is earlier than the time it
    # fires. When it fires early it re-arms for the deadline; disarming just clears `on_deadline`. A keep-alive
    # connection serving requests back to back thus touches no timer at all (two per request otherwise).
    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self.deadline = self.loop.time() + delay
        self.on_deadline = callback
        timer = self.timer
        if timer is None or timer.when() > self.deadline:
            if timer is not None:
                timer.cancel()
            self.timer = self.loop.call_at(self.deadline, self._deadline_reached)

    def _disarm(self) -> None:
        self.on_deadline = None  # a pending timer finds nothing to do and lapses

    def _cancel_timer(self) -> None:
        """Drop the timer itself: the connection is closing and must not be kept alive by a pending handle."""
        self.on_deadline = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _deadline_reached(self) -> None:
        self.timer = None
        callback = self.on_deadline
        if callback is None:
            return
        if self.loop.time() < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self._deadline_reached)
            return
        self.on_deadline = None
        callback()

    def _on_idle_timeout(self) -> None:
        if not self.queue:
            self.close()

    def _on_header_timeout(self) -> None:
        log.info("header read timeout from %s:%s", *self.peer)
        self._fail(RequestTimeout("the request head did not arrive in time"))

    def drain(self) -> None:
        """Graceful shutdown: an idle connection closes now; one with requests in flight closes after the last
        response to a request already read. Nothing more is read once the current message is complete."""
        self.draining = True
        if not self.in_body and self.tunnel_sink is None:  # a WebSocket keeps flowing both ways until the timeout
            self.pause_reading(_DRAIN)
        if not self.queue and not self.reading_head and self.tunnel_sink is None:
            self.close()

    def close(self) -> None:
        """Close now (also cuts a lingering close short, e.g. at shutdown)."""
        self.closing = True
        self._cancel_timer()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def linger_close(self) -> None:
        """Close after the last response: half-close, then read and discard for up to LINGER_SECONDS.

        Without it, bytes the client is still sending (an upload we answered early, requests after a refused one)
        make the kernel answer with a reset that can destroy the response before the client reads it.
        """
        transport = self.transport
        if self.closing or transport is None or not transport.can_write_eof():
            self.close()
            return
        self.closing = self.lingering = True
        self._cancel_timer()
        transport.write_eof()  # sent after everything already written
        self.paused_by.clear()
        transport.resume_reading()
        self.timer = self.loop.call_later(LINGER_SECONDS, self._linger_expired)

    def _linger_expired(self) -> None:
        self.timer = None
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection without a clean end: used when a response cannot be completed honestly."""
        self.closing = True
        self._cancel_timer()
        if self.transport is not None:
            _reset_on_close(self.transport)
            self.transport.abort()


def _reset_on_close(transport: asyncio.Transport) -> None:
    """Make closing send a TCP reset (SO_LINGER 0) instead of a FIN.

    An HTTP/1.0 client reads a body without a length until the connection ends: to it a FIN says "complete", so
    a response cut short (an upstream failing mid-body) would look whole. A reset is an error to every client.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
