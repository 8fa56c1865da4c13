"""One HTTP/1.1 connection to an upstream, on an asyncio Protocol with llhttp's strict response parser.

httptools cannot tell llhttp that a response answers HEAD, nor signal the end of a close-delimited body, so the
framing state is ours: HEAD/204/304 responses end at their head, and EOF completes a close-delimited body but
aborts any other. Ambiguous framing (CL with TE, bad chunk sizes, obs-fold) is a parse error: 502, never passed on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast

import httptools

from gateway.body import StreamBody
from gateway.errors import GatewayError, UpstreamError, UpstreamProtocolError, UpstreamTimeout
from gateway.exchange import Endpoint
from gateway.headers import Headers

MAX_RESPONSE_HEADER_BYTES = 64 * 1024
MAX_RESPONSE_HEADERS = 200


@dataclass(slots=True)
class ResponseHead:
    status: int
    reason: str
    headers: Headers
    keep_alive: bool


class ResponseBody(StreamBody):
    """An upstream response body; closing it early closes the connection instead of returning it to the pool."""

    def __init__(self, conn: UpstreamConnection, idle_timeout: float | None) -> None:
        super().__init__(
            None, conn.pause_reading, conn.resume_reading, idle_timeout=idle_timeout, idle_error=_body_idle
        )
        self.conn = conn

    async def aclose(self) -> None:
        if not self.complete:
            self.conn.close()


def _body_idle() -> GatewayError:
    return UpstreamTimeout("the upstream stopped sending the response body")


class UpstreamConnection(asyncio.Protocol):
    """A pooled connection. One request at a time: `begin()`, write, await `head`, read `body`."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.loop = asyncio.get_running_loop()
        self.head: asyncio.Future[ResponseHead] | None = None
        self.body: ResponseBody | None = None
        self.tunnel: StreamBody | None = None
        self.on_complete: asyncio.Future[None] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._write_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self._reset(False, None)

    def _reset(self, head_request: bool, body_idle: float | None) -> None:
        self._head_request = head_request
        self._body_idle = body_idle
        self._reason = ""
        self._headers: list[tuple[str, str, str]] = []
        self._header_bytes = 0
        self._close_delimited = False
        self._done = False
        self._parsed_head: ResponseHead | None = None

    # -- request lifecycle ------------------------------------------------------------------------------------
    def begin(self, head_request: bool, body_idle: float | None) -> None:
        """Prepare for the response to the request about to be written."""
        self._reset(head_request, body_idle)
        self._parser = httptools.HttpResponseParser(self)
        self.head = self.loop.create_future()
        self.on_complete = self.loop.create_future()
        self.body = None

    @property
    def usable(self) -> bool:
        """Idle, open and clean: safe to send the next request on."""
        return not self.closed and self.reusable and self.transport is not None and not self.transport.is_closing()

    def write(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise UpstreamError("the upstream connection closed while the request was being sent")
        self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise UpstreamError("the upstream connection closed while the request was being sent")
        if self._write_paused:
            self._write_waiter = self.loop.create_future()
            await self._write_waiter

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        """Tear the connection down so the upstream sees an incomplete request."""
        self.reusable = False
        if self.head is not None and not self.head.done():
            self.head.cancel()  # nobody will await it any more
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # -- asyncio.Protocol -------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_exception(UpstreamError("the upstream closed the connection"))
        if self.tunnel is not None:
            self.tunnel.feed_eof()
        if self.head is not None and not self.head.done():
            self.head.set_exception(UpstreamError("the upstream closed the connection before responding"))
        elif self.body is not None and not self._done:
            if self._close_delimited:
                self._finish()  # EOF is the end of a close-delimited body
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
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._start_tunnel(data[upgrade.args[0] :])
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause if isinstance(cause, GatewayError) else UpstreamProtocolError(f"invalid response: {exc}"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"invalid response from the upstream: {exc}"))
        # Published only now: an error later in the same bytes (a bad first chunk) must still make it a 502.
        self._publish_head()

    # -- parser callbacks -------------------------------------------------------------------------------------
    def on_status(self, reason: bytes) -> None:
        self._reason += reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_RESPONSE_HEADER_BYTES or len(self._headers) >= MAX_RESPONSE_HEADERS:
            raise UpstreamProtocolError("the upstream's response headers are too large")
        text = name.decode("latin-1")
        self._headers.append((text.lower(), text, value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._headers, self._reason, self._header_bytes = (
                [],
                "",
                0,
            )  # informational: wait for the final one
            return
        headers = Headers.trusted(self._headers)
        head = ResponseHead(status, self._reason, headers, self._parser.should_keep_alive())
        if status == 101:
            self._set_head(head)
            return
        self.body = ResponseBody(self, self._body_idle)
        if self._head_request or status in (204, 304):
            self._finish()
        else:
            self._close_delimited = "content-length" not in headers and "transfer-encoding" not in headers
            if self._close_delimited:
                self.reusable = False
        self._set_head(head)

    def on_body(self, data: bytes) -> None:
        if self._done:
            self.reusable = False  # body bytes after a HEAD/204/304 head: a confused upstream
            return
        if self.body is not None:
            self.body.feed(data)

    def on_message_complete(self) -> None:
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
    """The `Tunnel` of an upgraded upstream connection: raw bytes both ways."""

    def __init__(self, conn: UpstreamConnection) -> None:
        self.conn = conn

    async def read(self) -> bytes:
        tunnel = self.conn.tunnel
        return b"" if tunnel is None else await tunnel.read()

    async def write(self, data: bytes) -> None:
        self.conn.write(data)
        await self.conn.drain()

    def close(self) -> None:
        self.conn.close()
