"""The memory store: the history lives in the supervisor's memory and is lost at restart (a warning says so)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.store.base import StoreError, VersionRecord, fresh_record


class MemoryStore:
    where = "memory"

    def __init__(self, history: int) -> None:
        self.history = history
        self._versions: list[VersionRecord] = []

    async def open(self) -> None:
        self._versions = [fresh_record()]

    def current(self) -> VersionRecord:
        return self._versions[-1]

    def versions(self) -> Sequence[VersionRecord]:
        return tuple(self._versions)

    def get(self, version: int) -> VersionRecord | None:
        return next((r for r in self._versions if r.version == version), None)

    async def append(self, record: VersionRecord) -> None:
        if record.version != self.current().version + 1:
            raise StoreError(f"store memory: version {record.version} does not follow {self.current().version}")
        self._versions = [*self._versions, record][-self.history :]

    async def close(self) -> None:
        return None
