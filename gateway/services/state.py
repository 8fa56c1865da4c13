"""Keyed per-filter state: values in this worker's memory or in Redis shared by every worker and replica.

Two kinds of state, both namespaced by the filter's name so two filters never share a key by accident:

- Values (`get`, `set`, `incr`, `compare_and_set`, `delete`, and scripts through `script`/`run`): async, so the
  same calls go to memory (`MemoryBackend`, the default: per worker) or to Redis (`RedisBackend` in
  gateway.services.redis_state, when `state.redis_url` or `store.redis_url` is set: shared). Both backends give
  the same answers to the same calls; tests/services/test_redis_state.py runs one behavioural suite against both.
  A shared backend can fail: every value call may raise `StateUnavailable`, and each filter decides whether that
  lets the request through (fail open) or refuses it (fail closed). Memory never raises it.
- Live objects (`local`, keyed by any hashable): an object that only makes sense in this process (a circuit
  breaker, a retry budget's in-flight counts), kept by key and by the config it was made from. A reload that
  rebuilds a filter with the same key and an equal config gets the same object back, so its state carries over;
  a changed config gets a new one. Entries are weak: an object no built filter refers to any more (its route was
  removed) goes away with the old route table. Never shared between workers, whatever the backend.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import orjson

T = TypeVar("T")


class StateUnavailable(Exception):
    """The shared state store did not answer in time or failed (Redis down, a timeout, a refused command).

    Raised by every value operation of a shared backend, never by memory. A filter catches it and chooses
    explicitly: fail open (let the request through without the state) or fail closed (refuse it, e.g. 503)."""


def encode(value: Any) -> bytes:
    """A value's canonical JSON (keys sorted): what Redis stores and what compare-and-set compares, so both
    backends agree on which values are equal ({"a": 1, "b": 2} equals {"b": 2, "a": 1}; 1 and 1.0 differ)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def ttl_ms(ttl: float) -> int:
    """A ttl in whole milliseconds (Redis' PX), at least 1; a ttl must be positive."""
    if not ttl > 0:
        raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")
    return max(1, math.ceil(ttl * 1000))


class ScriptStore(Protocol):
    """What a Python script (the memory twin of a Lua script) sees: synchronous operations on full keys (the
    `keys` it was given), run without any other state call in between, as Redis runs a Lua script."""

    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any, ttl: float | None = None) -> None: ...

    def delete(self, key: str) -> None: ...

    def now(self) -> float:
        """Seconds on the backend's clock (the Lua twin reads Redis' `TIME`); only differences mean anything."""
        ...


#: A script's memory twin: `(store, keys, args) -> result`. It gets the namespaced keys and the args as passed.
PythonScript = Callable[[ScriptStore, list[str], list[Any]], Any]


class StateBackend(Protocol):
    """Where a worker's keyed values live. Keys arrive namespaced (KeyedState); values are JSON-serialisable."""

    async def get(self, key: str) -> Any: ...

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None: ...

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int: ...

    async def compare_and_set(self, key: str, expected: Any, new: Any, ttl: float | None = None) -> bool: ...

    async def delete(self, key: str) -> None: ...

    def script(self, name: str, lua: str, python: PythonScript) -> None: ...

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any: ...

    async def aclose(self) -> None: ...


class MemoryBackend:
    """This worker's values in a dict, expiring on read by `clock`. Single-threaded asyncio makes every operation
    atomic: nothing awaits between reading and writing a key, and a Python script runs to its end uninterrupted.
    Values are kept as given (not copied): treat what `get` returns as read-only, as a Redis copy would be."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._values: dict[str, tuple[Any, float | None]] = {}
        self._scripts: dict[str, PythonScript] = {}

    # The synchronous operations: the async API and Python scripts (ScriptStore) share them.

    def now(self) -> float:
        return self._clock()

    def _entry(self, key: str) -> tuple[Any, float | None] | None:
        entry = self._values.get(key)
        if entry is not None and entry[1] is not None and self._clock() >= entry[1]:
            del self._values[key]
            return None
        return entry

    def _get(self, key: str) -> Any:
        entry = self._entry(key)
        return None if entry is None else entry[0]

    def _set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self._values[key] = (value, None if ttl is None else self._clock() + ttl_ms(ttl) / 1000)

    def _delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def get(self, key: str) -> Any:
        return self._get(key)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self._set(key, value, ttl)

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add `amount` (a missing key counts as 0). `ttl` applies only when this call creates the key; an
        existing key keeps its expiry (or none). A value that is not an integer: ValueError, as Redis' INCRBY."""
        if ttl is not None:
            ttl_ms(ttl)  # a bad ttl is refused whether or not it would apply, as Redis' script arguments are
        entry = self._entry(key)
        if entry is None:
            self._set(key, amount, ttl)
            return amount
        current, expires = entry
        if not isinstance(current, int) or isinstance(current, bool):
            raise ValueError(f"state value {key!r} is not an integer")
        self._values[key] = (current + amount, expires)
        return current + amount

    async def compare_and_set(self, key: str, expected: Any, new: Any, ttl: float | None = None) -> bool:
        """Store `new` (expiring after `ttl`, or never) if the value is `expected` (None: the key is absent),
        compared as canonical JSON; True if it did."""
        if ttl is not None:
            ttl_ms(ttl)
        entry = self._entry(key)
        if expected is None:
            if entry is not None:
                return False
        elif entry is None or encode(entry[0]) != encode(expected):
            return False
        self._set(key, new, ttl)
        return True

    async def delete(self, key: str) -> None:
        self._delete(key)

    def script(self, name: str, lua: str, python: PythonScript) -> None:
        """Register `name`'s Python twin (memory runs it; the Lua source is for Redis)."""
        self._scripts[name] = python

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        script = self._scripts.get(name)
        if script is None:
            raise KeyError(f"no state script {name!r} registered")
        return script(_MemoryScriptStore(self), list(keys), list(args))

    async def aclose(self) -> None:
        return None


