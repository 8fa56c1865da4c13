"""Keyed per-filter state: a memory backend per worker process, behind an interface a Redis backend can fill.

Two kinds of state, both namespaced by the filter's name so two filters never share a key by accident:

- Values (`get`, `set`, `incr`, `delete`): async, so the same calls can go to a shared store (Redis, with the
  cluster issue) without changing a filter. In memory they complete at once.
- Live objects (`local`, keyed by any hashable): an object that only makes sense in this process (a circuit
  breaker, a retry budget's in-flight counts), kept by key and by the config it was made from. A reload that
  rebuilds a filter with the same key and an equal config gets the same object back, so its state carries over;
  a changed config gets a new one. Entries are weak: an object no built filter refers to any more (its route was
  removed) goes away with the old route table. Never shared between workers, whatever the backend.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class StateBackend(Protocol):
    """Where a worker's keyed values live (memory now; a shared store later). Keys are already namespaced."""

    async def get(self, key: str) -> Any: ...

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None: ...

    async def incr(self, key: str, amount: int = 1) -> int: ...

    async def delete(self, key: str) -> None: ...


class MemoryBackend:
    """This worker's values in a dict. `ttl` is accepted for interface parity and enforced on read."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._values: dict[str, tuple[Any, float | None]] = {}

    async def get(self, key: str) -> Any:
        entry = self._values.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and self._clock() >= expires:
            del self._values[key]
            return None
        return value

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self._values[key] = (value, None if ttl is None else self._clock() + ttl)

    async def incr(self, key: str, amount: int = 1) -> int:
        current = await self.get(key)
        value = (current if isinstance(current, int) else 0) + amount
        entry = self._values.get(key)
        self._values[key] = (value, entry[1] if entry is not None else None)
        return value

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)


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
    """A filter's view of the worker's state: its values and live objects under its own namespace."""

    def __init__(self, backend: StateBackend, local: LocalObjects, namespace: str) -> None:
        self._backend, self._local, self.namespace = backend, local, namespace

    def _key(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    async def get(self, key: str) -> Any:
        """The value under `key`, or None."""
        return await self._backend.get(self._key(key))

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store a JSON-serialisable value (a shared backend will need that), optionally expiring after `ttl` s."""
        await self._backend.set(self._key(key), value, ttl)

    async def incr(self, key: str, amount: int = 1) -> int:
        """Add to an integer value (missing: 0) and return the result."""
        return await self._backend.incr(self._key(key), amount)

    async def delete(self, key: str) -> None:
        await self._backend.delete(self._key(key))

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
