"""Filters' keyed values in Redis, shared by every worker and replica (`state.redis_url`, else `store.redis_url`).

Same semantics as MemoryBackend (gateway.services.state); what differs is that Redis can fail. Every call is
bounded by `state.timeout` (socket timeouts plus one asyncio deadline over the whole call, reconnects included)
and is never retried here: a failure or timeout raises `StateUnavailable` at once, and the filter chooses to fail
open or closed. No retry storm: a filter that calls again pays one timeout per call.

Keys are `<state.key_prefix>state:<namespaced key>`: the `state:` segment keeps filter values apart from the route
store's keys when both use the default prefix. Values are canonical JSON (orjson, keys sorted). The atomic
operations beyond GET/SET/DEL are Lua scripts (a script runs alone on the server):

- `incr` with a ttl: EXISTS, INCRBY, and PEXPIRE only if the key did not exist: the expiry is set once, when the
  key is created, never extended. Without a ttl it is a plain INCRBY (which keeps any expiry).
- `compare_and_set`: GET, compare the bytes with the canonical JSON of `expected` (or absence), SET with PX.
- A filter's own scripts: redis-py's `register_script` (EVALSHA, loading the script again on NOSCRIPT, e.g.
  after a Redis restart emptied its script cache).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError, ResponseError

from gateway.services.state import PythonScript, StateUnavailable, encode, ttl_ms
from gateway.settings import Settings

T = TypeVar("T")
#: What model_dump(mode="json") makes of a SecretStr.
MASKED = "**********"
log = logging.getLogger("sluicegate.state")

INCR_CREATING = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if created then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value
"""

COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
if ARGV[1] == 'absent' then
  if current then return 0 end
elseif current ~= ARGV[2] then
  return 0
end
if ARGV[4] == '' then redis.call('SET', KEYS[1], ARGV[3]) else redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) end
return 1
"""


class RedisBackend:
    """A StateBackend on one Redis (a URL redis-py understands: redis://, rediss://, unix://)."""

    def __init__(self, url: str, *, key_prefix: str = "sluicegate:", timeout: float = 0.25) -> None:
        self.timeout = timeout
        self._prefix = f"{key_prefix}state:"
        # retries off: the caller's deadline is `timeout` for the whole call, and the filter decides what next
        self._redis: Redis = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self._incr = self._redis.register_script(INCR_CREATING)
        self._cas = self._redis.register_script(COMPARE_AND_SET)
        self._scripts: dict[str, AsyncScript] = {}

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def _call(self, op: str, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except ResponseError as exc:
            if "not an integer" in str(exc):
                raise ValueError(f"state value is not an integer ({op})") from None
            raise StateUnavailable(f"state {op}: Redis refused it: {exc}") from exc
        except (RedisError, OSError, TimeoutError) as exc:
            # the message names host and port at most, never the URL's password
            raise StateUnavailable(f"state {op}: Redis unavailable: {type(exc).__name__}: {exc}") from exc

    async def get(self, key: str) -> Any:
        raw = await self._call("get", self._redis.get(self._key(key)))
        return None if raw is None else orjson.loads(raw)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        px = None if ttl is None else ttl_ms(ttl)
        await self._call("set", self._redis.set(self._key(key), encode(value), px=px))

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        if ttl is None:
            return int(await self._call("incr", self._redis.incrby(self._key(key), amount)))
        value = await self._call("incr", self._incr(keys=[self._key(key)], args=[amount, ttl_ms(ttl)]))
        return int(value)

    async def compare_and_set(self, key: str, expected: Any, new: Any, ttl: float | None = None) -> bool:
        args = [
            "absent" if expected is None else "value",
            b"" if expected is None else encode(expected),
            encode(new),
            "" if ttl is None else ttl_ms(ttl),
        ]
        return bool(await self._call("compare_and_set", self._cas(keys=[self._key(key)], args=args)))

    async def delete(self, key: str) -> None:
        await self._call("delete", self._redis.delete(self._key(key)))

    def script(self, name: str, lua: str, python: PythonScript) -> None:
        """Register `name`'s Lua source (the Python twin is for memory)."""
        self._scripts[name] = self._redis.register_script(lua)

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        script = self._scripts.get(name)
        if script is None:
            raise KeyError(f"no state script {name!r} registered")
        return await self._call(f"script {name}", script(keys=[self._key(k) for k in keys], args=list(args)))

    async def aclose(self) -> None:
        await self._redis.aclose()


def shared_backend(settings: Settings) -> RedisBackend | None:
    """The Redis backend `settings` ask for (`state.redis_url`, defaulting to `store.redis_url`), or None for this
    worker's memory. Nothing connects yet: the first call does, so a worker starts while Redis is down."""
    url = settings.state_redis_url()
    if url is None:
        return None
    if url.get_secret_value() == MASKED:
        # the start message was made with model_dump, which masks secrets, instead of Settings.for_workers()
        raise ValueError("state.redis_url reached this worker masked: its settings must come from for_workers()")
    return RedisBackend(url.get_secret_value(), key_prefix=settings.state_key_prefix(), timeout=settings.state.timeout)
