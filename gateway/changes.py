"""Changes to the dynamic routes, as the admin API asks for them: from request data to the new list of routes.

Pure functions over plain data: nothing here validates a route (`gateway.routing.compiler.with_dynamic` does, over
the whole config) or touches the running gateway (the supervisor hands the result out). What they decide is which
routes the new version holds, in which order, and which requests are refused before any validation: a static id
(409), an unknown id to delete (404), malformed operations, the redaction marker and control characters in a new
id (400, with a JSON pointer).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.config.definitions import RouteDefinition
from gateway.config.provenance import REDACTED
from gateway.config.source import join
from gateway.errors import ConfigIssue
from gateway.routing.scg_rules import route_enabled
from gateway.store import VersionRecord

#: the YAML path a stored route's problems are reported at (a reload or rollback that no longer validates)
STORED = "dynamic routes"
MAX_OPERATIONS = 1000


@dataclass(frozen=True)
class Problem:
    """One reason a request was refused: where in the request body (a JSON pointer) and why."""

    pointer: str
    message: str

    def to_data(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message}


class ChangeRefused(Exception):
    """The change is not applied; nothing changed. `status` is the HTTP status that says why."""

    def __init__(self, status: int, detail: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(detail)
        self.status, self.detail, self.problems = status, detail, list(problems)


@dataclass(frozen=True)
class Operation:
    """`put` a route (replacing a dynamic route of the same id, in place) or `delete` one, from `path` of the body."""

    op: str
    id: str
    path: str  # YAML-path form of where the route is in the request body ("operations[0].route", "" for a PUT)
    route: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Plan:
    """The dynamic routes a change leads to, as (path, route data) for `with_dynamic`, and the ids it touched."""

    routes: list[tuple[str, Any]]
    changed: list[str] = field(default_factory=list)
    created: bool = False  # a put added an id that was not there (201 for a single put)


def pointer(path: str) -> str:
    """A YAML path (`operations[0].route.id`) as an RFC 6901 JSON pointer (`/operations/0/route/id`)."""
    return ConfigIssue("", path, "").pointer


def stored_path(route_id: str) -> str:
    """The YAML path a dynamic route is reported at once applied (whichever request put it)."""
    return join(STORED, route_id)


def stored_routes(record: VersionRecord) -> list[tuple[str, Any]]:
    """A version's dynamic routes as route data, each at the path its problems are reported at."""
    routes = [RouteDefinition.from_wire(wire).to_data() for wire in record.dynamic]
    return [(stored_path(str(route["id"])), route) for route in routes]


def marker_problems(data: Any, path: str = "") -> list[Problem]:
    """Every string holding the redaction marker: storing it would replace a secret by the marker (a view was
    edited and sent back). The client has to send the real value, or leave the field out."""
    if isinstance(data, str):
        if REDACTED in data:
            return [
                Problem(
                    pointer(path),
                    f"holds {REDACTED}, the marker views show instead of a secret: send the "
                    "real value (storing the marker would replace the secret)",
                )
            ]
        return []
    if isinstance(data, Mapping):
        found = [p for key, value in data.items() for p in marker_problems(value, join(path, str(key)))]
        return found + [p for key in data if isinstance(key, str) for p in marker_problems(key, join(path, key))]
    if isinstance(data, list):
        return [p for i, item in enumerate(data) for p in marker_problems(item, join(path, i))]
    return []


def parse_batch(body: Any) -> tuple[list[Operation], str]:
    """`{"operations": [...], "reason": "..."}` → operations and reason. ChangeRefused(400) naming each field at
    fault by its pointer."""
    if not isinstance(body, dict):
        raise ChangeRefused(400, "the body must be a JSON object", [Problem("", "expected an object")])
    problems = [
        Problem(pointer(str(k)), "unknown field; expected operations, reason")
        for k in body
        if k not in ("operations", "reason")
    ]
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        problems.append(Problem("/reason", "reason must be a string"))
    items = body.get("operations")
    if not isinstance(items, list) or not items:
        problems.append(Problem("/operations", "operations must be a non-empty list"))
        items = []
    elif len(items) > MAX_OPERATIONS:
        problems.append(Problem("/operations", f"at most {MAX_OPERATIONS} operations in one batch"))
        items = []
    operations = []
    for i, item in enumerate(items):
        operation = _operation(item, join("operations", i), problems)
        if operation is not None:
            operations.append(operation)
    if problems:
        raise ChangeRefused(400, "the batch is invalid", problems)
    return operations, reason if isinstance(reason, str) else ""


