"""Config as the admin APIs show it: every route marked with its source, secrets redacted (gateway.config.redact).

Views are deterministic functions of a version (no time, no worker state): the same version gives the same bytes.
"""

from __future__ import annotations

from typing import Any

from gateway.config.definitions import GatewayConfig, RouteDefinition
from gateway.config.redact import redact_view, redacted_routes
from gateway.store import VersionRecord

ROUTE_FIELDS = ("uri", "order", "predicates", "filters", "metadata", "source")


def route_views(config: GatewayConfig) -> list[dict[str, Any]]:
    """Every route of `config`, static first, redacted, each with `source` (static or dynamic)."""
    shown = redacted_routes(config)["routes"]
    return [{**view, "source": config.source_of(r.id)} for r, view in zip(config.routes, shown, strict=True)]


def config_view(config: GatewayConfig, version: int) -> dict[str, Any]:
    """`GET /admin/v1/config`: the whole current config with its version."""
    view = redacted_routes(config)
    return {"version": version, **view, "routes": route_views(config)}


def record_routes(record: VersionRecord) -> list[dict[str, Any]]:
    """A stored version's routes, as `route_views` shows the current ones (static ones were stored redacted)."""
    static = [{**dict(view), "source": "static"} for view in record.static]
    dynamic = [{**redact_view(RouteDefinition.from_wire(w)), "source": "dynamic"} for w in record.dynamic]
    return static + dynamic


def record_view(record: VersionRecord) -> dict[str, Any]:
    """`GET /admin/v1/versions/{n}`."""
    return {**record.summary(), "routes": record_routes(record)}


def diff(old: VersionRecord, new: VersionRecord) -> dict[str, Any]:
    """`GET /admin/v1/diff`: routes added, removed and changed, with each changed field's old and new value (as
    views show them: redacted). A field also counts as changed when only a secret in it did (its digest moved)."""
    before = {str(r["id"]): r for r in record_routes(old)}
    after = {str(r["id"]): r for r in record_routes(new)}
    changed = []
    for route_id in (i for i in after if i in before):
        a, b = before[route_id], after[route_id]
        was, now = old.digests.get(route_id, {}), new.digests.get(route_id, {})
        keys = sorted({*a, *b} - {"id"})
        moved = [k for k in keys if a.get(k) != b.get(k) or (k in was and k in now and was[k] != now[k])]
        if moved:
            changed.append({"id": route_id, "fields": {k: {"from": a.get(k), "to": b.get(k)} for k in moved}})
    return {
        "from": old.version,
        "to": new.version,
        "added": [r for i, r in after.items() if i not in before],
        "removed": [r for i, r in before.items() if i not in after],
        "changed": changed,
    }
