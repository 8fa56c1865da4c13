"""SCG's actuator API at `/actuator/gateway/`: the same paths and JSON shapes, without its bugs.

Differences from SCG (docs/admin-api.md lists them): a change applies at once in every worker (`refresh` is
accepted and needs nothing); POST of an existing dynamic id replaces it instead of duplicating it; a static id (from
the routes file) is refused with 409; every view is redacted; nothing in a body is ever evaluated.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway.adminapi.http import ConfigSource, answers, author_of, json_response, read_json, static_ids
from gateway.changes import ChangeRefused, Operation, Problem, plan, pointer, put_operation
from gateway.config.definitions import ComponentDef, GatewayConfig, RouteDefinition
from gateway.config.redact import redact_view
from gateway.config.source import join

PREFIX = "/actuator/gateway"
_LINKS = [
    ("/", ["GET"]),
    ("/routes", ["GET", "POST"]),
    ("/routes/{id}", ["GET", "POST", "DELETE"]),
    ("/routes/{id}/combinedfilters", ["GET"]),
    ("/routedefinitions", ["GET"]),
    ("/refresh", ["POST"]),
    ("/globalfilters", ["GET"]),
    ("/routefilters", ["GET"]),
    ("/routepredicates", ["GET"]),
]


def _value(value: Any) -> str:
    """An arg as SCG's toString shows it: lists as `[a, b]`, mappings as `{k=v}`."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _text(view: Any) -> str:
    """A redacted component view (`Name=value` or {name, args}) as SCG's verbose text: `Name: value`."""
    if isinstance(view, str):
        name, _, value = view.partition("=")
        return f"{name}: {value}" if value else name
    args = ", ".join(f"{key} = {_value(value)}" for key, value in view["args"].items())
    return f"{view['name']}: {args}" if args else str(view["name"])


def _filter_orders(config: GatewayConfig, route: RouteDefinition, source: ConfigSource) -> list[tuple[str, int]]:
    """The route's filters with the default filters, as they run: by band order, then as written (D26)."""
    specs = source.registry.filters
    components = [*config.default_filters, *route.filters]
    ranked = sorted(enumerate(components), key=lambda item: (specs[item[1].name].order, item[0]))
    views = [redact_view(c, config.env_values) for _, c in ranked]
    return [
        (f"[[{_text(v)}], order = {specs[c.name].order}]", specs[c.name].order)
        for (_, c), v in zip(ranked, views, strict=True)
    ]


def verbose(config: GatewayConfig, route: RouteDefinition, source: ConfigSource) -> dict[str, Any]:
    """One entry of `GET routes` (SCG's verbose format)."""
    view = redact_view(route, config.env_values)
    predicate = " && ".join(_text(p) for p in view["predicates"]) or "true"
    return {
        "route_id": view["id"],
        "predicate": predicate,
        "filters": [text for text, _ in _filter_orders(config, route, source)],
        "uri": view["uri"],
        "order": route.order,
        "metadata": view["metadata"],
    }


def definition(config: GatewayConfig, route: RouteDefinition) -> dict[str, Any]:
    """One entry of `GET routedefinitions`: SCG's RouteDefinition JSON ({name, args} components), redacted."""
    expanded = RouteDefinition(
        route.id,
        route.uri,
        tuple(ComponentDef(p.name, p.args) for p in route.predicates),
        tuple(ComponentDef(f.name, f.args) for f in route.filters),
        route.order,
        route.metadata,
    )
    view = redact_view(expanded, config.env_values)
    return {**view, "enabled": True}


def _route(config: GatewayConfig, route_id: str) -> RouteDefinition:
    found = next((r for r in config.routes if r.id == route_id), None)
    if found is None:
        raise ChangeRefused(404, f"no route {route_id!r}")
    return found


def _config_class(spec: Any) -> str:
    return f"[{spec.name} configClass = {spec.config.__name__}]"


