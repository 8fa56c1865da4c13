"""An RGB canvas with rectangles and bitmap text, encoded as PNG with the standard library only (zlib)."""

from __future__ import annotations

import struct
import zlib

from benchmarks.font import HEIGHT, WIDTH, glyph

Color = tuple[int, int, int]


class Canvas:
    """`width`×`height` pixels, filled with `background`; drawing is clipped to the canvas."""

    def __init__(self, width: int, height: int, background: Color = (255, 255, 255)) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def rect(self, x: int, y: int, w: int, h: int, color: Color) -> None:
        """Fill the rectangle with its top-left corner at (x, y)."""
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(self.width, x + w), min(self.height, y + h)
        if x0 >= x1 or y0 >= y1:
            return
        line = bytes(color) * (x1 - x0)
        for row in range(y0, y1):
            start = (row * self.width + x0) * 3
            self.pixels[start : start + len(line)] = line

    @staticmethod
    def text_width(text: str, scale: int = 2) -> int:
        return len(text) * (WIDTH + 1) * scale

    def text(self, x: int, y: int, text: str, color: Color = (0, 0, 0), scale: int = 2) -> None:
        """Draw `text` with its top-left corner at (x, y); each font pixel is `scale`×`scale`."""
        for i, char in enumerate(text):
            left = x + i * (WIDTH + 1) * scale
            for row, bits in enumerate(glyph(char)):
                for col, lit in enumerate(bits):
                    if lit:
                        self.rect(left + col * scale, y + row * scale, scale, scale, color)

    @staticmethod
    def text_height(scale: int = 2) -> int:
        return HEIGHT * scale

    def png(self) -> bytes:
        """The canvas as a PNG file (8-bit RGB, no interlace)."""
        stride = self.width * 3
        raw = b"".join(b"\x00" + bytes(self.pixels[r * stride : (r + 1) * stride]) for r in range(self.height))
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw, 9))
            + _chunk(b"IEND", b"")
        )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
