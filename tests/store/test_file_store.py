"""FileStore: durable history in one JSON file, one gateway per file, corrupt files refused and left as they are,
and `kill -9` mid-write leaving the old or the new document."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from gateway.settings import StoreSettings
from gateway.store import StoreError, VersionRecord, open_store
from gateway.store.file import FORMAT, FileStore
from tests.store.records import big_record, opened

REPO = Path(__file__).resolve().parents[2]


def small(version: int) -> VersionRecord:
    return big_record(version, routes=2)


def temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


async def test_missing_file_is_created_at_once_with_version_0(tmp_path: Path) -> None:
    path = tmp_path / "routes-store.json"
    async with opened(path, 5) as store:
        assert store.current().version == 0
        document = orjson.loads(path.read_bytes())
        assert document["format"] == FORMAT
        assert [v["version"] for v in document["versions"]] == [0]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_append_writes_durably_and_reopen_sees_the_same_history(tmp_path: Path) -> None:
    path = tmp_path / "routes-store.json"
    store = FileStore(path, history=4)
    await store.open()
    for n in range(1, 7):
        await store.append(small(n))
    assert [v.version for v in store.versions()] == [3, 4, 5, 6]
    assert store.get(2) is None
    assert store.get(5) == small(5)
    assert [v["version"] for v in orjson.loads(path.read_bytes())["versions"]] == [3, 4, 5, 6]
    await store.close()

    again = FileStore(path, history=4)
    await again.open()
    try:
        assert list(again.versions()) == list(store.versions())
        assert again.current() == small(6)
        await again.append(small(7))
        assert [v.version for v in again.versions()] == [4, 5, 6, 7]
    finally:
        await again.close()


async def test_a_lower_history_at_reopen_prunes_the_oldest(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    store = FileStore(path, history=10)
    await store.open()
    for n in range(1, 6):
        await store.append(small(n))
    await store.close()
    again = FileStore(path, history=2)
    await again.open()
    try:
        assert [v.version for v in again.versions()] == [4, 5]
    finally:
        await again.close()


async def test_append_refuses_a_version_that_is_not_the_next_and_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    async with opened(path, 5) as store:
        await store.append(small(1))
        before = path.read_bytes()
        with pytest.raises(StoreError, match="cannot append version 3, the next version is 2"):
            await store.append(small(3))
        assert path.read_bytes() == before
        assert store.current().version == 1


async def test_no_temp_files_are_left_and_the_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    async with opened(path, 5) as store:
        for n in range(1, 4):
            await store.append(small(n))
        assert temps(tmp_path) == []
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.json.lock"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(store.lock_path.stat().st_mode) == 0o600


async def test_a_failed_write_changes_nothing(tmp_path: Path) -> None:
    """A real failure, no mocks: a non-empty directory where the file was makes the rename fail (even for root)."""
    path = tmp_path / "s.json"
    async with opened(path, 5) as store:
        await store.append(small(1))
        path.unlink()
        path.mkdir()
        (path / "in-the-way").write_text("x")
        with pytest.raises(StoreError, match=re.escape(f"store {path} cannot be written")):
            await store.append(small(2))
        assert store.current() == small(1)
        assert [v.version for v in store.versions()] == [0, 1]
        assert temps(tmp_path) == []
        (path / "in-the-way").unlink()
        path.rmdir()
        await store.append(small(2))  # the store recovers once the disk does: still numbered from version 1
        assert [v["version"] for v in orjson.loads(path.read_bytes())["versions"]] == [0, 1, 2]


async def test_a_cancelled_append_leaves_memory_saying_what_the_disk_says(tmp_path: Path) -> None:
    """Cancelling the awaiting task cannot stop a write its thread already started; once that thread is done the
    in-memory current must be the file's current (else the next append would be numbered from a stale one)."""
    path = tmp_path / "s.json"
    async with opened(path, 5) as store:
        task = asyncio.create_task(store.append(big_record(1)))
        await asyncio.sleep(0)  # let the task reach its thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.get_running_loop().shutdown_default_executor()  # waits for the write thread to finish
        on_disk = [v["version"] for v in orjson.loads(path.read_bytes())["versions"]]
        assert [v.version for v in store.versions()] == on_disk


