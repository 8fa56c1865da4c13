"""The store interface every kind implements (memory, file; Redis with the next issue)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.settings import StoreSettings


class StoreError(Exception):
    """The store cannot be opened or written (corrupt, unreadable, locked by another gateway, disk full).

    The message is one line that names the store (its path for a file) and the reason.
    """


class VersionConflict(StoreError):
    """An append lost its compare-and-set: another replica wrote a version first (`current` is the winner's)."""

    def __init__(self, current: int) -> None:
        super().__init__(f"another replica wrote version {current} first")
        self.current = current


@dataclass(frozen=True)
class VersionRecord:
    """One version of the gateway's routes, as the store keeps it (JSON-able through `to_data`/`from_data`)."""

    version: int
    time: str  # RFC 3339, UTC, milliseconds: "2026-12-07T23:40:00.123Z" (seconds before: "2026-12-07T23:40:00Z")
    author: str  # a token's name, `file` for a routes.yaml reload, `store` for version 0
    reason: str
    checksum: str  # sha256 of the whole config that served at this version ("" for version 0)
    #: dynamic routes as written (route-shape JSON data, in order): what a rollback restores
    dynamic: tuple[Mapping[str, Any], ...] = ()
    #: the static routes at this version, redacted (views and diffs only)
    static: tuple[Mapping[str, Any], ...] = ()
    #: ids of the routes this version changed (the audit line and `versions` listing)
    changed: tuple[str, ...] = field(default=())
    #: route id -> field -> keyed digest of the field as it serves (unredacted): a diff sees a changed secret
    digests: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The entry `GET /admin/v1/versions` lists."""
        return {
            "version": self.version,
            "time": self.time,
            "author": self.author,
            "reason": self.reason,
            "checksum": self.checksum,
        }

    def to_data(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "dynamic": [dict(r) for r in self.dynamic],
            "static": [dict(r) for r in self.static],
            "changed": list(self.changed),
            "digests": {route: dict(fields) for route, fields in self.digests.items()},
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> VersionRecord:
        """Raises KeyError, TypeError or ValueError on data `to_data` did not produce."""
        version = data["version"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise ValueError(f"version must be a non-negative integer, got {version!r}")
        for key in ("time", "author", "reason", "checksum"):
            if not isinstance(data[key], str):
                raise TypeError(f"{key} must be a string")
        routes = [data["dynamic"], data["static"]]
        if not all(isinstance(r, list) and all(isinstance(x, dict) for x in r) for r in routes):
            raise TypeError("dynamic and static must be lists of routes")
        digests = data.get("digests", {})
        if not isinstance(digests, dict) or not all(
            isinstance(f, dict) and all(isinstance(d, str) for d in f.values()) for f in digests.values()
        ):
            raise TypeError("digests must map route ids to {field: digest}")
        return cls(
            version,
            data["time"],
            data["author"],
            data["reason"],
            data["checksum"],
            tuple(data["dynamic"]),
            tuple(data["static"]),
            tuple(str(i) for i in data.get("changed", ())),
            digests,
        )


def now() -> str:
    """The time a version is recorded with: RFC 3339, UTC, milliseconds (`2026-12-07T23:40:00.123Z`); precise
    enough to measure how long a version took to reach a worker (gateway_config_propagation_seconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(time: str) -> float | None:
    """A `VersionRecord.time` as seconds since the epoch; None when it is not one (a hand-edited store). Accepts
    the millisecond form `now()` writes and the second form stores written before it."""
    try:
        parsed = datetime.fromisoformat(time.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


class StoreErrors:
    """StoreErrors this process met, by operation (`open`, `append`, `refresh`, `load`, `reseed`, `heartbeat`):
    gateway_store_errors_total{op}. One per process (the supervisor's), like the workers' METRICS."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def count(self, op: str) -> None:
        self.counts[op] = self.counts.get(op, 0) + 1


#: the supervisor's store errors (each store counts its own; the cluster heartbeat counts `heartbeat`)
STORE_ERRORS = StoreErrors()


@contextlib.contextmanager
def counted(op: str) -> Iterator[None]:
    """Count a StoreError raised inside as an error of `op`. A VersionConflict is not one: the store answered, and
    another replica simply wrote first."""
    try:
        yield
    except VersionConflict:
        raise
    except StoreError:
        STORE_ERRORS.count(op)
        raise


def identity(record: VersionRecord) -> str:
    """What tells two versions of the same number apart (stores shared by replicas can hold such: an emptied Redis
    seeded again by a replica that lagged): the number, when it was made and the checksum of what served."""
    return f"{record.version}/{record.time}/{record.checksum}"


def fresh_record() -> VersionRecord:
    """Version 0 of a new store: no routes at all (the first load of routes.yaml makes version 1, author `file`)."""
    return VersionRecord(0, now(), "store", "a new store", "")


class ConfigStore(Protocol):
    """Versions, oldest first, of which the last is current. One writer (the supervisor); every call is awaited
    one at a time under the supervisor's version lock."""

    #: what to name the store in messages: its path, "memory", a Redis URL
    where: str
    #: 32 random bytes made with the store and kept by it (valid once opened): the checksums and route digests
    #: it records are keyed with it, so, shown in the versions views, they reveal nothing of the secrets they cover
    key: bytes

    async def open(self) -> None:
        """Load (or create with `fresh_record()`) the history. Raises StoreError: corrupt or unreadable (naming
        the path and the reason), locked by another gateway."""
        ...

    def current(self) -> VersionRecord: ...

    def versions(self) -> Sequence[VersionRecord]:
        """The kept versions, oldest first (at most `store.history`; older ones are pruned)."""
        ...

    def get(self, version: int) -> VersionRecord | None: ...

    async def append(self, record: VersionRecord) -> None:
        """Make `record` (numbered `current().version + 1`) the current version, durably before returning; on
        StoreError nothing changed (the old current is still current, in memory and on disk)."""
        ...

    async def close(self) -> None:
        """Release what `open` took (the file lock); idempotent."""
        ...

    #: True when other replicas write the same store (Redis): the supervisor then follows it (`refresh`, `watch`)
    shared: bool

    def hold(self, record: VersionRecord) -> None:
        """Answer with `record` as the only version until opened (used when a shared store cannot be reached)."""
        ...

    async def refresh(self, deadline: float | None = None) -> bool:
        """Bring this replica's copy of the versions up to the store's; True when the current version moved."""
        ...

    async def watch(self, wake: Callable[[], None], poll: float) -> None:
        """Call `wake` whenever a newer version may have been stored (and at least every `poll` seconds); runs
        until cancelled. Only a shared store is watched."""
        ...


def open_store(settings: StoreSettings) -> ConfigStore:
    """The store `settings` ask for, not yet opened (`await store.open()`)."""
    if settings.effective_kind() == "redis":
        from gateway.store.redis_store import RedisStore

        assert settings.redis_url is not None  # the settings validator requires a URL for kind redis
        url = settings.redis_url.get_secret_value()
        return RedisStore(url, settings.key_prefix, settings.history, settings.timeout)
    if settings.effective_kind() == "file":
        from gateway.store.file import FileStore

        assert settings.path is not None  # the settings validator requires a path for kind file
        return FileStore(settings.path, settings.history)
    from gateway.store.memory import MemoryStore

    return MemoryStore(settings.history)
