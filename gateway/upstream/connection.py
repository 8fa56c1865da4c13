"""One HTTP/1.1 connection to an upstream, on an asyncio Protocol with llhttp's strict response parser.

httptools cannot tell llhttp that a response answers HEAD, nor signal the end of a close-delimited body, so the
framing state is ours: HEAD/204/304 responses end at their head, and EOF completes a close-delimited body but
aborts any other. Ambiguous framing (CL with TE, bad chunk sizes, obs-fold) is a parse error: 502, never passed on.

The connection also records what the pool and the forwarder's one resend need to know: whether the socket refused
the request head outright, whether it was lost before any response byte, and the upstream's `Keep-Alive: timeout`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol, cast

import httptools

from gateway.body import StreamBody
from gateway.errors import GatewayError, UpstreamError, UpstreamProtocolError, UpstreamTimeout
from gateway.exchange import Endpoint
from gateway.headers import Headers
from gateway.server.chunks import MAX_CHUNK_LINE, ChunkLines

MAX_RESPONSE_HEADER_BYTES = 64 * 1024
MAX_RESPONSE_HEADERS = 200
#: While a head is being read, bytes are fed to llhttp in slices of this size so that a huge header field is
#: refused after ~64 KiB instead of being accumulated in full by httptools before any callback sees it.
HEAD_SLICE = 16 * 1024


#: Longest digit string read from `Keep-Alive: timeout=`; anything longer is malformed (and would be absurd).
_MAX_TIMEOUT_DIGITS = 9


def parse_keep_alive_timeout(value: str) -> int | None:
    """Seconds from the `timeout=N` parameter of a Keep-Alive field value (Apache, nginx, Node send it), else None.

    Plain string operations only, on a value an upstream wrote: ASCII digits (optionally quoted) are accepted,
    anything else — a sign, a fraction, Unicode digits, an empty value — is malformed and ignored (None).
    """
    for part in value.split(","):
        name, sep, number = part.partition("=")
        if not sep or name.strip().lower() != "timeout":
            continue
        number = number.strip()
        if len(number) >= 2 and number[0] == number[-1] == '"':
            number = number[1:-1]
        if 0 < len(number) <= _MAX_TIMEOUT_DIGITS and number.isascii() and number.isdigit():
            return int(number)
        return None
    return None


class PoolSlot(Protocol):
    """The pool's count of connections to one endpoint; a connection frees its place exactly once."""

    def free(self) -> None: ...


class _Unsolicited(Exception):
    """Raised inside the parser when bytes follow a complete response: stop parsing them."""


@dataclass(slots=True)
class ResponseHead:
    status: int
    reason: str
    headers: Headers
    keep_alive: bool


class ResponseBody(StreamBody):
    """An upstream response body; closing it early closes the connection instead of returning it to the pool.

    Its flow control acts on the connection only while it is the connection's current, unfinished body: once
    the message is complete the connection may already serve another exchange.
    """

    def __init__(self, conn: UpstreamConnection, idle_timeout: float | None) -> None:
        super().__init__(None, self._pause_conn, self._resume_conn, idle_timeout=idle_timeout, idle_error=_body_idle)
        self.conn = conn

    def _pause_conn(self) -> None:
        if self.conn.body is self and not self.complete:
            self.conn.pause_reading()

    def _resume_conn(self) -> None:
        if self.conn.body is self:
            self.conn.resume_reading()

    async def aclose(self) -> None:
        if not self.complete:
            self.conn.close()


def _body_idle() -> GatewayError:
    return UpstreamTimeout("the upstream stopped sending the response body")


#: Response fields that decide framing and reuse, noted as they are parsed.
_FRAMING_FIELDS = frozenset({"content-length", "transfer-encoding", "keep-alive"})


def _check_framing(version: str, framing: list[tuple[str, str]]) -> bool:
    """Refuse response framing the gateway and its client could read differently (RFC 9112 §6.1, §2.3).

    Returns True for a chunked response.

    llhttp already refuses Content-Length with Transfer-Encoding and bad chunk sizes; what it lets through and we
    do not: a version other than 1.x (an HTTP/0.9 status line), Transfer-Encoding in an HTTP/1.0 response, and any
    coding but exactly one `chunked` — `gzip, chunked` would reach the client as an unmarked gzip body.
    """
    if version not in ("1.1", "1.0"):
        raise UpstreamProtocolError(f"the upstream answered with HTTP/{version}")
    codings = [value for lower, value in framing if lower == "transfer-encoding"]
    if not codings:
        return False
    if version == "1.0":
        raise UpstreamProtocolError("the upstream sent Transfer-Encoding in an HTTP/1.0 response")
    if len(codings) != 1 or codings[0].strip().lower() != "chunked":
        raise UpstreamProtocolError(f"unsupported response Transfer-Encoding {', '.join(codings)!r}")
    return True


