"""MemoryStore: version 0 at open, consecutive appends only, pruning to `history`, lookups by number."""

from __future__ import annotations

import pytest

from gateway.settings import StoreSettings
from gateway.store import StoreError, VersionRecord, open_store
from gateway.store.memory import MemoryStore


def record(version: int, *route_ids: str) -> VersionRecord:
    routes = tuple({"id": i, "uri": "http://127.0.0.1:1", "predicates": [f"Path=/{i}/**"]} for i in route_ids)
    summary = ("2026-12-07T23:40:00Z", "ops", f"make {version}", f"sum{version}")
    return VersionRecord(version, *summary, routes, (), route_ids)


async def test_open_starts_at_version_0() -> None:
    store = MemoryStore(history=5)
    await store.open()
    current = store.current()
    assert (current.version, current.author, current.dynamic, current.checksum) == (0, "store", (), "")
    assert list(store.versions()) == [current]
    assert store.get(0) == current
    assert store.get(1) is None


async def test_append_makes_the_record_current() -> None:
    store = MemoryStore(history=5)
    await store.open()
    first, second = record(1, "a"), record(2, "a", "b")
    await store.append(first)
    await store.append(second)
    assert store.current() == second
    assert [v.version for v in store.versions()] == [0, 1, 2]
    assert store.get(1) == first
    assert store.get(2) == second
    assert store.get(3) is None
    assert store.get(-1) is None


@pytest.mark.parametrize("version", [0, 1, 3, 5])
async def test_append_refuses_a_version_that_is_not_the_next(version: int) -> None:
    store = MemoryStore(history=5)
    await store.open()
    await store.append(record(1, "a"))
    before = list(store.versions())
    with pytest.raises(StoreError, match=f"cannot append version {version}, the next version is 2"):
        await store.append(record(version, "x"))
    assert list(store.versions()) == before
    assert store.current().version == 1


async def test_history_prunes_the_oldest_versions() -> None:
    store = MemoryStore(history=3)
    await store.open()
    for n in range(1, 8):
        await store.append(record(n, f"r{n}"))
    assert [v.version for v in store.versions()] == [5, 6, 7]
    assert store.get(4) is None
    assert store.get(0) is None
    assert store.get(5) == record(5, "r5")
    assert store.current() == record(7, "r7")
    await store.append(record(8, "r8"))  # numbering continues from the current, not from the kept count
    assert [v.version for v in store.versions()] == [6, 7, 8]


async def test_current_before_open_is_an_error() -> None:
    store = MemoryStore(history=3)
    with pytest.raises(StoreError, match="not open"):
        store.current()
    with pytest.raises(StoreError, match="not open"):
        await store.append(record(1))


async def test_open_store_picks_memory_without_a_path() -> None:
    assert isinstance(open_store(StoreSettings()), MemoryStore)
    assert open_store(StoreSettings(history=7)).where == "memory"
