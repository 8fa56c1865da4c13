"""The supervisor ↔ worker control channel: length-prefixed JSON messages over a socketpair.

Requests carry an `id`; replies echo it, so a metrics scrape can be answered while a reload is in progress.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import orjson

Message = dict[str, Any]
_HEADER = 4
MAX_MESSAGE = 64 * 1024 * 1024  # a routes file plus metrics snapshots stay far below this


async def send(writer: asyncio.StreamWriter, message: Message) -> None:
    data = orjson.dumps(message)
    writer.write(len(data).to_bytes(_HEADER, "big") + data)
    await writer.drain()


async def receive(reader: asyncio.StreamReader) -> Message | None:
    """The next message, or None when the other side closed the channel."""
    try:
        size = int.from_bytes(await reader.readexactly(_HEADER), "big")
        if size > MAX_MESSAGE:
            raise ValueError(f"control message of {size} bytes")
        message: Message = orjson.loads(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return message


class Channel:
    """The supervisor's end of one worker's channel: request/reply by id, plus unsolicited messages."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Message]] = {}
        self.closed = asyncio.get_running_loop().create_future()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def request(self, message: Message, timeout: float) -> Message:
        """Send `message` and wait for its reply. Raises TimeoutError or ConnectionError."""
        if self.closed.done():  # a reply could never come: the reader has already seen the end of the channel
            raise ConnectionError("worker channel closed")
        ident = next(self._ids)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        try:
            await send(self.writer, {**message, "id": ident})
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._waiting.pop(ident, None)

    async def _read(self) -> None:
        while (message := await receive(self.reader)) is not None:
            future = self._waiting.get(message.get("id", -1))
            if future is not None and not future.done():
                future.set_result(message)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("worker channel closed"))
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        self.writer.close()
        self._task.cancel()
