"""CPU seconds the gateway spends on one large chunked upload whose body is CRLF text with blank lines.

Such a body (a multipart upload, a text file with paragraphs) holds `\\r\\n\\r\\n` every few lines: the figure
shows whether the request-pipelining bound, meant for heads, costs anything per blank line of a body.

    python -m benchmarks.chunked_upload                   # 64 MiB, a blank line every 100 bytes, 3 runs
    python -m benchmarks.chunked_upload --source /tmp/before

The gateway runs as in production (`python -m gateway run`, one worker, admin listener on a free port); the
upstream is an httptools sink in this process that answers once the whole body arrived. The figure is the CPU
time (user + system) of the gateway's process tree during each upload, whose body went through whole.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

import httptools

from benchmarks.procs import free_port, spawn, tree_cpu_seconds, wait_port
from benchmarks.routes import routes_yaml

MiB = 1 << 20
_CHUNK = 256 * 1024  # bytes of body per chunk (a chunk-size line each)


class _Sink:
    """Counts the body bytes of one request; `done` is set when its message is complete."""

    def __init__(self) -> None:
        self.received = 0
        self.done = asyncio.Event()

    def on_body(self, data: bytes) -> None:
        self.received += len(data)

    def on_message_complete(self) -> None:
        self.done.set()


async def _serve_sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await _sink_requests(reader, writer)
    except asyncio.CancelledError:
        writer.close()  # the run is over (asyncio.run cancels what is left): no traceback for a handler at rest


async def _sink_requests(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        sink = _Sink()
        parser = httptools.HttpRequestParser(sink)
        while not sink.done.is_set():
            data = await reader.read(1 << 18)
            if not data:
                writer.close()
                return
            parser.feed_data(data)
        answer = str(sink.received).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
        await writer.drain()


def body(size: int, every: int) -> bytes:
    """`size` bytes of CRLF text with a blank line (so `\\r\\n\\r\\n`) every `every` bytes."""
    line = b"y" * (every - 4) + b"\r\n\r\n"
    return (line * (size // len(line) + 1))[:size]


async def _upload(port: int, data: bytes) -> int:
    """Send `data` chunked; the body size the upstream reports."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /bench/upload HTTP/1.1\r\nHost: bench\r\nTransfer-Encoding: chunked\r\n\r\n")
        view = memoryview(data)
        for start in range(0, len(data), _CHUNK):
            piece = view[start : start + _CHUNK]
            writer.write(b"%x\r\n" % len(piece))
            writer.write(piece)
            writer.write(b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"the gateway answered {head!r}")
        length = next(int(line[15:]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:"))
        return int(await reader.readexactly(length))
    finally:
        writer.close()


async def run(source: Path, size: int, every: int, runs: int) -> list[float]:
    """CPU seconds of the gateway tree for each of `runs` uploads."""
    sink = await asyncio.start_server(_serve_sink, "127.0.0.1", 0)
    upstream_port = sink.sockets[0].getsockname()[1]
    data = body(size, every)
    with tempfile.TemporaryDirectory(prefix="chunked-upload-") as tmp:
        root = Path(tmp)
        config = root / "routes.yaml"
        config.write_text(routes_yaml(f"http://127.0.0.1:{upstream_port}"))
        port = free_port()
        cmd = [sys.executable, "-m", "gateway", "run", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
        cmd += ["--workers", "1", "--admin-listen", f"127.0.0.1:{free_port()}", "--log-level", "WARNING"]
        os.environ["PYTHONPATH"] = str(source)
        gateway = spawn("gateway", cmd, root)
        try:
            await asyncio.to_thread(wait_port, port, gateway.proc, 60)
            await _upload(port, data[: 1 * MiB])  # warm-up: imports, first connection
            seconds = []
            for _ in range(runs):
                before = tree_cpu_seconds(gateway.pid)
                received = await _upload(port, data)
                seconds.append(tree_cpu_seconds(gateway.pid) - before)
                if received != size:
                    raise RuntimeError(f"the upstream received {received} of {size} bytes")
            return seconds
        finally:
            gateway.stop()
            sink.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=Path.cwd(), help="checkout to measure (default: this one)")
    parser.add_argument("--mib", type=int, default=64, help="body size in MiB (default 64)")
    parser.add_argument("--every", type=int, default=100, help="bytes between blank lines (default 100)")
    parser.add_argument("--runs", type=int, default=3, help="uploads measured (default 3)")
    args = parser.parse_args()
    seconds = asyncio.run(run(args.source.resolve(), args.mib * MiB, args.every, args.runs))
    figures = ", ".join(f"{s:.2f}" for s in seconds)
    print(f"{args.source}: {args.mib} MiB chunked, blank line every {args.every} B: gateway CPU s {figures}")
    print(f"median {statistics.median(seconds):.2f} s")


if __name__ == "__main__":
    main()