def _operation(item: Any, path: str, problems: list[Problem]) -> Operation | None:
    if not isinstance(item, dict):
        problems.append(
            Problem(pointer(path), 'an operation is {"op": "put", "route": {...}} or {"op": "delete", "id": "..."}')
        )
        return None
    op = item.get("op")
    expected = {"put": {"op", "route"}, "delete": {"op", "id"}}.get(op) if isinstance(op, str) else None
    if expected is None:
        problems.append(Problem(pointer(join(path, "op")), "op must be put or delete"))
        return None
    before = len(problems)
    problems += [
        Problem(pointer(join(path, str(k))), f"unknown field for {op}; expected {', '.join(sorted(expected))}")
        for k in item
        if k not in expected
    ]
    if op == "delete":
        route_id = item.get("id")
        if not isinstance(route_id, str) or not route_id:
            problems.append(Problem(pointer(join(path, "id")), "id must be a non-empty string"))
        return Operation("delete", str(route_id), path) if len(problems) == before else None
    route = item.get("route")
    where = join(path, "route")
    if not isinstance(route, dict):
        problems.append(Problem(pointer(where), "route must be an object with an id"))
        return None
    route_id = route.get("id")
    if not isinstance(route_id, str) or not route_id:
        problems.append(Problem(pointer(join(where, "id")), "a dynamic route needs an id (a non-empty string)"))
    return Operation("put", str(route_id), where, route) if len(problems) == before else None


def put_operation(route_id: str, body: Any) -> Operation:
    """A single route put at `route_id` (PUT /admin/v1/routes/{id}, SCG's POST routes/{id}): the body's id may be
    left out; when given it must equal `route_id`."""
    if not isinstance(body, dict):
        raise ChangeRefused(400, "the body must be a route (a JSON object)", [Problem("", "expected an object")])
    given = body.get("id", route_id)
    if given != route_id:
        raise ChangeRefused(
            400,
            "the body's id differs from the path's",
            [Problem("/id", f"{given!r} differs from the id in the path, {route_id!r}")],
        )
    return Operation("put", route_id, "", {**body, "id": route_id})


def plan(current: VersionRecord, operations: Sequence[Operation], static_ids: Mapping[str, str]) -> Plan:
    """The dynamic routes after `operations` (in order) on `current`'s. ChangeRefused: 409 for a static id (its
    place in the routes file is in `static_ids`), 404 for deleting an id that is not a dynamic route, 400 for the
    redaction marker in a route."""
    routes = {str(r["id"]): (p, r) for p, r in stored_routes(current)}
    problems = [p for op in operations if op.route is not None for p in marker_problems(op.route, op.path)]
    if problems:
        raise ChangeRefused(400, f"a route holds {REDACTED}", problems)
    problems = [
        Problem(pointer(join(op.path, "id")), "a route id holds no control characters (line breaks, tabs, ...)")
        for op in operations
        if op.op == "put" and any(unicodedata.category(c) == "Cc" for c in op.id)
    ]
    if problems:  # an id is written raw into the audit line: a line break in it would forge audit lines
        raise ChangeRefused(400, "a route id holds a control character", problems)
    problems = [
        Problem(pointer(join(op.path, "enabled")), "a dynamic route is not disabled: delete it (DELETE routes/{id})")
        for op in operations
        if op.route is not None and route_enabled(op.route.get("enabled")) is False
    ]
    if problems:  # SCG skips a disabled route; stored, it would serve nothing and a DELETE of it would 404
        raise ChangeRefused(400, "a dynamic route cannot be disabled", problems)
    created = False
    for op in operations:
        if op.id in static_ids:
            raise ChangeRefused(
                409,
                f"{op.id!r} is a static route ({static_ids[op.id]}): static routes change only "
                "by editing the routes file",
                [Problem(pointer(join(op.path, "id")), "a static id")],
            )
        if op.op == "delete":
            if routes.pop(op.id, None) is None:
                raise ChangeRefused(
                    404, f"no dynamic route {op.id!r}", [Problem(pointer(join(op.path, "id")), "no such dynamic route")]
                )
        else:
            created = created or op.id not in routes
            routes[op.id] = (op.path, dict(op.route or {}))  # a dict keeps the position of a replaced key
    changed = list(dict.fromkeys(op.id for op in operations))
    return Plan(list(routes.values()), changed, created)


def rollback_plan(current: VersionRecord, target: VersionRecord) -> Plan:
    """The dynamic routes of `target`, as a change to `current` (the ids added, removed or changed)."""
    before = {str(r["id"]): r for _, r in stored_routes(current)}
    after = {str(r["id"]): r for _, r in stored_routes(target)}
    changed = [i for i in {**before, **after} if before.get(i) != after.get(i)]
    return Plan(stored_routes(target), changed)
