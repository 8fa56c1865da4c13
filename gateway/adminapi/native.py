"""`/admin/v1`: the native admin API — the whole config with its version, changes with If-Match, a dry run,
the version history with diffs and rollback. docs/admin-api.md documents every endpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.adminapi.http import (
    JSON,
    ConfigSource,
    answers,
    author_of,
    etag,
    if_match,
    json_response,
    read_json,
    record_or_404,
    static_ids,
)
from gateway.adminapi.openapi import openapi_bytes
from gateway.adminapi.views import config_view, diff, record_view
from gateway.changes import ChangeRefused, Operation, Problem, parse_batch, plan, put_operation, rollback_plan
from gateway.store import VersionRecord

PREFIX = "/admin/v1"


def native_routes(source: ConfigSource) -> list[web.RouteDef]:
    """The `/admin/v1` routes over `source` (the supervisor)."""

    def operations_plan(operations: list[Operation]) -> Callable[[VersionRecord], Any]:
        return lambda current: plan(current, operations, static_ids(source.static))

    async def apply(request: web.Request, operations: list[Operation], reason: str, created: int = 200) -> web.Response:
        version, done = await source.change(operations_plan(operations), author_of(request), reason, if_match(request))
        return json_response({"version": version}, 201 if done.created and created == 201 else 200, etag(version))

    async def get_config(request: web.Request) -> web.Response:
        snapshot = source.snapshot
        return json_response(config_view(snapshot.config, snapshot.version), headers=etag(snapshot.version))

    async def put_route(request: web.Request) -> web.Response:
        route_id = request.match_info["id"]
        operation = put_operation(route_id, await read_json(request))
        reason = request.query.get("reason", f"PUT routes/{route_id}")
        return await apply(request, [operation], reason, created=201)

    async def delete_route(request: web.Request) -> web.Response:
        route_id = request.match_info["id"]
        reason = request.query.get("reason", f"DELETE routes/{route_id}")
        return await apply(request, [Operation("delete", route_id, "")], reason)

    async def batch(request: web.Request) -> web.Response:
        operations, reason = parse_batch(await read_json(request))
        return await apply(request, operations, reason or "batch")

    async def validate(request: web.Request) -> web.Response:
        body = await read_json(request)
        try:
            operations, _ = parse_batch(body)
            source.check(operations_plan(operations))
        except ChangeRefused as exc:
            errors = exc.problems or [Problem("", exc.detail)]
            return json_response({"valid": False, "errors": [p.to_data() for p in errors]})
        return json_response({"valid": True, "errors": []})

    async def versions(request: web.Request) -> web.Response:
        store = source.config_store
        listed = [r.summary() for r in store.versions()]
        return json_response({"current": store.current().version, "versions": listed})

    async def version(request: web.Request) -> web.Response:
        return json_response(record_view(record_or_404(source.config_store, request.match_info["n"])))

    async def get_diff(request: web.Request) -> web.Response:
        store = source.config_store
        to = record_or_404(store, request.query.get("to", str(store.current().version)))
        start = request.query.get("from", str(max(to.version - 1, 0)))
        return json_response(diff(record_or_404(store, start), to))

    async def rollback(request: web.Request) -> web.Response:
        target = record_or_404(source.config_store, request.match_info["n"])
        body = await read_json(request, optional=True)
        reason = body.get("reason") if isinstance(body, dict) else None
        if body is not None and (not isinstance(body, dict) or not isinstance(reason, str | None)):
            raise ChangeRefused(400, 'the body is optional: {"reason": "..."}', [Problem("/reason", "a string")])
        version, _ = await source.change(
            lambda current: rollback_plan(current, target),
            author_of(request),
            reason or f"rollback to version {target.version}",
            if_match(request),
        )
        return json_response({"version": version}, headers=etag(version))

    async def cluster(request: web.Request) -> web.Response:
        return json_response(await source.cluster.view())

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=openapi_bytes(source.registry), content_type=JSON)

    routes = [
        ("GET", "/config", get_config),
        ("PUT", "/routes/{id}", put_route),
        ("DELETE", "/routes/{id}", delete_route),
        ("POST", "/batch", batch),
        ("POST", "/validate", validate),
        ("GET", "/versions", versions),
        ("GET", "/versions/{n}", version),
        ("GET", "/diff", get_diff),
        ("POST", "/rollback/{n}", rollback),
        ("GET", "/cluster", cluster),
        ("GET", "/openapi.json", openapi),
    ]
    return [web.route(method, PREFIX + path, answers(handler)) for method, path, handler in routes]
