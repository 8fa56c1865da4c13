"""Request bodies as gateway-owned async byte streams.

A body is read once, chunk by chunk, unless a filter asked for it to be buffered within a bound; a buffered
body can be replayed by every later attempt (Retry) and every forked exchange.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

from gateway.errors import ClientClosed, GatewayError, PayloadTooLarge, RequestTimeout


class Body:
    """Base class of request bodies. `length` is the declared size (Content-Length) or None when unknown.

    A plain class, not an ABC: `isinstance` checks against bodies run several times per request, and an ABC's
    `__instancecheck__` costs a Python-level call each time.
    """

    length: int | None = None

    async def read(self) -> bytes:
        """Return the next chunk, or b"" once the body is complete. Raises ClientClosed if the client left."""
        raise NotImplementedError

    @property
    def replayable(self) -> bool:
        """True when `replay()` can hand out a fresh copy that yields the same bytes again."""
        return False

    def replay(self) -> Body:
        """A fresh reader over the same bytes; only when `replayable`."""
        raise TypeError("this body is a one-shot stream; buffer it first")

    @property
    def is_empty(self) -> bool:
        """True when the request has no body at all (not merely an unread one)."""
        return self.length == 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self.read():
            yield chunk

    async def buffer(self, limit: int) -> BytesBody:
        """Read the whole remaining body into memory, refusing more than `limit` bytes (PayloadTooLarge)."""
        if self.length is not None and self.length > limit:
            raise PayloadTooLarge(f"request body of {self.length} bytes exceeds the buffer limit of {limit}")
        parts: list[bytes] = []
        size = 0
        while chunk := await self.read():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body exceeds the buffer limit of {limit} bytes")
            parts.append(chunk)
        return BytesBody(b"".join(parts))


class BytesBody(Body):
    """A body held in memory; replayable."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)
        self._done = not data

    async def read(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        return self.data

    @property
    def replayable(self) -> bool:
        return True

    def replay(self) -> BytesBody:
        return BytesBody(self.data)


EMPTY = BytesBody(b"")


class StreamBody(Body):
    """A body fed by the server adapter as bytes arrive, with flow control back to the socket.

    The producer calls `feed`, `feed_eof` or `abort`; `pause`/`resume` are called when more than `high_water`
    bytes wait unread, so a slow upstream slows the client down instead of growing memory.
    """

    def __init__(
        self,
        length: int | None,
        pause: Callable[[], None],
        resume: Callable[[], None],
        high_water: int = 256 * 1024,
        on_first_read: Callable[[], None] | None = None,
        idle_timeout: float | None = None,
        idle_error: Callable[[], GatewayError] | None = None,
    ) -> None:
        self.length = length
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._pause, self._resume = pause, resume
        self._high_water = high_water
        self._paused = False
        self._on_first_read = on_first_read
        self._idle_timeout = idle_timeout
        self._idle_error = idle_error or _client_idle
        self.received = 0

    @property
    def complete(self) -> bool:
        """True once the producer saw the end of the body."""
        return self._eof

    @property
    def exhausted(self) -> bool:
        """True once every byte was read and the producer saw the end: the next read would return b""."""
        return self._eof and not self._chunks

    def set_idle_timeout(self, seconds: float | None) -> None:
        """Change the longest wait for the next chunk (None: wait forever, as for event streams)."""
        self._idle_timeout = seconds

    def take_buffered(self) -> bytes:
        """Every chunk already received, joined, without waiting (b"" when none); reading continues after it."""
        chunks = self._chunks
        if not chunks:
            return b""
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._paused:
            self._paused = False
            self._resume()
        return data

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self.received += len(data)
        if self._buffered > self._high_water and not self._paused:
            self._paused = True
            self._pause()
        self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def abort(self, error: BaseException) -> None:
        """The client connection failed; readers get `error` once buffered data is exhausted."""
        self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> bytes:
        if self._on_first_read is not None:
            callback, self._on_first_read = self._on_first_read, None
            callback()  # e.g. send "100 Continue" only once somebody wants the body
        while not self._chunks:
            if self._eof:
                return b""
            if self._error is not None:
                if isinstance(self._error, GatewayError):
                    raise self._error
                raise ClientClosed("client closed the connection while sending the body") from self._error
            await self._wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered <= self._high_water // 4:
            self._paused = False
            self._resume()
        return chunk

    async def _wait(self) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None
        if self._idle_timeout is not None:
            # A timer only while actually waiting: a client that stops mid-body cannot hold the upstream forever.
            timer = loop.call_later(self._idle_timeout, self._expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _expire(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(self._idle_error())


def _client_idle() -> GatewayError:
    return RequestTimeout("the client stopped sending the request body")
