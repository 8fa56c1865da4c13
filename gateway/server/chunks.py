"""A bound on chunk-size lines (extensions included) and trailers of a chunked message, for both parsers.

llhttp skips chunk extensions without limit and httptools exposes none of its `on_chunk_extension_*` callbacks, so a
1 MB extension (or 64 MB trickled in) used to pass. Node bounds extensions at 16 KiB (CVE-2024-22019); so do we,
counting from outside the parser: only the chunk callbacks and the body bytes of each piece fed are seen.
"""

from __future__ import annotations

from gateway.body import StreamBody

#: Bytes a chunk-size line may carry beyond the least one needs (a size digit and CRLF): extensions, leading zeros.
#: The trailer section after the last chunk is held to the same bound.
MAX_CHUNK_LINE = 16 * 1024
_LEAST_LINE = 3  # "0\r\n"
_CHUNK_END = 2  # the CRLF after a chunk's data


class ChunkLines:
    """Counts the bytes of the chunk-size line being read, per piece fed to the parser.

    A piece in which no line ends (`on_line`) adds its bytes that were not body data, less the CRLF of each chunk
    end (`on_end`): exact for a line whose bytes arrive in pieces of their own, as a trickle or a line spanning
    reads does. Where a line ends inside a piece the parser does not say where, so the count restarts after that
    piece; so it does after the piece in which the body begins (its head bytes are not known here), and the piece
    in which the message ends is not counted (the next message may follow in it). A line can thus exceed the bound
    by at most what one read holds (256 KiB), never without limit, and a legitimate message is never refused for
    what several lines sharing a read add up to. Extension bytes are never body progress, so they do not reset the
    body-idle clock (StreamBody's timer waits for body bytes only).
    """

    __slots__ = ("body", "counted", "pending", "lines", "ends", "fresh")

    def __init__(self, body: StreamBody) -> None:
        self.body = body
        self.counted = body.received  # body bytes already accounted for
        self.pending = 0  # bytes of the unfinished line (or trailers) counted so far
        self.lines = 0  # lines completed in the current piece
        self.ends = 0  # chunk ends in the current piece
        self.fresh = True  # the current piece also held the head

    def on_line(self) -> None:
        self.lines += 1

    def on_end(self) -> None:
        self.ends += 1

    def account(self, fed: int) -> bool:
        """After a piece of `fed` bytes: False when a line (or the trailers) may be longer than MAX_CHUNK_LINE."""
        received = self.body.received
        framing = fed - (received - self.counted) - _CHUNK_END * self.ends
        self.counted = received
        lines, self.lines, self.ends = self.lines, 0, 0
        if lines or self.fresh:
            self.fresh = False
            self.pending = 0
            return True
        self.pending += framing
        return self.pending <= MAX_CHUNK_LINE + _LEAST_LINE
