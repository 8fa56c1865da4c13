"""The file store: the whole history in one JSON document, rewritten atomically on every append, one gateway per file.

    {"format": "sluicegate-store/1", "versions": [VersionRecord.to_data(), ...]}   (oldest first, consecutive)

Atomic means `kill -9` (or a power cut) at any moment leaves either the old or the new document, never a mix: the
new document goes to a temp file in the same directory (same filesystem, so the rename is atomic), is fsynced, is
renamed over the store, and then the directory is fsynced so the rename itself survives a power cut. A store that
does not parse is never overwritten: the gateway refuses to start and says how to recover.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import re
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

import orjson

from gateway.store.base import StoreError, VersionRecord, counted, fresh_record
from gateway.store.memory import KeptVersions, appended

FORMAT = "sluicegate-store/1"

#: the file may hold secrets a user posted in dynamic routes (upstream credentials, API keys): owner only
FILE_MODE = 0o600


def encode(kept: Sequence[VersionRecord], key: bytes) -> bytes:
    return orjson.dumps({"format": FORMAT, "key": key.hex(), "versions": [r.to_data() for r in kept]})


def decode(raw: bytes) -> tuple[bytes, tuple[VersionRecord, ...]]:
    """The key and the versions in a store document. Raises ValueError with a one-line reason for anything
    `encode` did not write (not JSON, another format, no key, a record that does not load, versions that are not
    consecutive)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise ValueError(f"the document is a JSON {type(data).__name__}, not an object")
    if data.get("format") != FORMAT:
        raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
    key = data.get("key")
    if not isinstance(key, str) or not re.fullmatch(r"[0-9a-f]{64}", key):
        raise ValueError("key must be 64 hex digits")
    items = data.get("versions")
    if not isinstance(items, list) or not items:
        raise ValueError("versions must be a non-empty list")
    kept: list[VersionRecord] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"versions[{i}] is not an object")
        try:
            record = VersionRecord.from_data(item)
        except KeyError as e:
            raise ValueError(f"versions[{i}]: missing {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise ValueError(f"versions[{i}]: {e}") from None
        if kept and record.version != kept[-1].version + 1:
            raise ValueError(f"versions[{i}] is version {record.version}, expected {kept[-1].version + 1}")
        kept.append(record)
    return bytes.fromhex(key), tuple(kept)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore(KeptVersions):
    """The history in one JSON file at `path` (its directory must exist), locked for this gateway while open."""

    def __init__(self, path: Path, history: int) -> None:
        if history < 1:
            raise ValueError("history must keep at least the current version")
        self.path = Path(path)
        self.history = history
        self.where = str(self.path)
        # The lock is on a sibling file, not on the store itself: every append renames a new file over the store,
        # so a lock on the store's inode would guard a file that is no longer at `path`, and a second gateway
        # opening `path` after the first append would lock the new inode and get in. The lock file is never
        # replaced or deleted (deleting it would race the same way), so one inode stands for `path` for good.
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd: int | None = None
        self._kept: tuple[VersionRecord, ...] = ()
        self.key = b""  # read or made by open()

    # -- the protocol ------------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._lock_fd is not None:
            return
        with counted("open"):
            await asyncio.to_thread(self._open)

    async def append(self, record: VersionRecord) -> None:
        with counted("append"):
            if self._lock_fd is None:
                raise StoreError(f"store {self.where} is not open")
            kept = appended(self._kept, record, self.history, self.where)
            # The thread also swaps `_kept` once the document is durable (one reference assignment, atomic for
            # readers on the loop): if the awaiting task is cancelled mid-write the write still finishes, and memory
            # must then say what the disk says, or the next append would number its version from a stale current.
            await asyncio.to_thread(self._commit, kept)

    async def close(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor of the lock file releases the flock

    # -- blocking work, run in a thread ------------------------------------------------------------------------

    def _open(self) -> None:
        fd = self._lock()
        try:
            self._remove_stale_temps()
            try:
                raw = self._read()
            except FileNotFoundError:
                kept: tuple[VersionRecord, ...] = (fresh_record(),)
                self.key = secrets.token_bytes(32)
                self._write(encode(kept, self.key))
            except OSError as e:
                raise StoreError(f"store {self.path} is unreadable: {e.strerror or e}; refusing to start") from e
            else:
                try:
                    self.key, kept = decode(raw)
                except ValueError as e:
                    raise StoreError(
                        f"store {self.path} is corrupt: {e}; refusing to start"
                        " (move it away to start with an empty store)"
                    ) from None
        except BaseException:
            os.close(fd)
            raise
        # a history setting lowered since the last run prunes here; the file follows at the next append
        self._kept = kept[-self.history :]
        self._lock_fd = fd

    def _lock(self) -> int:
        """Take the exclusive lock (without waiting) and write our pid in the lock file for the next one's message."""
        self._check_directory()
        try:
            # SECURITY: O_NOFOLLOW: a symlink planted at the lock path would have us truncate its target.
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
        except OSError as e:
            raise StoreError(f"store {self.path}: cannot open lock file {self.lock_path}: {e.strerror or e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                by = f" (pid {holder})" if holder else ""
                raise StoreError(f"store {self.path} is locked by another gateway{by}") from None
            raise StoreError(f"store {self.path}: cannot lock {self.lock_path}: {e.strerror or e}") from e
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid is only for the message a second gateway shows; the lock itself is held
        return fd

    def _check_directory(self) -> None:
        """The store's directory exists and no other user can replace files in it (else anyone could plant
        dynamic routes): not writable by group or others, unless sticky (like /tmp), where only owners replace."""
        directory = self.path.parent
        try:
            info = directory.stat()
        except FileNotFoundError:
            raise StoreError(f"store {self.path}: directory {directory} does not exist") from None
        except OSError as e:
            raise StoreError(f"store {self.path}: directory {directory}: {e.strerror or e}") from e
        if not stat.S_ISDIR(info.st_mode):
            raise StoreError(f"store {self.path}: directory {directory} does not exist")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
            raise StoreError(
                f"store {self.path}: directory {directory} is writable by other users, who could replace the store; "
                "use a directory only this user can write"
            )

    def _read(self) -> bytes:
        """The store's bytes. SECURITY: never through a symlink, and only a file of ours (in a sticky directory
        such as /tmp another user could have put one there first)."""
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                raise OSError(errno.EPERM, "not a regular file owned by this user")
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _temp_prefix(self) -> str:
        return f".{self.path.name}."

    def _remove_stale_temps(self) -> None:
        """Temp files a killed writer left behind. Safe only under the lock: nobody else writes temps for `path`."""
        prefix = self._temp_prefix()
        try:
            entries = [e for e in self.path.parent.iterdir() if e.name.startswith(prefix) and e.name.endswith(".tmp")]
        except OSError:
            return  # a leftover is harmless (it is never read); the read that follows reports a real problem
        for entry in entries:
            with contextlib.suppress(OSError):
                entry.unlink()

    def _commit(self, kept: tuple[VersionRecord, ...]) -> None:
        """Make `kept` the durable document, then the in-memory history. Raises StoreError with both unchanged."""
        old = self._kept
        self._write(encode(kept, self.key), restore=encode(old, self.key))
        self._kept = kept

    def _write(self, document: bytes, restore: bytes | None = None) -> None:
        """Replace the store with `document` atomically and durably. Raises StoreError, the store unchanged."""
        directory = self.path.parent
        temp = directory / f"{self._temp_prefix()}{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
            try:
                view = memoryview(document)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
        except OSError as e:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            raise StoreError(f"store {self.path} cannot be written: {e.strerror or e}") from e
        try:
            _fsync_dir(directory)
        except OSError as e:
            # The new document is at `path` but its rename may not survive a power cut. Put the old one back, so
            # the caller's "nothing changed" holds even for a reader of the file (best effort: the disk is failing).
            if restore is not None:
                with contextlib.suppress(StoreError):
                    self._write(restore)
            raise StoreError(f"store {self.path} cannot be written: fsync of {directory}: {e.strerror or e}") from e


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