class UpstreamConnection(asyncio.Protocol):
    """A pooled connection. One request at a time: `begin()`, write, await `head`, read `body`."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.transport: asyncio.Transport | None = None
        #: The TCP transport; the same as `transport` unless TLS runs on top of it.
        self._raw: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.loop = asyncio.get_running_loop()
        self.head: asyncio.Future[ResponseHead] | None = None
        self.body: ResponseBody | None = None
        self.tunnel: StreamBody | None = None
        self.on_complete: asyncio.Future[None] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._parser_idle = False  # the parser saw its last message end: it can parse the next response
        self._write_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False
        #: Its place under the pool's per-endpoint limit, given back (once) when the connection closes.
        self.slot: PoolSlot | None = None
        #: Requests begun on this connection: more than one means it came from the pool.
        self.requests = 0
        #: loop.time() after which the pool must not hand this idle connection out any more.
        self.idle_deadline = 0.0
        self._reset(False, None)

    def _reset(self, head_request: bool, body_idle: float | None) -> None:
        self._head_request = head_request
        self._body_idle = body_idle
        self._reason = ""
        self._headers: list[tuple[str, str, str]] = []
        self._framing: list[tuple[str, str]] = []  # (lower name, value) of the head's _FRAMING_FIELDS
        self._header_bytes = 0
        self._close_delimited = False
        self._done = False
        self._parsed_head: ResponseHead | None = None
        self._in_head = True  # reading a status line and header fields (not trailers)
        self._head_budget = MAX_RESPONSE_HEADER_BYTES + HEAD_SLICE
        self._chunk_lines: ChunkLines | None = None
        self._answered = False  # a response byte arrived for the current request
        #: The current request's connection was lost (EOF or reset) before a single response byte arrived.
        self.lost_before_response = False
        #: Seconds the upstream said it keeps this connection idle (`Keep-Alive: timeout=N` on the last response).
        self.keep_alive_timeout: int | None = None

    # -- request lifecycle ------------------------------------------------------------------------------------
    def begin(self, head_request: bool, body_idle: float | None) -> None:
        """Prepare for the response to the request about to be written."""
        self._reset(head_request, body_idle)
        if self._parser is None or not self._parser_idle or head_request:
            # llhttp parses consecutive responses on one parser; a new one is needed only after a response it did
            # not see end (HEAD: it would wait for the body the Content-Length announces) or for a HEAD request.
            self._parser = httptools.HttpResponseParser(self)
        self._parser_idle = False
        self.head = self.loop.create_future()
        self.on_complete = self.loop.create_future()
        self.body = None
        self.requests += 1

    @property
    def usable(self) -> bool:
        """Idle, open and clean: safe to send the next request on."""
        return (
            not self.closed
            and self.reusable
            and not self._read_paused
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def write(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise UpstreamError("the upstream connection closed while the request was being sent")
        self.transport.write(data)

    def send_head(self, data: bytes) -> bool:
        """Write the request head; True when the socket refused it outright, so not one byte of it was sent.

        Both asyncio and uvloop try the send at once when nothing is queued, and a send that fails (the upstream
        reset the connection, EPIPE) closes the transport before `write` returns. A head queued behind earlier
        bytes is not tried yet: that case is never reported as refused (a later loss is then just a loss).
        """
        self.write(data)
        raw = self._raw
        return raw is not None and raw.is_closing()

    async def drain(self, idle_timeout: float | None = None) -> None:
        """Wait while the upstream's receive window is full; UpstreamTimeout after `idle_timeout` without progress."""
        if self.closed:
            raise UpstreamError("the upstream connection closed while the request was being sent")
        if self._write_paused:
            self._write_waiter = self.loop.create_future()
            try:
                async with asyncio.timeout(idle_timeout):
                    await self._write_waiter
            except TimeoutError as exc:
                raise UpstreamTimeout("the upstream stopped reading the request body") from exc

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()
        self._free_slot()

    def abort(self) -> None:
        """Tear the connection down so the upstream sees an incomplete request."""
        self.reusable = False
        if self.head is not None and not self.head.done():
            self.head.cancel()  # nobody will await it any more
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self._free_slot()

    def _free_slot(self) -> None:
        # At close time rather than at connection_lost: a socket still flushing to a stalled upstream must not
        # keep a waiting request from connecting.
        slot, self.slot = self.slot, None
        if slot is not None:
            slot.free()

    # -- asyncio.Protocol -------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = self._raw = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        self._free_slot()
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_exception(UpstreamError("the upstream closed the connection"))
        if self.tunnel is not None:
            self.tunnel.feed_eof()
        if self.head is not None and not self.head.done():
            # An orderly close or a reset with nothing of a response: what a keep-alive race looks like.
            self.lost_before_response = not self._answered and (exc is None or isinstance(exc, ConnectionError))
            self.head.set_exception(UpstreamError("the upstream closed the connection before responding"))
        elif self.body is not None and not self._done:
            if self._close_delimited and exc is None:
                self._finish()  # a clean EOF is the end of a close-delimited body; a reset is a truncation
            else:
                self.body.abort(UpstreamError("the upstream closed the connection in the middle of the body"))
        self._complete()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_result(None)

    def pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None and not self.closed:
            self._read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._read_paused and self.transport is not None and not self.closed:
            self._read_paused = False
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.feed(data)
            return
        if self._parser is None or self._done:
            self.close()  # bytes nobody asked for: the connection cannot be trusted for another request
            return
        self._answered = True
        if self._in_head and len(data) > HEAD_SLICE:
            self._feed_slices(data)
        elif self._charge_head(len(data)):
            self._feed(data, data, 0)
        # Published only now: an error later in the same bytes (a bad first chunk) must still make it a 502.
        self._publish_head()

    def _charge_head(self, size: int) -> bool:
        if self._in_head:
            self._head_budget -= size
            if self._head_budget < 0:
                self._fail(UpstreamProtocolError("the upstream's response head is too large"))
                return False
        return True

    def _feed_slices(self, data: bytes) -> None:
        view, pos = memoryview(data), 0
        while pos < len(data) and self._parser is not None and not self.closed:
            piece = view[pos : pos + HEAD_SLICE] if self._in_head else view[pos:]
            if not self._charge_head(len(piece)) or not self._feed(piece, data, pos):
                return
            pos += len(piece)

    def _feed(self, piece: bytes | memoryview, data: bytes, base: int) -> bool:
        """Feed bytes to llhttp; False when parsing of this connection stopped (error, upgrade, extra bytes)."""
        assert self._parser is not None
        try:
            self._parser.feed_data(piece)
            lines = self._chunk_lines
            if lines is None or lines.account(data, base, base + len(piece)):
                return True
            # SECURITY: an upstream trickling an endless extension must not hold the exchange (or the client).
            self._fail(UpstreamProtocolError(f"a chunk-size line or the trailers exceed {MAX_CHUNK_LINE} bytes"))
        except httptools.HttpParserUpgrade as upgrade:
            self._start_tunnel(data[base + upgrade.args[0] :])
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Unsolicited):
                self._drop_rest()
            else:
                error = cause if isinstance(cause, GatewayError) else UpstreamProtocolError(f"invalid response: {exc}")
                self._fail(error)
        except httptools.HttpParserError as exc:
            if self._done:
                # llhttp refuses any byte after a complete `Connection: close` response: that response stands.
                self._drop_rest()
            else:
                self._fail(UpstreamProtocolError(f"invalid response from the upstream: {exc}"))
        return False

    def _drop_rest(self) -> None:
        """Bytes after a complete response belong to no request of ours: drop them, never reuse the connection."""
        self._parser = None
        self.reusable = False  # SECURITY: a queued second message would answer the next request

    # -- parser callbacks -------------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._done:
            # SECURITY: a second response (or any bytes) after a complete one must never be merged into it.
            self.reusable = False
            raise _Unsolicited
        self._in_head = True
        self._reason = ""

    def on_status(self, reason: bytes) -> None:
        self._reason += reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # trailer fields: not forwarded (the client's response head is already out)
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_RESPONSE_HEADER_BYTES or len(self._headers) >= MAX_RESPONSE_HEADERS:
            raise UpstreamProtocolError("the upstream's response headers are too large")
        text = name.decode("latin-1")
        lower, decoded = text.lower(), value.decode("latin-1")
        if lower in _FRAMING_FIELDS:
            self._framing.append((lower, decoded))  # noted while parsing: no scan of the head afterwards
            if lower == "keep-alive":
                self._note_keep_alive(decoded)
        self._headers.append((lower, text, decoded))

    def _note_keep_alive(self, value: str) -> None:
        seconds = parse_keep_alive_timeout(value)
        if seconds is not None and (self.keep_alive_timeout is None or seconds < self.keep_alive_timeout):
            self.keep_alive_timeout = seconds  # several fields: the strictest one wins

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if status < 100:  # llhttp takes any three digits; RFC 9110 §15 has no class below 1xx
            raise UpstreamProtocolError(f"the upstream sent the invalid status code {status:03d}")
        if 100 <= status < 200 and status != 101:
            self._headers, self._header_bytes, self._framing = [], 0, []  # informational: wait for the final one
            return
        self._in_head = False
        headers = Headers.trusted(self._headers)
        self._headers = []
        framing = self._framing
        chunked = _check_framing(self._parser.get_http_version(), framing)
        head = ResponseHead(status, self._reason, headers, self._parser.should_keep_alive())
        if status == 101:
            self._set_head(head)
            return
        self.body = ResponseBody(self, self._body_idle)
        if chunked:
            self._chunk_lines = ChunkLines(self.body)
        if self._head_request or status in (204, 304):
            self._finish()
        else:
            self._close_delimited = not any(lower != "keep-alive" for lower, _ in framing)
            if self._close_delimited:
                self.reusable = False
        self._set_head(head)

    def on_body(self, data: bytes) -> None:
        if self._done:
            self.reusable = False  # body bytes after a HEAD/204/304 head: a confused upstream
            return
        if self.body is not None:
            self.body.feed(data)

    def on_chunk_header(self) -> None:
        if self._chunk_lines is not None:
            self._chunk_lines.on_line()

    def on_chunk_complete(self) -> None:
        if self._chunk_lines is not None:
            self._chunk_lines.on_end()

    def on_message_complete(self) -> None:
        self._chunk_lines = None
        if self.body is None and self._in_head:
            return  # the end of a 1xx message: the final response is still to come on this parser
        self._parser_idle = True
        if self.body is None or self._done:
            return  # the end of a 1xx message, or of a body already ended by our own framing rules
        if not self._parser_keep_alive():
            self.reusable = False
        self._finish()

    # -- helpers ----------------------------------------------------------------------------------------------
    def _parser_keep_alive(self) -> bool:
        return self._parser is not None and self._parser.should_keep_alive()

    def _set_head(self, head: ResponseHead) -> None:
        if not head.keep_alive:
            self.reusable = False
        self._parsed_head = head

    def _publish_head(self) -> None:
        head, self._parsed_head = self._parsed_head, None
        if head is not None and self.head is not None and not self.head.done():
            self.head.set_result(head)

    def _finish(self) -> None:
        self._done = True
        if self.body is not None:
            self.body.feed_eof()
        self.resume_reading()  # paused for a slow reader of this body; the next exchange must find it reading
        self._complete()

    def _complete(self) -> None:
        if self.on_complete is not None and not self.on_complete.done():
            self.on_complete.set_result(None)

    def _fail(self, error: GatewayError) -> None:
        self.reusable = False
        self._parsed_head = None
        if self.head is not None and not self.head.done():
            self.head.set_exception(error)
        elif self.body is not None and not self._done:
            self.body.abort(error)
        self.abort()

    def _start_tunnel(self, rest: bytes) -> None:
        self._parser = None
        self.reusable = False
        self.tunnel = StreamBody(None, self.pause_reading, self.resume_reading)
        if rest:
            self.tunnel.feed(rest)


class ConnectionTunnel:
    """The `Tunnel` of an upgraded upstream connection: raw bytes both ways.

    `protocol` is the upstream's `Upgrade` token, as it wrote it: the 101 to the client names it.
    """

    def __init__(self, conn: UpstreamConnection, protocol: str = "websocket") -> None:
        self.conn = conn
        self.protocol = protocol

    async def read(self) -> bytes:
        tunnel = self.conn.tunnel
        return b"" if tunnel is None else await tunnel.read()

    async def write(self, data: bytes) -> None:
        self.conn.write(data)
        await self.conn.drain()  # no idle limit: a WebSocket may be quiet for as long as both ends like

    def close(self) -> None:
        self.conn.close()