def actuator_routes(source: ConfigSource) -> list[web.RouteDef]:
    """SCG's `/actuator/gateway` routes over `source` (the supervisor)."""

    async def change(request: web.Request, operations: list[Operation], reason: str) -> tuple[int, bool]:
        version, done = await source.change(
            lambda current: plan(current, operations, static_ids(source.static)), author_of(request), reason, None
        )
        return version, done.created

    async def links(request: web.Request) -> web.Response:
        return json_response([{"href": PREFIX + path, "methods": methods} for path, methods in _LINKS])

    async def routes(request: web.Request) -> web.Response:
        config = source.snapshot.config
        return json_response([verbose(config, r, source) for r in config.routes])

    async def route(request: web.Request) -> web.Response:
        config = source.snapshot.config
        return json_response(verbose(config, _route(config, request.match_info["id"]), source))

    async def definitions(request: web.Request) -> web.Response:
        config = source.snapshot.config
        return json_response([definition(config, r) for r in config.routes])

    async def post_route(request: web.Request) -> web.Response:
        route_id = request.match_info["id"]
        version, _ = await change(request, [put_operation(route_id, await read_json(request))], f"POST {route_id}")
        # The id percent-encoded: a header holds no control characters (aiohttp refuses to send them, after the
        # change was applied) and a Location is a URI.
        location = f"{PREFIX}/routes/{quote(route_id, safe='')}"
        return web.Response(status=201, headers={"Location": location, "ETag": f'"{version}"'})

    async def post_routes(request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, list) or not body:
            raise ChangeRefused(
                400, "the body must be a non-empty array of route definitions", [Problem("", "an array")]
            )
        operations = []
        for i, item in enumerate(body):
            route_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(route_id, str) or not route_id:
                raise ChangeRefused(400, "every route definition needs an id", [Problem(pointer(join("", i)), "no id")])
            operations.append(Operation("put", route_id, f"[{i}]", item))
        await change(request, operations, "POST routes")
        return web.Response(status=200)

    async def delete_route(request: web.Request) -> web.Response:
        route_id = request.match_info["id"]
        await change(request, [Operation("delete", route_id, "")], f"DELETE {route_id}")
        return web.Response(status=200)

    async def refresh(request: web.Request) -> web.Response:
        return web.Response(status=200)  # every change applied when it was made: there is nothing to refresh

    async def global_filters(request: web.Request) -> web.Response:
        config, specs = source.snapshot.config, source.registry.filters
        views = [redact_view(d, config.env_values) for d in config.default_filters]
        return json_response(
            {
                f"DefaultFilter[{_text(v)}]": specs[d.name].order
                for d, v in zip(config.default_filters, views, strict=True)
            }
        )

    async def route_filters(request: web.Request) -> web.Response:
        return json_response({_config_class(spec): None for spec in source.registry.filters.values()})

    async def route_predicates(request: web.Request) -> web.Response:
        return json_response({_config_class(spec): None for spec in source.registry.predicates.values()})

    async def combined(request: web.Request) -> web.Response:
        config = source.snapshot.config
        found = _route(config, request.match_info["id"])
        return json_response(dict(_filter_orders(config, found, source)))

    routes_table = [
        ("GET", "", links),
        ("GET", "/", links),
        ("GET", "/routes", routes),
        ("POST", "/routes", post_routes),
        ("GET", "/routes/{id}", route),
        ("POST", "/routes/{id}", post_route),
        ("DELETE", "/routes/{id}", delete_route),
        ("GET", "/routes/{id}/combinedfilters", combined),
        ("GET", "/routedefinitions", definitions),
        ("POST", "/refresh", refresh),
        ("GET", "/globalfilters", global_filters),
        ("GET", "/routefilters", route_filters),
        ("GET", "/routepredicates", route_predicates),
    ]
    return [web.route(method, PREFIX + path, answers(handler)) for method, path, handler in routes_table]
