"""The Redis store: one versioned config shared by every replica, written with compare-and-set, announced by
pub/sub and polled as a safety net.

Keys (all in one Redis Cluster hash slot, by the `{config}` hash tag, so the Lua scripts may touch them together):

    <prefix>{config}:current    the current version number
    <prefix>{config}:key        the store's key (hex) for keyed checksums and digests (VersionRecord)
    <prefix>{config}:v:<n>      VersionRecord.to_data() of version n, as JSON (the last `history` versions)
    <prefix>config:versions     the pub/sub channel a new version number is published on

Reads (`current`, `versions`, `get`) answer from this replica's copy of the kept versions, so views and serving
never wait on Redis; `refresh` brings the copy up to date. Every Redis call is bounded by `timeout`; a failure is
a StoreError (the admin API answers 503) and never touches what serves.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.store.base import (
    STORE_ERRORS,
    StoreError,
    VersionConflict,
    VersionRecord,
    counted,
    fresh_record,
    identity,
)
from gateway.store.memory import KeptVersions, appended

log = logging.getLogger("sluicegate.store")

# Seed a new store: version 0 and the key, only where there is no current version (a second replica racing to
# seed finds it set and seeds nothing). Returns 1 when this call seeded.
_SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'NX')
redis.call('SET', KEYS[3], ARGV[2])
redis.call('SET', KEYS[1], ARGV[3])
return 1
"""

# Append version ARGV[3] only if the current version is still ARGV[1], made at the time and with the checksum in
# ARGV[5] (compare-and-set: after Redis restarted empty and a replica that lagged seeded it again, one number can
# name two versions),
# prune the version that falls out of the history, announce it. Returns -2 when appended, -1 when there is no
# current version (Redis lost its data), else the current version that won.
_APPEND = """
local current = redis.call('GET', KEYS[1])
if not current then return -1 end
if tonumber(current) ~= tonumber(ARGV[1]) then return tonumber(current) end
local base = redis.call('GET', KEYS[4])
if not base then return tonumber(current) end
local record = cjson.decode(base)
if record['time'] .. '/' .. record['checksum'] ~= ARGV[5] then return tonumber(current) end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[3])
if KEYS[3] ~= KEYS[2] then redis.call('DEL', KEYS[3]) end
redis.call('PUBLISH', ARGV[4], ARGV[3])
return -2
"""