async def test_a_second_open_on_the_same_file_is_refused_until_close(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    first = FileStore(path, history=5)
    await first.open()
    await first.append(small(1))  # the file was renamed over since open: the lock must still hold
    second = FileStore(path, history=5)
    with pytest.raises(StoreError) as refused:
        await second.open()
    assert str(refused.value) == f"store {path} is locked by another gateway (pid {os.getpid()})"
    await first.close()
    await first.close()  # idempotent
    await second.open()
    try:
        assert second.current() == small(1)
    finally:
        await second.close()


async def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "s.json"
    with pytest.raises(StoreError, match=re.escape(f"store {path}: directory {path.parent} does not exist")):
        await FileStore(path, history=5).open()
    assert not path.parent.exists()


KEY = "ab" * 32


def document(*versions: object, key: object = KEY) -> bytes:
    return orjson.dumps({"format": FORMAT, "key": key, "versions": list(versions)})


VALID = document(small(0).to_data(), small(1).to_data())
NEGATIVE = {**small(0).to_data(), "version": -1}

CORRUPT = {
    "garbage bytes": (b"\x00\xff\xfegarbage\x01", "line 1 column 1"),
    "truncated json": (VALID[: len(VALID) // 2], "unexpected end of data"),
    "empty file": (b"", "empty document"),
    "an array": (b"[1, 2, 3]", "the document is a JSON list, not an object"),
    "another format": (orjson.dumps({"format": "other/9", "versions": []}), "format is 'other/9'"),
    "no versions": (document(), "versions must be a non-empty list"),
    "a record not an object": (document(small(0).to_data(), 7), "versions[1] is not an object"),
    "a record missing a field": (document({"version": 0}), "versions[0]: missing 'time'"),
    "a negative version": (document(NEGATIVE), "versions[0]: version must be a non-negative integer, got -1"),
    "routes not a list": (document({**small(0).to_data(), "dynamic": "no"}), "versions[0]: dynamic and static"),
    "a gap in versions": (document(small(0).to_data(), small(2).to_data()), "versions[1] is version 2, expected 1"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
async def test_a_corrupt_file_is_refused_and_left_byte_identical(tmp_path: Path, case: str) -> None:
    content, reason = CORRUPT[case]
    path = tmp_path / "routes-store.json"
    path.write_bytes(content)
    for _ in range(2):  # the second try sees the same refusal, not "locked": a refused open releases the lock
        with pytest.raises(StoreError) as refused:
            await FileStore(path, history=5).open()
        message = str(refused.value)
        assert message.startswith(f"store {path} is corrupt: ")
        assert reason in message
        assert message.endswith("refusing to start (move it away to start with an empty store)")
        assert path.read_bytes() == content
    assert temps(tmp_path) == []


async def test_a_valid_document_written_by_hand_opens(tmp_path: Path) -> None:
    """The counterpart of the corrupt cases: the same builder, valid input, opens (so those cases test the data)."""
    path = tmp_path / "s.json"
    path.write_bytes(VALID)
    async with opened(path, 5) as store:
        assert list(store.versions()) == [small(0), small(1)]


async def test_a_directory_at_the_path_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.mkdir()
    with pytest.raises(StoreError, match=re.escape(f"store {path} is unreadable: Is a directory; refusing to start")):
        await FileStore(path, history=5).open()
    assert path.is_dir() and list(path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file; the directory case covers unreadable")
async def test_a_file_without_read_permission_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(VALID)
    path.chmod(0)
    try:
        with pytest.raises(StoreError, match=re.escape(f"store {path} is unreadable: Permission denied")):
            await FileStore(path, history=5).open()
    finally:
        path.chmod(0o600)
    assert path.read_bytes() == VALID


async def test_open_store_picks_file_when_a_path_is_set(tmp_path: Path) -> None:
    store = open_store(StoreSettings(path=tmp_path / "s.json", history=3))
    assert isinstance(store, FileStore)
    assert store.where == str(tmp_path / "s.json")
    assert store.history == 3


CHILD = """
import asyncio, sys
from pathlib import Path
from gateway.store.file import FileStore
from tests.store.records import big_record

async def main() -> None:
    store = FileStore(Path(sys.argv[1]), history=int(sys.argv[2]))
    await store.open()
    n = store.current().version
    print("open", n, flush=True)
    while True:
        n += 1
        await store.append(big_record(n))
        print(n, flush=True)  # after append returned: version n is durable

asyncio.run(main())
"""


@pytest.mark.parametrize("after", [1, 3, 6, 10, 15])
def test_kill_9_mid_write_leaves_an_intact_store(tmp_path: Path, after: int) -> None:
    """A writer appending ~450 KB records back to back is killed once it reported `after` more durable versions, in
    five rounds on the same file (each round reopens what the last kill left). Every round the store opens, holds at
    least the last version reported durable, and every record is exactly the one written.

    The pause before each kill is not a wait for anything (nothing is asserted about time): read-then-kill at once
    always lands while the child builds its next record, so the rounds pause 0-8 ms to land the kill at different
    points of the next write (measured: about 40% of kills leave a half-written temp file behind)."""
    path = tmp_path / "routes-store.json"
    history = 8
    for pause in (0.0, 0.001, 0.002, 0.004, 0.008):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(history)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        try:
            first = child.stdout.readline().split()
            assert first[:1] == ["open"], child.stderr.read() if child.stderr else ""
            start = int(first[1])
            # the child holds the lock: a gateway on the same file is refused, naming the child
            with pytest.raises(StoreError, match=re.escape(f"is locked by another gateway (pid {child.pid})")):
                _open_sync(FileStore(path, history))
            durable = start
            while durable < start + after:
                line = child.stdout.readline()
                assert line, "the writer exited: " + (child.stderr.read() if child.stderr else "")
                durable = int(line)
            time.sleep(pause)
            child.send_signal(signal.SIGKILL)
            rest, _ = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == -signal.SIGKILL
        for line in rest.split():  # lines already in the pipe when the kill landed were durable too
            durable = max(durable, int(line))

        store = FileStore(path, history)
        _open_sync(store)
        try:
            current = store.current().version
            assert current >= durable
            assert current <= durable + 1  # at most the one write the kill interrupted
            kept = list(store.versions())
            assert len(kept) == min(history, current + 1)
            for record in kept:
                assert record == big_record(record.version) or (record.version, record.author) == (0, "store")
            assert temps(tmp_path) == []  # open swept what the killed writer left
        finally:
            _close_sync(store)


def _open_sync(store: FileStore) -> None:
    asyncio.run(store.open())


def _close_sync(store: FileStore) -> None:
    asyncio.run(store.close())


async def test_a_symlink_at_the_lock_path_is_refused_and_its_target_left_alone(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = tmp_path / "s.json"
    (tmp_path / "s.json.lock").symlink_to(victim)
    with pytest.raises(StoreError, match="cannot open lock file"):
        await FileStore(path, history=5).open()
    assert victim.read_text() == "precious"


async def test_a_symlink_at_the_store_path_is_not_followed(tmp_path: Path) -> None:
    planted = tmp_path / "planted.json"
    planted.write_bytes(VALID)
    path = tmp_path / "s.json"
    path.symlink_to(planted)
    with pytest.raises(StoreError, match=re.escape(f"store {path} is unreadable")):
        await FileStore(path, history=5).open()


async def test_a_directory_other_users_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(StoreError, match="is writable by other users"):
        await FileStore(shared / "s.json", history=5).open()
    shared.chmod(0o1777)  # sticky, like /tmp: only owners replace files, and the store must be ours
    async with opened(shared / "s.json", 5) as store:
        assert store.current().version == 0
