"""Request ids, W3C trace context and the JSON access log.

The access log is one orjson line per request on stdout, buffered and written at most every 200 ms (or when 64 KiB
wait): a write per request would be a syscall per request. Lines still buffered are written at drain and exit.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import select
import time
from typing import Any

import orjson

from gateway.exchange import ExchangeKey

#: The request id of this exchange (from a trusted proxy, or generated); returned and forwarded.
REQUEST_ID: ExchangeKey[str] = ExchangeKey("request-id")
#: The trace id of the W3C traceparent (received or generated), for the access log.
TRACE_ID: ExchangeKey[str] = ExchangeKey("trace-id")

_PREFIX = os.urandom(6).hex()  # per process: ids stay unique across workers and replicas without coordination
_COUNTER = itertools.count(1)
_HEX = frozenset("0123456789abcdef")
_MAX_ID = 128
_bits = random.getrandbits


def new_request_id() -> str:
    """A fresh id: a per-process random prefix and a counter (no syscall, no uuid per request)."""
    return f"{_PREFIX}{next(_COUNTER):010x}"


def acceptable_request_id(value: str) -> bool:
    """An id from a trusted proxy is kept when it is short, visible ASCII without separators of its own."""
    return 0 < len(value) <= _MAX_ID and value.isascii() and value.isprintable() and " " not in value


def parse_traceparent(value: str) -> str | None:
    """The trace id of a valid version-00 `traceparent`, else None (plain string checks, no regex on input)."""
    parts = value.strip().split("-")
    if len(parts) != 4 or parts[0] != "00":
        return None
    trace, parent, flags = parts[1], parts[2], parts[3]
    if len(trace) != 32 or len(parent) != 16 or len(flags) != 2:
        return None
    if not (_HEX.issuperset(trace) and _HEX.issuperset(parent) and _HEX.issuperset(flags)):
        return None
    if trace == "0" * 32 or parent == "0" * 16:
        return None
    return trace


def new_traceparent() -> tuple[str, str]:
    """(traceparent, trace id) for a request that arrived without one; not sampled (the gateway emits no spans)."""
    # Ids must be unique, not secret: the per-process PRNG (seeded from os.urandom at start; workers are spawned,
    # never forked, so no two share a state) costs no syscall, where os.urandom costs one per call.
    trace = f"{_bits(128) or 1:032x}"
    return f"00-{trace}-{_bits(64) or 1:016x}-00", trace


class AccessLog:
    """Buffered JSON lines to a file descriptor (stdout by default)."""

    def __init__(self, enabled: bool = True, fd: int = 1, interval: float = 0.2, limit: int = 64 * 1024) -> None:
        self.enabled = enabled
        self.fd, self.interval, self.limit = fd, interval, limit
        self._buffer: list[bytes] = []
        self._size = 0
        #: Lines not written because stdout could not take them (exported as gateway_access_log_dropped_total).
        self.dropped = 0
        self._timer: asyncio.TimerHandle | None = None

    def write(self, entry: dict[str, Any]) -> None:
        line = orjson.dumps(entry) + b"\n"
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= self.limit:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)
            except RuntimeError:  # no loop (a tool or test): write now
                self.flush()

    def _tick(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Write what is buffered, in writes of whole lines up to PIPE_BUF bytes: workers share one stdout pipe,
        and a write that size is atomic, so lines of different workers never interleave."""
        if not self._buffer:
            return
        lines, self._buffer, self._size = self._buffer, [], 0
        chunks = _chunks(lines, select.PIPE_BUF)
        for index, chunk in enumerate(chunks):
            try:
                while chunk:
                    chunk = chunk[os.write(self.fd, chunk) :]
            except BlockingIOError:
                # A reader slower than us (stdout is non-blocking in workers): drop rather than stall serving.
                self.dropped += sum(part.count(b"\n") for part in chunks[index:])
                return
            except OSError:
                self.enabled = False  # stdout is gone; keep serving
                return


def _chunks(lines: list[bytes], limit: int) -> list[bytes]:
    out: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and size + len(line) > limit:
            out.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        out.append(b"".join(current))
    return out


#: This process's access log; the worker configures it from settings.
ACCESS_LOG = AccessLog(enabled=False)


_second = -1
_second_text = ""


def iso_now() -> str:
    """UTC time with milliseconds, as access-log lines carry it (the formatted second is reused within it)."""
    global _second, _second_text
    now = time.time()
    second = int(now)
    if second != _second:
        _second, _second_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_second_text}.{int((now - second) * 1000):03d}Z"