def shown_url(url: str) -> str:
    """`url` without its credentials, for messages and logs (the password never leaves the settings)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    where = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{where}{parts.path}"


class RedisStore(KeptVersions):
    """The versions of one config in Redis at `url`, under `prefix`; this replica keeps a copy of the kept ones."""

    shared = True

    def __init__(self, url: str, prefix: str, history: int, timeout: float) -> None:
        self.url, self.history, self.timeout = url, history, timeout
        self.where = shown_url(url)
        base = f"{prefix}{{config}}:"
        self.current_key, self.key_key, self._record_prefix = base + "current", base + "key", base + "v:"
        self.channel = f"{prefix}config:versions"
        self._kept = ()
        self.key = b""
        self.up = False
        # No retries inside the client: each call has one deadline (`timeout`), so a write answers 503 within it
        # (redis-py's default retries stretched a frozen Redis to twice that); the poll is the retry.
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self._seed = self.client.register_script(_SEED)
        self._append = self.client.register_script(_APPEND)

    def record_key(self, version: int) -> str:
        return f"{self._record_prefix}{version}"

    # -- the protocol ------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Seed the store if Redis has none, then load the kept versions. StoreError when Redis cannot be reached
        or holds something that is not a store (naming the URL without its password)."""
        fresh = fresh_record()
        await self._call(
            "open",
            self._seed(
                keys=[self.current_key, self.key_key, self.record_key(0)],
                args=[secrets.token_hex(32), orjson.dumps(fresh.to_data()), 0],
            ),
        )
        await self._load()

    async def append(self, record: VersionRecord) -> None:
        kept = appended(self._kept, record, self.history, self.where)  # checks the number against our copy
        pruned = record.version - self.history  # the version that falls out of the history (none while negative)
        doomed = self.record_key(pruned) if pruned >= 0 else self.record_key(record.version)
        won = await self._call(
            "append",
            self._append(
                keys=[self.current_key, self.record_key(record.version), doomed, self.record_key(record.version - 1)],
                args=[
                    record.version - 1,
                    orjson.dumps(record.to_data()),
                    record.version,
                    self.channel,
                    f"{self._kept[-1].time}/{self._kept[-1].checksum}",
                ],
            ),
        )
        if won == -1:
            STORE_ERRORS.count("append")
            raise StoreError(f"store {self.where} has no current version (Redis lost its data?); refresh first")
        if won != -2:
            raise VersionConflict(int(won))
        self._kept = kept

    async def refresh(self, deadline: float | None = None) -> bool:
        """Bring this replica's copy up to the current version in Redis; True when it moved. When Redis has no
        current version any more (restarted empty), seed it again with this replica's current version (the last
        good one) and say so. StoreError when Redis cannot be reached."""
        mine = self._kept[-1] if self._kept else None
        ours = self.record_key(mine.version if mine else 0)
        current, record = await self._call("refresh", self.client.mget(self.current_key, ours), deadline=deadline)
        if current is None:
            await self._reseed()
            return False
        # The same number is not enough: after an empty restart seeded by a replica that lagged, it may name
        # another version (identity: number, time, checksum).
        if mine is not None and int(current) == mine.version and record is not None and _same(record, mine):
            return False
        await self._load()
        return True

    async def close(self) -> None:
        await self.client.aclose()

    async def watch(self, wake: Callable[[], None], poll: float) -> None:
        """Call `wake` on every version announced on the channel, and every `poll` seconds whatever happens (the
        safety net for a missed message, a dropped subscription, an outage). Runs until cancelled."""
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    while True:
                        await pubsub.get_message(ignore_subscribe_messages=True, timeout=poll)
                        wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever breaks the subscription, subscribe again
                if not isinstance(exc, RedisError | OSError):
                    log.warning("store %s: the subscription failed (%r); subscribing again", self.where, exc)
                wake()  # the poll notices the outage (and its end) and reports it
                await asyncio.sleep(poll)

    # -- the rest ----------------------------------------------------------------------------------------------

    async def _load(self) -> None:
        with counted("load"):
            await self._loaded()

    async def _loaded(self) -> None:
        key, current = await self._call("load", self.client.mget(self.key_key, self.current_key), count=False)
        if key is None or current is None:
            raise StoreError(f"store {self.where} has no store under {self.current_key!r}")
        version = int(current)
        numbers = list(range(max(0, version - self.history + 1), version + 1))
        raw = await self._call("load", self.client.mget([self.record_key(n) for n in numbers]), count=False)
        try:
            kept = tuple(VersionRecord.from_data(orjson.loads(r)) for r in raw if r is not None)
            self.key = bytes.fromhex(key.decode())
        except (ValueError, TypeError, KeyError) as exc:
            raise StoreError(f"store {self.where} is corrupt: {exc}") from None
        if not kept or kept[-1].version != version:
            raise StoreError(f"store {self.where} is corrupt: version {version} is missing")
        self._kept = kept
        self.up = True

    async def _reseed(self) -> None:
        if not self._kept:
            await self.open()
            return
        record = self._kept[-1]
        seeded = await self._call(
            "reseed",
            self._seed(
                keys=[self.current_key, self.key_key, self.record_key(record.version)],
                args=[self.key.hex(), orjson.dumps(record.to_data()), record.version],
            ),
        )
        # Every replica that found Redis empty tries; the seed script lets only the first write. Only that one
        # says it seeded (an operator counting these lines counts seedings), the others that they followed it.
        if seeded == 1:
            log.warning(
                "store %s has no config (Redis restarted empty?): seeding it again with version %d, the last good one",
                self.where,
                record.version,
            )
        else:
            log.info("store %s had no config and another replica seeded it again; following it", self.where)
        await self._load()

    async def _call(self, op: str, pending: Any, count: bool = True, deadline: float | None = None) -> Any:
        """Await one Redis call, bounded by the timeout; StoreError (naming the operation, counted as an error of
        it unless the caller counts) on any failure. `up` says whether the last call reached Redis."""
        try:
            async with asyncio.timeout(deadline or self.timeout):
                answer = await pending
        except (RedisError, OSError, TimeoutError) as exc:
            self.up = False
            if count:
                STORE_ERRORS.count(op)
            raise StoreError(f"store {self.where} is unavailable ({op}): {exc or type(exc).__name__}") from None
        self.up = True
        return answer


def _same(raw: bytes, record: VersionRecord) -> bool:
    """Whether the stored JSON `raw` is the version `record` (not another one under the same number)."""
    try:
        return identity(VersionRecord.from_data(orjson.loads(raw))) == identity(record)
    except (ValueError, TypeError, KeyError):
        return False
