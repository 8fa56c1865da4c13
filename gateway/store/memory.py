"""The memory store: versions live in this process only (lost at restart), and the history rules every kind shares."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence

from gateway.store.base import StoreError, VersionRecord, counted, fresh_record


def appended(
    kept: Sequence[VersionRecord], record: VersionRecord, history: int, where: str
) -> tuple[VersionRecord, ...]:
    """`kept` with `record` appended and the oldest versions pruned to `history`; `kept` is left as it is.

    Raises StoreError unless `record` is numbered `current + 1`: a gap or a repeat would make `get` and rollback
    targets ambiguous, and it means the one writer lost track of the current version.
    """
    if not kept:
        raise StoreError(f"store {where} is not open")
    expected = kept[-1].version + 1
    if record.version != expected:
        raise StoreError(f"store {where}: cannot append version {record.version}, the next version is {expected}")
    return (*kept, record)[-history:]


def find(kept: Sequence[VersionRecord], version: int) -> VersionRecord | None:
    """The kept version numbered `version`, or None (never made, or pruned). Kept versions are consecutive."""
    if not kept:
        return None
    index = version - kept[0].version
    if 0 <= index < len(kept):
        return kept[index]
    return None


class KeptVersions:
    """The reading half every kind shares: the kept versions, oldest first, the last one current; and, for a store
    only this gateway writes, nothing to follow."""

    where: str
    _kept: tuple[VersionRecord, ...] = ()
    shared = False

    async def refresh(self, deadline: float | None = None) -> bool:
        return False  # only this gateway writes it: its copy is the store

    def hold(self, record: VersionRecord) -> None:
        """Answer with `record` as the only version until opened (a shared store that could not be reached)."""
        self._kept = (record,)

    async def watch(self, wake: Callable[[], None], poll: float) -> None:
        while True:  # nobody else writes: a poll that never finds anything (kept for the protocol's sake)
            await asyncio.sleep(poll)

    def current(self) -> VersionRecord:
        if not self._kept:
            raise StoreError(f"store {self.where} is not open")
        return self._kept[-1]

    def versions(self) -> Sequence[VersionRecord]:
        return self._kept

    def get(self, version: int) -> VersionRecord | None:
        return find(self._kept, version)


class MemoryStore(KeptVersions):
    """Versions kept in this process: nothing to lock, nothing survives a restart (the gateway warns at start)."""

    where = "memory"

    def __init__(self, history: int) -> None:
        if history < 1:
            raise ValueError("history must keep at least the current version")
        self.history = history
        self._kept = ()
        self.key = secrets.token_bytes(32)

    async def open(self) -> None:
        if not self._kept:
            self._kept = (fresh_record(),)

    async def append(self, record: VersionRecord) -> None:
        with counted("append"):
            self._kept = appended(self._kept, record, self.history, self.where)

    async def close(self) -> None:
        """Nothing to release; the versions stay readable (a closed memory store is still the same history)."""
