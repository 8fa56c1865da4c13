"""Deterministic version records for the store tests (and the child process the kill -9 test runs)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.store import VersionRecord
from gateway.store.file import FileStore


@contextlib.asynccontextmanager
async def opened(path: Path, history: int) -> AsyncIterator[FileStore]:
    """A FileStore on `path`, open for the block and closed after it (its lock released) whatever happens."""
    store = FileStore(path, history)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def big_record(version: int, routes: int = 200) -> VersionRecord:
    """Version `version` with `routes` dynamic routes whose content follows from the number, so a reader can tell an
    intact record from a torn one by rebuilding it."""
    dynamic = tuple(
        {
            "id": f"v{version}-r{i}",
            "uri": f"http://127.0.0.1:{10000 + i}",
            "predicates": [f"Path=/v{version}/{i}/**", "Method=GET,POST"],
            "filters": [{"name": "AddRequestHeader", "args": {"name": "X-Version", "value": f"{version}-{i}"}}],
            "order": i,
            "metadata": {"note": "x" * 2048},
        }
        for i in range(routes)
    )
    return VersionRecord(
        version,
        "2026-12-07T23:40:00Z",
        "ops",
        f"load test {version}",
        f"{version:064x}",
        dynamic,
        ({"id": "static-a", "uri": "http://127.0.0.1:1"},),
        (f"v{version}-r0",),
    )
