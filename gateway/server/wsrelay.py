"""The byte relay of a WebSocket tunnel, aware of frame boundaries so the gateway can end it with close 1001.

After the 101 the tunnel copies bytes, not messages. To say "going away" (RFC 6455 §7.4.1, code 1001) when a drain
times out, the gateway must place a close frame of its own between two frames of each direction, never inside
one: each direction keeps a cursor that reads frame headers only (FIN/opcode byte, mask bit and length, extended
length, masking key) and skips payloads by count. Control frames may come between the fragments of a message, so
any frame boundary will do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

from gateway.body import StreamBody
from gateway.exchange import Tunnel

GOING_AWAY = 1001
#: A close frame from the server side: unmasked (RFC 6455 §5.1), FIN + opcode 8, two bytes of payload (the code).
CLOSE_TO_CLIENT = b"\x88\x02" + GOING_AWAY.to_bytes(2, "big")
_MAX_HEADER = 14  # 2 + 8 bytes of extended length + 4 of masking key


def close_to_upstream(key: bytes | None = None) -> bytes:
    """A close frame as a client sends it: masked with a fresh, unpredictable key (RFC 6455 §5.3)."""
    key = key if key is not None else os.urandom(4)
    payload = GOING_AWAY.to_bytes(2, "big")
    return b"\x88\x82" + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class FrameCursor:
    """Where one direction of a WebSocket stream is: inside a frame, or at a boundary between two."""

    __slots__ = ("left", "head")

    def __init__(self) -> None:
        self.left = 0  # payload bytes of the current frame still to come
        self.head = b""  # the bytes of a frame header seen so far, while it is incomplete

    @property
    def at_boundary(self) -> bool:
        return self.left == 0 and not self.head

    def advance(self, data: bytes | memoryview, stop_at_boundary: bool = False) -> int:
        """Move over `data`; return how many bytes were consumed: all, or with `stop_at_boundary` those up to the
        first frame boundary (0 when the cursor is at one already)."""
        pos, size = 0, len(data)
        while pos < size:
            if stop_at_boundary and self.at_boundary:
                return pos
            if self.left:
                take = min(self.left, size - pos)
                self.left -= take
                pos += take
                continue
            pos += self._header(data[pos : pos + _MAX_HEADER])
        return pos

    def _header(self, data: bytes | memoryview) -> int:
        """Take header bytes from the front of `data`; return how many were taken."""
        known = len(self.head)
        head = self.head + bytes(data)
        if len(head) < 2:
            self.head = head
            return len(data)
        length = head[1] & 0x7F
        extended = 2 if length == 126 else 8 if length == 127 else 0
        size = 2 + extended + (4 if head[1] & 0x80 else 0)
        if len(head) < size:
            self.head = head
            return len(data)
        if extended:
            length = int.from_bytes(head[2 : 2 + extended], "big")
        self.head, self.left = b"", length
        return size - known


class WsRelay:
    """Copies a tunnel both ways and, asked to go away, sends close 1001 to each side at its next frame boundary.

    After its close frame, a side gets nothing more from the relay. `go_away()` returns a future that is done
    once both close frames are sent (or the tunnel ended): the server waits for it, bounded, before closing.
    """

    def __init__(self, to_client: Callable[[bytes], None], tunnel: Tunnel) -> None:
        self.to_client = to_client
        self.tunnel = tunnel
        self.down_frames = FrameCursor()  # upstream -> client
        self.up_frames = FrameCursor()  # client -> upstream
        self.going_away = False
        self.client_closed = False
        self.upstream_closed = False  # our close frame is on its way to the upstream (no more bytes for it)
        self.upstream_told = False  # ... and was handed to the connection
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closing_up: asyncio.Task[None] | None = None

    def down(self, data: bytes) -> None:
        """Relay bytes from the upstream to the client."""
        if self.client_closed:
            return  # after our close frame: nothing more for the client
        if not self.going_away:
            self.down_frames.advance(data)
            self.to_client(data)
            return
        taken = self.down_frames.advance(data, stop_at_boundary=True)
        if taken:
            self.to_client(data[:taken])
        if self.down_frames.at_boundary:
            self._close_client()

    async def copy_up(self, sink: StreamBody) -> None:
        """Relay the client's bytes to the upstream until the client side ends; then close the tunnel."""
        try:
            while data := await sink.read():
                if self.upstream_closed:
                    continue  # after our close frame: read and dropped
                if not self.going_away:
                    self.up_frames.advance(data)
                    await self.tunnel.write(data)
                    continue
                taken = self.up_frames.advance(data, stop_at_boundary=True)
                if taken:
                    await self.tunnel.write(data[:taken])
                if self.up_frames.at_boundary and not self.upstream_closed:
                    self._close_upstream()
        except Exception:  # the client side failed; closing the tunnel ends the other direction too
            pass
        if self._closing_up is not None:
            await asyncio.wait([self._closing_up])  # let our close frame go out first
        self.tunnel.close()

    def go_away(self) -> asyncio.Future[None]:
        """Send close 1001 to both sides, each at its next frame boundary (now, when at one)."""
        self.going_away = True
        if self.down_frames.at_boundary and not self.client_closed:
            self._close_client()
        if self.up_frames.at_boundary and not self.upstream_closed:
            self._close_upstream()
        return self.done

    def ended(self) -> None:
        """The tunnel is over: nobody waits for close frames any more."""
        if not self.done.done():
            self.done.set_result(None)

    def _close_client(self) -> None:
        self.client_closed = True
        with contextlib.suppress(ConnectionError):  # the client may be gone already
            self.to_client(CLOSE_TO_CLIENT)
        self._check_done()

    def _close_upstream(self) -> None:
        self.upstream_closed = True
        self._closing_up = asyncio.get_running_loop().create_task(self._send_close_up())

    async def _send_close_up(self) -> None:
        with contextlib.suppress(Exception):  # the upstream may be gone already
            await self.tunnel.write(close_to_upstream())
        self.upstream_told = True
        self._check_done()

    def _check_done(self) -> None:
        if self.client_closed and self.upstream_told:
            self.ended()