class _MemoryScriptStore:
    """The ScriptStore a Python script gets over a MemoryBackend."""

    def __init__(self, backend: MemoryBackend) -> None:
        self._backend = backend

    def get(self, key: str) -> Any:
        return self._backend._get(key)

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self._backend._set(key, value, ttl)

    def delete(self, key: str) -> None:
        self._backend._delete(key)

    def now(self) -> float:
        return self._backend.now()


class LocalObjects:
    """This worker's live objects by (namespace, key), weakly held; see the module docstring."""

    def __init__(self) -> None:
        self._live: weakref.WeakValueDictionary[tuple[str, Hashable], Any] = weakref.WeakValueDictionary()
        self._configs: dict[tuple[str, Hashable], object] = {}

    def get(self, namespace: str, key: Hashable, config: object, make: Callable[[], T]) -> T:
        full = (namespace, key)
        live = self._live.get(full)
        if live is not None and self._configs.get(full) == config:
            return live  # type: ignore[no-any-return]
        made = make()
        self._live[full] = made  # raises TypeError for an object that cannot be weakly referenced (a plain int)
        self._configs[full] = config
        weakref.finalize(made, self._forget, full)
        return made

    def find(self, namespace: str, key: Hashable) -> Any:
        return self._live.get((namespace, key))

    def items(self, namespace: str) -> Iterator[tuple[Hashable, Any]]:
        for (ns, key), value in list(self._live.items()):
            if ns == namespace:
                yield key, value

    def clear(self, namespace: str) -> None:
        for key, _ in list(self.items(namespace)):
            self._live.pop((namespace, key), None)
            self._configs.pop((namespace, key), None)

    def _forget(self, full: tuple[str, Hashable]) -> None:
        if full not in self._live:  # not replaced by a newer object under the same key
            self._configs.pop(full, None)


class KeyedState:
    """A filter's view of the worker's state: its values and live objects under its own namespace.

    Values are namespaced by the filter's name (`<Filter>:<key>`), shared by every route using the filter: a
    per-client limit across routes. `route` is the same filter's view namespaced by the route too
    (`<Filter>@<route id>:<key>`), for state that belongs to one route. A Redis backend prefixes every key with
    `state.key_prefix` and `state:`."""

    def __init__(self, backend: StateBackend, local: LocalObjects, namespace: str, route_id: str = "") -> None:
        self._backend, self._local, self.namespace, self.route_id = backend, local, namespace, route_id
        self._values = f"{namespace}:"

    @property
    def route(self) -> KeyedState:
        """This filter's values on this route only (live objects are the filter's, as in the base view)."""
        view = KeyedState(self._backend, self._local, self.namespace, self.route_id)
        # quoted: a route id with ':' or '@' must not make two routes' keys meet
        view._values = f"{self.namespace}@{quote(self.route_id, safe='')}:"
        return view

    def _key(self, key: str) -> str:
        return self._values + key

    async def get(self, key: str) -> Any:
        """The value under `key`, or None."""
        return await self._backend.get(self._key(key))

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store a JSON-serialisable value, optionally expiring after `ttl` s (else never; a set clears an expiry)."""
        await self._backend.set(self._key(key), value, ttl)

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add to an integer value (missing: 0) and return the result, atomically. `ttl` sets the expiry only when
        this call creates the key (a fixed window: `incr(f"{client}:{minute}", ttl=60)`); it never extends one. A
        value that is not an integer raises ValueError."""
        return await self._backend.incr(self._key(key), amount, ttl)

    async def compare_and_set(self, key: str, expected: Any, new: Any, ttl: float | None = None) -> bool:
        """Atomically replace the value with `new` if it equals `expected` (as canonical JSON; `expected=None`
        means "the key is absent"), expiring after `ttl` or never. True if it was replaced; of many concurrent
        calls expecting the same value, exactly one wins."""
        return await self._backend.compare_and_set(self._key(key), expected, new, ttl)

    async def delete(self, key: str) -> None:
        await self._backend.delete(self._key(key))

    def script(self, name: str, lua: str, python: PythonScript) -> None:
        """Register an atomic script under `name` (at build time): its Lua source for Redis and its Python twin for
        memory, which must give the same answers (test both: see docs/plugins.md). Registering again replaces.
        Scripts are the filter's: its `route` view runs the same ones."""
        self._backend.script(f"{self.namespace}:{name}", lua, python)

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run script `name` on `keys` (namespaced like every key here) with `args`: atomically, nothing else
        touching the store meanwhile. Lua sees the args as strings and returns integers (numbers are truncated),
        strings or lists of them; the Python twin gets the args as passed and should return the same."""
        return await self._backend.run(f"{self.namespace}:{name}", [self._key(k) for k in keys], list(args))

    def local(self, key: Hashable, config: object, make: Callable[[], T]) -> T:
        """This worker's live object for `key`: the existing one when it was made from an equal `config`, else a
        new one from `make()` (kept weakly: it lives as long as a built filter holds it)."""
        return self._local.get(self.namespace, key, config, make)

    def find(self, key: Hashable) -> Any:
        """The live object for `key` if one exists (admin views and tests), else None."""
        return self._local.find(self.namespace, key)

    def live(self) -> Iterator[tuple[Hashable, Any]]:
        """Every live object of this namespace, by key."""
        return self._local.items(self.namespace)

    def forget(self) -> None:
        """Forget every live object of this namespace (tests): filters already built keep theirs."""
        self._local.clear(self.namespace)
