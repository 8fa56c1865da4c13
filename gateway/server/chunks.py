"""A bound on chunk-size lines (extensions included) and trailers of a chunked message, for both parsers.

llhttp skips chunk extensions without limit and httptools exposes none of its `on_chunk_extension_*` callbacks, so a
1 MB extension (or 64 MB trickled in) used to pass. Node bounds extensions at 16 KiB (CVE-2024-22019); so do we,
counting from outside the parser: only the chunk callbacks, the body bytes and the bytes of each piece fed are seen.
"""

from __future__ import annotations

from gateway.body import StreamBody

#: Bytes a chunk-size line may carry beyond the least one needs (a size digit and CRLF): extensions, leading zeros.
#: The trailer section after the last chunk is held to the same bound.
MAX_CHUNK_LINE = 16 * 1024
_LEAST_LINE = 3  # "0\r\n"
_CHUNK_END = 2  # the CRLF after a chunk's data
_BOUND = MAX_CHUNK_LINE + _LEAST_LINE
_LF = 10


class ChunkLines:
    """Counts the bytes of the chunk-size line being read (or of the trailers), per piece fed to the parser.

    A piece in which no line ends (`on_line`) adds its bytes that were not body data, less the CRLF of each chunk
    end (`on_end`). Where a line ends inside a piece the parser does not say where, but a chunk-size line holds no
    LF before its end: so the line carried from earlier pieces ends at the piece's first LF (and is checked with
    those bytes), and the next line begins after its last LF (those bytes, less body data that follows the last
    line or chunk end, are carried on). The head's piece is read the same way, its head ending in an LF too. So a
    line is refused once over the bound, except that a line lying wholly inside one piece, the trailer lines before
    the last LF of a piece, and the piece in which the message ends (the next message may follow in it) are not
    counted: a line can exceed the bound by at most what one read holds (256 KiB), never without limit, and a
    legitimate message is never refused for what several lines sharing a read add up to. Extension bytes are never
    body progress, so they do not reset the body-idle clock (StreamBody's timer waits for body bytes only).
    """

    __slots__ = ("body", "counted", "mark", "pending", "lines", "ends")

    def __init__(self, body: StreamBody) -> None:
        self.body = body
        self.counted = body.received  # body bytes already accounted for
        self.mark = body.received  # body bytes at the last line or chunk end (at first: the head end)
        self.pending = 0  # bytes of the unfinished line (or trailers) counted so far
        self.lines = 1  # lines completed in the current piece; the head's piece is read as one where a line ended
        self.ends = 0  # chunk ends in the current piece

    def on_line(self) -> None:
        self.lines += 1
        self.mark = self.body.received

    def on_end(self) -> None:
        self.ends += 1
        self.mark = self.body.received

    def account(self, data: bytes, start: int, stop: int) -> bool:
        """After the piece `data[start:stop]` was fed: False when a line (or the trailers) is longer than the bound."""
        received = self.body.received
        if not self.lines:
            self.pending += stop - start - (received - self.counted) - _CHUNK_END * self.ends
            self.counted, self.ends = received, 0
            return self.pending <= _BOUND
        if self.pending and self.pending + data.find(_LF, start, stop) + 1 - start > _BOUND:
            return False  # SECURITY: the line carried from earlier pieces ends in this one, over the bound
        tail = stop - 1 - max(data.rfind(_LF, start, stop), start - 1)
        self.pending = max(0, tail - (received - self.mark))
        self.counted, self.lines, self.ends = received, 0, 0
        return self.pending <= _BOUND
