"""How each version of what serves is made: the routes file's config plus the stored dynamic routes, validated
together, recorded in the store and audited. The supervisor hands each version out; this module decides what it is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from gateway.changes import ChangeRefused, Plan, Problem, stored_path, stored_routes
from gateway.config.definitions import GatewayConfig, RouteDefinition, canonical_json
from gateway.config.provenance import redact_message
from gateway.config.redact import credential_texts, redact_view
from gateway.config.snapshot import Snapshot
from gateway.errors import ConfigError
from gateway.registry import Registry
from gateway.routing.compiler import with_dynamic
from gateway.settings import Settings
from gateway.store import ConfigStore, StoreError, VersionConflict, VersionRecord
from gateway.store.base import fresh_record, now

log = logging.getLogger("sluicegate.supervisor")
audit = logging.getLogger("sluicegate.audit")
#: what a config records about where it was read, not what serves: left out of the published checksum
_LOCATION = frozenset({"source", "lines", "route_paths", "defaults_path", "notes", "warnings"})


class VersionsError(Exception):
    """The first version cannot be made (store unreadable or locked, stored routes that no longer fit the file)."""


@dataclass
class Versions:
    """The routes file's config as last loaded (`static`) and the store of versions (`store`, opened)."""

    store: ConfigStore
    registry: Registry
    settings: Settings
    static: GatewayConfig
    #: started without its (shared) store: serving the routes file alone until `recover` succeeds
    degraded: bool = False

    def merged(self, static: GatewayConfig, routes: list[tuple[str, Any]]) -> GatewayConfig:
        return with_dynamic(static, routes, self.registry, self.settings)

    async def open(self) -> Snapshot:
        """Open the store and make the first version to serve: the routes file with the stored dynamic routes (a
        new version, author `file`, when that differs from the stored current one). VersionsError (one line) when
        the store cannot be opened or written, or its routes no longer validate with the file (naming both)."""
        try:
            await self.store.open()
        except StoreError as exc:
            if not (self.store.shared and self.settings.store.start_without_redis):
                raise VersionsError(str(exc)) from None
            return self._without_store(exc)
        if self.settings.store.effective_kind() == "memory":
            log.warning("dynamic routes are kept in memory and will not survive a restart: set store.path to keep them")
        snapshot = await self._settled()
        log.info("routes version %d (store %s)", snapshot.version, self.store.where)
        return snapshot

    def _without_store(self, exc: StoreError) -> Snapshot:
        """store.start_without_redis: serve the routes file alone, as version 0, stored nowhere, until the store
        answers (`recover`). Said at start, on /health/ready and by gateway_store_up."""
        log.warning("%s; serving the routes file only until it answers (store.start_without_redis)", exc)
        self.degraded = True
        self.store.hold(fresh_record())
        return Snapshot.of(self.merged(self.static, []), 0)

    async def recover(self) -> Snapshot:
        """After a start without the store: open it now and make the version to serve (the stored one with this
        routes file; stored as a new version when it differs). StoreError or VersionsError while it cannot."""
        await self.store.open()
        snapshot = await self._settled()
        self.degraded = False
        log.info("store %s answers: routes version %d", self.store.where, snapshot.version)
        return snapshot

    async def _settled(self) -> Snapshot:
        """`_file_version`, again on the store's newer version when another replica (starting with the same file,
        say) stored one first: at most three tries. VersionsError after that, or when the store fails."""
        for _ in range(3):
            try:
                return await self._file_version()
            except VersionConflict:
                try:
                    await self.store.refresh()
                except StoreError as exc:
                    raise VersionsError(str(exc)) from None
        raise VersionsError(f"store {self.store.where}: other replicas kept storing versions meanwhile")

    async def _file_version(self) -> Snapshot:
        """The stored current version with this routes file; stored as a new version when it differs."""
        current = self.store.current()
        try:
            snapshot = Snapshot.of(self.merged(self.static, stored_routes(current)), current.version)
        except ConfigError as exc:
            issues = "; ".join(str(issue) for issue in exc.issues)
            where = self.store.where
            raise VersionsError(f"the stored dynamic routes ({where}) do not fit the routes file: {issues}") from None
        if self.published(snapshot) == current.checksum:
            return snapshot
        snapshot = Snapshot.of(snapshot.config, current.version + 1)
        record = self.record(snapshot, "file", "routes file loaded at start", [r.id for r in self.static.routes])
        try:
            await self.store.append(record)
        except VersionConflict:
            raise
        except StoreError as exc:
            raise VersionsError(str(exc)) from None
        self.audit(record, snapshot.config)
        return snapshot

    def from_file(self, static: GatewayConfig) -> Snapshot:
        """The next version after a reload of the routes file: `static` with the current dynamic routes. Raises
        ConfigError (a dynamic route that no longer fits names both routes)."""
        return Snapshot.of(self.merged(static, stored_routes(self.store.current())), self._next())

    def stored(self, record: VersionRecord) -> Snapshot:
        """A version another replica stored, as this replica serves it: this routes file with its dynamic routes.
        Raises ConfigError when they do not fit."""
        return Snapshot.of(self.merged(self.static, stored_routes(record)), record.version)

    def planned(self, plan: Plan) -> Snapshot:
        """The next version after an admin change. ChangeRefused(400) with every problem by JSON pointer."""
        try:
            config = self.merged(self.static, plan.routes)
        except ConfigError as exc:
            # SECURITY: a validator quotes the value it refuses; one the views would hide is hidden here too.
            hidden = credential_texts(route for _, route in plan.routes) | set(self.static.env_values)
            problems = [Problem(issue.pointer, redact_message(issue.message, hidden)) for issue in exc.issues]
            raise ChangeRefused(400, "the change does not validate", problems) from None
        # Validated at the request's paths (problems point into its body), served at the stored ones, as a reload,
        # rollback or restart merges them: the same routes make the same config and checksum whichever request put
        # them (else a restart sees a change that is none, and a rollback records another checksum).
        paths = tuple(
            stored_path(r.id) if r.id in config.dynamic_ids else config.path_of(i) for i, r in enumerate(config.routes)
        )
        return Snapshot.of(dataclasses.replace(config, route_paths=paths), self._next())

    def _next(self) -> int:
        return self.store.current().version + 1

    def record(self, snapshot: Snapshot, author: str, reason: str, changed: list[str]) -> VersionRecord:
        """What the store keeps of `snapshot`: the dynamic routes as data, the static ones redacted."""
        config = snapshot.config
        dynamic = tuple(r.to_wire() for r in config.routes if r.id in config.dynamic_ids)
        static = tuple(redact_view(r, config.env_values) for r in config.routes if r.id not in config.dynamic_ids)
        changes = tuple(changed)
        # SECURITY: the reason is the client's text and may quote a secret from ${env:...}; the record is shown by
        # the versions views and kept by the store, so it holds the reason redacted, as the audit line shows it.
        reason = redact_message(reason, config.env_values)
        digests = {r.id: {k: self._keyed(canonical_json(v)) for k, v in _fields(r).items()} for r in config.routes}
        published = self.published(snapshot)
        return VersionRecord(snapshot.version, now(), author, reason, published, dynamic, static, changes, digests)

    def published(self, snapshot: Snapshot) -> str:
        """The checksum a version is recorded and shown with, and compared at start: of what serves only (not where
        the file is, its lines or comments), keyed by the store's key. The snapshot's own checksum is a plain sha256
        of everything, secrets included: shown, it would let anyone test guesses offline."""
        content = {k: v for k, v in snapshot.data.items() if k not in _LOCATION}
        return self._keyed(canonical_json(content))

    def _keyed(self, data: bytes) -> str:
        return hmac.new(self.store.key, data, hashlib.sha256).hexdigest()

    def audit(self, record: VersionRecord, config: GatewayConfig) -> None:
        """One line per applied version: who, why, which routes (the reason may quote an env secret: redacted)."""
        reason = redact_message(record.reason, config.env_values)
        audit.info(
            "version %d applied: author=%s reason=%s routes=%s",
            record.version,
            record.author,
            json.dumps(reason),
            # ids JSON-escaped: one stored before ids were checked must not break the line into a forged one
            ",".join(json.dumps(i)[1:-1] for i in record.changed) or "-",
        )


def _fields(route: RouteDefinition) -> dict[str, Any]:
    """The fields of a route a diff compares (as it serves: shortcut text and mapped args)."""
    wire = route.to_wire()
    return {key: wire[key] for key in ("uri", "order", "predicates", "filters", "metadata")}


def changed_ids(before: GatewayConfig, after: GatewayConfig) -> list[str]:
    """The ids of the static routes a reload added, removed or changed."""
    old = {r.id: r.to_wire() for r in before.routes if r.id not in before.dynamic_ids}
    new = {r.id: r.to_wire() for r in after.routes}
    return [i for i in {**old, **new} if old.get(i) != new.get(i)]
