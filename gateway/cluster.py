"""Which replicas share this gateway's store, and what each serves: heartbeats for `GET /admin/v1/cluster`.

Every replica (its supervisor) writes `<store.key_prefix>replica:<id>` every HEARTBEAT seconds with a TTL of
three beats, holding `{id, host, admin, version, started, seen}`; a replica that stops or loses Redis drops out of
the list once its key expires. The id is made at start (hostname, pid, a random suffix): a restarted replica is
a new one. A store only this gateway writes (memory, file) has no other replicas: the list is this one, from
memory, and nothing is written.

Heartbeats never touch serving: each write is bounded by `store.timeout`, a failure is counted
(gateway_store_errors_total{op="heartbeat"}) and logged once per outage, and the next beat tries again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable
from typing import Any

import orjson
from redis.exceptions import RedisError

from gateway.settings import Settings
from gateway.store import ConfigStore
from gateway.store.base import STORE_ERRORS, now

log = logging.getLogger("sluicegate.cluster")
HEARTBEAT = 1.0  # seconds between heartbeats
TTL_BEATS = 3  # a replica's key lives this many beats: one or two missed beats do not drop it
_SCAN_COUNT = 500
#: what a heartbeat holds, and what the cluster view lists of each replica
FIELDS = ("id", "host", "admin", "version", "started", "seen")


def replica_id() -> str:
    """This replica's id: hostname, pid and a random suffix (two replicas in one pod namespace never collide)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _glob_escaped(text: str) -> str:
    """`text` matched literally by a Redis SCAN MATCH pattern (a key prefix may hold `*`, `?`, `[`)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _well_formed(data: Any) -> bool:
    """A heartbeat as `Cluster.heartbeat` writes it (one written by something else is left out of the view)."""
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in FIELDS if k != "version"):
        return False
    version = data.get("version")
    return isinstance(version, int) and not isinstance(version, bool) and version >= 0


class Cluster:
    """This replica's heartbeat and the view of every replica's. `version()` is the version this replica serves."""

    def __init__(self, store: ConfigStore, settings: Settings, version: Callable[[], int]) -> None:
        self.store, self.version = store, version
        self.timeout = settings.store.timeout
        self.id = replica_id()
        self.host = socket.gethostname()
        self.admin = str(settings.admin.listen)
        self.started = now()
        self.seen = self.started
        self.prefix = settings.store.key_prefix + "replica:"
        self.key = self.prefix + self.id
        self._failing = False

    @property
    def shared(self) -> bool:
        return self.store.shared and getattr(self.store, "client", None) is not None

    def heartbeat(self) -> dict[str, Any]:
        """What this replica's key holds now."""
        return {
            "id": self.id,
            "host": self.host,
            "admin": self.admin,
            "version": self.version(),
            "started": self.started,
            "seen": self.seen,
        }

    async def run(self) -> None:
        """Beat every HEARTBEAT seconds until cancelled (a non-shared store: only `seen` moves)."""
        while True:
            await self.beat()
            await asyncio.sleep(HEARTBEAT)

    async def beat(self) -> bool:
        """Write this replica's heartbeat; False (counted, logged once per outage) when the store did not take it."""
        self.seen = now()
        if not self.shared:
            return True
        client: Any = getattr(self.store, "client")  # noqa: B009 -- a RedisStore's (checked by `shared`)
        ttl_ms = int(HEARTBEAT * TTL_BEATS * 1000)
        try:
            async with asyncio.timeout(self.timeout):
                await client.set(self.key, orjson.dumps(self.heartbeat()), px=ttl_ms)
        except (RedisError, OSError, TimeoutError) as exc:
            STORE_ERRORS.count("heartbeat")
            if not self._failing:
                log.warning("heartbeat to %s failed: %s", self.store.where, exc or type(exc).__name__)
            self._failing = True
            return False
        if self._failing:
            log.info("heartbeat to %s written again", self.store.where)
        self._failing = False
        return True

    async def view(self) -> dict[str, Any]:
        """`GET /admin/v1/cluster`: the replicas seen within the TTL, sorted by id, this one marked `self`, and the
        current version of the store as this replica knows it. `complete` is false when the store could not be
        read (this replica is then listed alone, from memory)."""
        me = {**self.heartbeat(), "self": True}
        replicas: dict[str, dict[str, Any]] = {self.id: me}
        complete = True
        if self.shared:
            try:
                for other in await self._read():
                    if other.get("id") != self.id:
                        replicas[other["id"]] = {**{k: other[k] for k in FIELDS}, "self": False}
            except (RedisError, OSError, TimeoutError) as exc:
                STORE_ERRORS.count("cluster")
                log.warning("cannot list the replicas in %s: %s", self.store.where, exc or type(exc).__name__)
                complete = False
        return {
            "replicas": [replicas[i] for i in sorted(replicas)],
            "current": self.store.current().version,
            "complete": complete,
        }

    async def _read(self) -> list[dict[str, Any]]:
        """Every heartbeat in the store (bounded by the store's timeout); unreadable values are skipped."""
        client: Any = getattr(self.store, "client")  # noqa: B009
        async with asyncio.timeout(self.timeout * 2):  # a scan and a read: each call bounded by the timeout
            keys = [k async for k in client.scan_iter(match=_glob_escaped(self.prefix) + "*", count=_SCAN_COUNT)]
            values = await client.mget(keys) if keys else []
        found = []
        for raw in values:
            if raw is None:  # expired between the scan and the read
                continue
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if _well_formed(data):
                found.append(data)
        return found
