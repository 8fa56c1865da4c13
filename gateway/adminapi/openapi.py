"""The admin listener's OpenAPI 3.1 document (`GET /admin/v1/openapi.json`), generated from the schemas that
validate requests: each predicate's and filter's args from its spec's config model, route metadata from
RouteOptions, built once per registry.

Request schemas must never refuse what the gateway accepts (a client generated from them would be wrong), while the
gateway may still refuse what they allow (with a 400 naming the field). The config models bind args the way
Spring's relaxed binding does (gateway.config.binding): any spelling of a name, `_genkey_N` keys, text for every
value (shortcut args are text), a single value for a list, and validators that read a value before its type is
checked. So an args schema is the model's schema `relax`ed: no `required`, other keys allowed, any scalar where
a value is expected (its own schema stays, as documentation), text for a nested block, a single item for a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from gateway.docs import config_schema
from gateway.problem import PROBLEM_TYPE_BASE
from gateway.registry import Registry
from gateway.routing.route import RouteOptions
from gateway.spec import FilterSpec, PredicateSpec

__all__ = ["openapi_bytes", "openapi_document", "relax"]

#: a route id: no control characters (gateway.changes refuses them: an id goes raw into the audit line)
ID_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
REF: Final = "#/components/schemas/"
_TEXT: Final = {"type": "string"}
_SCALAR: Final = {"type": ["string", "number", "boolean"]}
_cache: dict[int, tuple[Registry, bytes]] = {}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF + name}


def relax(node: Any) -> Any:
    """A JSON schema that accepts what relaxed binding and pydantic's lax mode accept (see the module docstring)."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:  # a nested model (relaxed where it is defined); text may fill it through a validator
        return {"anyOf": [node, _TEXT]}
    for key in ("anyOf", "oneOf"):
        if key in node:  # relaxed branches may overlap: anyOf
            rest = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
            return {**rest, "anyOf": [relax(branch) for branch in node[key]]}
    kind = node.get("type")
    if kind == "object" or "properties" in node:  # a model (bound with relaxed names) or a mapping
        relaxed = {k: v for k, v in node.items() if k not in ("required", "additionalProperties", "properties")}
        if "properties" in node:
            relaxed["properties"] = {name: relax(prop) for name, prop in node["properties"].items()}
        if isinstance(node.get("additionalProperties"), dict):
            relaxed["additionalProperties"] = relax(node["additionalProperties"])
        return relaxed
    if kind == "array":
        item = relax(node.get("items", {}))
        return {"anyOf": [{**node, "items": item}, item, _TEXT]}
    if kind is None and not ({"enum", "const"} & set(node)):
        return node  # any value already
    # A value: shortcut text, and what validators read before the type's check (a boolean as 0 or 1, a duration or
    # a date as a number, text stripped before its pattern): its own schema documents it, any scalar is accepted.
    return {"anyOf": [node, _SCALAR]}


def _args_schema(spec: FilterSpec[Any] | PredicateSpec[Any], prefix: str, schemas: dict[str, Any]) -> dict[str, Any]:
    """The spec's config schema, relaxed; its nested models go to `schemas` as `<prefix>.<Model>`."""
    schema = config_schema(spec, ref_template=REF + prefix + ".{model}")
    for name, nested in schema.pop("$defs", {}).items():
        schemas[f"{prefix}.{name}"] = relax(nested)
    return dict(relax(schema))


def _component(spec: FilterSpec[Any] | PredicateSpec[Any], kind: str, schemas: dict[str, Any]) -> str:
    """`<Kind>.<Name>`: the shortcut text `Name=args` or `{name: Name, args: {...}}`."""
    prefix = f"{kind}.{spec.name}"
    args = _args_schema(spec, prefix + ".args", schemas)
    # `args` may be left out or null; any other empty value counts as none too (`item.get("args") or {}`).
    empty = {"anyOf": [{"enum": [None, "", 0, False]}, {"type": "array", "maxItems": 0}]}
    schemas[prefix] = {
        "description": spec.summary,
        "oneOf": [
            # _split strips the name, and the args text may hold anything (line breaks included)
            {"type": "string", "pattern": rf"^\s*{spec.name}\s*(=[\s\S]*)?$", "examples": [_shortcut_example(spec)]},
            {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"const": spec.name}, "args": {"anyOf": [args, empty]}},
                "additionalProperties": False,
                "examples": [{"name": spec.name, "args": dict(spec.example)}],
            },
        ],
    }
    return prefix


def _shortcut_example(spec: FilterSpec[Any] | PredicateSpec[Any]) -> str:
    values = [spec.example[f] for f in spec.shortcut if f in spec.example] if spec.shortcut else []
    text = ",".join(",".join(map(str, v)) if isinstance(v, list | tuple) else str(v) for v in values)
    return f"{spec.name}={text}" if text else spec.name


def _route_schemas(registry: Registry, schemas: dict[str, Any]) -> None:
    predicates = [_ref(_component(s, "Predicate", schemas)) for _, s in sorted(registry.predicates.items())]
    filters = [_ref(_component(s, "Filter", schemas)) for _, s in sorted(registry.filters.items())]
    schemas["Predicate"] = {"description": "A predicate: shortcut text or {name, args}.", "oneOf": predicates}
    schemas["Filter"] = {"description": "A filter: shortcut text or {name, args}.", "oneOf": filters}
    metadata = RouteOptions.model_json_schema(by_alias=True, ref_template=REF + "RouteOptions.{model}")
    for name, nested in metadata.pop("$defs", {}).items():
        schemas[f"RouteOptions.{name}"] = relax(nested)
    schemas["RouteMetadata"] = relax(metadata)
    enabled = {
        "anyOf": [{"const": True}, {"type": "null"}, {"type": "string", "pattern": r"^\s*[Tt][Rr][Uu][Ee]\s*$"}],
        "description": "true (also when null or left out): a dynamic route is deleted, never disabled",
    }
    schemas["RouteDefinition"] = {
        "description": "A route as in routes.yaml's `routes:`. Keys other than these are refused (400), as is "
        "every invalid value, by JSON pointer.",
        "type": "object",
        "properties": {
            # no control characters (gateway.changes: an id goes raw into the audit line)
            "id": {"type": "string", "pattern": ID_PATTERN},
            # Any scheme-looking text (the gateway names the schemes it takes when it refuses one); the two consts
            # are common, valid targets, there so that generated requests reach past the refusals too.
            "uri": {
                "anyOf": [
                    {"const": "no://op"},
                    {"const": "http://127.0.0.1:9"},
                    {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9+.-]*:"},
                ],
                "examples": ["http://127.0.0.1:8081"],
            },
            "predicates": {"anyOf": [{"type": "array", "items": _ref("Predicate")}, {"type": "null"}]},
            "filters": {"anyOf": [{"type": "array", "items": _ref("Filter")}, {"type": "null"}]},
            "order": {"type": "integer"},
            "metadata": {"anyOf": [_ref("RouteMetadata"), {"type": "null"}]},
            "enabled": enabled,
        },
        "required": ["uri"],
        "additionalProperties": False,
    }


def _array(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


# -- response shapes -------------------------------------------------------------------------------------------
_COMPONENT_VIEW = {
    "oneOf": [
        {"type": "string"},
        {
            "type": "object",
            "required": ["name", "args"],
            "properties": {"name": {"type": "string"}, "args": {"type": "object"}},
        },
    ]
}
_VIEWS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; a 400 names every field at fault in `errors`.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "examples": [PROBLEM_TYPE_BASE + "invalid-request"]},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "errors": {"type": "array", "items": _ref("FieldError")},
        },
    },
    "FieldError": {
        "type": "object",
        "required": ["pointer", "message"],
        "properties": {
            "pointer": {"type": "string", "description": "RFC 6901 JSON pointer"},
            "message": {"type": "string"},
        },
        "additionalProperties": False,
    },
    "ComponentView": _COMPONENT_VIEW,
    "RouteView": {
        "type": "object",
        "description": "A route as stored and shown (secrets redacted); `source` in the admin API's views.",
        "required": ["id", "uri", "order", "predicates", "filters", "metadata"],
        "properties": {
            "id": {"type": "string"},
            "uri": {"type": "string"},
            "order": {"type": "integer"},
            "predicates": {"type": "array", "items": _ref("ComponentView")},
            "filters": {"type": "array", "items": _ref("ComponentView")},
            "metadata": {"type": "object"},
            "source": {"enum": ["static", "dynamic"]},
        },
    },
    "Version": {
        "type": "object",
        "required": ["version", "time", "author", "reason", "checksum"],
        "properties": {
            "version": {"type": "integer", "minimum": 0},
            "time": {"type": "string"},
            "author": {"type": "string"},
            "reason": {"type": "string"},
            "checksum": {"type": "string"},
        },
    },
    "Changed": {
        "type": "object",
        "required": ["version"],
        "properties": {"version": {"type": "integer", "minimum": 0, "description": "the version the change made"}},
        "additionalProperties": False,
    },
    "Config": {
        "type": "object",
        "required": ["version", "routes"],
        "properties": {"version": {"type": "integer", "minimum": 0}, "routes": _array("RouteView")},
    },
    "Batch": {
        "type": "object",
        "required": ["operations"],
        "properties": {
            "operations": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1000,
                "items": {
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["op", "route"],
                            "properties": {"op": {"const": "put"}, "route": _ref("RouteDefinition")},
                            "additionalProperties": False,
                        },
                        {
                            "type": "object",
                            "required": ["op", "id"],
                            "properties": {"op": {"const": "delete"}, "id": {"type": "string", "minLength": 1}},
                            "additionalProperties": False,
                        },
                    ]
                },
            },
            "reason": {"type": "string", "maxLength": 1000},
        },
        "additionalProperties": False,
    },
    "ScgRoute": {
        "type": "object",
        "description": "SCG's verbose route (`GET routes`).",
        "required": ["route_id", "predicate", "filters", "uri", "order", "metadata"],
        "properties": {
            "route_id": {"type": "string"},
            "predicate": {"type": "string"},
            "filters": {"type": "array", "items": {"type": "string"}},
            "uri": {"type": "string"},
            "order": {"type": "integer"},
            "metadata": {"type": "object"},
        },
    },
    "ScgRouteDefinition": {
        "type": "object",
        "required": ["id", "uri", "predicates", "filters", "order", "metadata", "enabled"],
        "properties": {
            "id": {"type": "string"},
            "uri": {"type": "string"},
            "predicates": {"type": "array", "items": _COMPONENT_VIEW["oneOf"][1]},
            "filters": {"type": "array", "items": _COMPONENT_VIEW["oneOf"][1]},
            "order": {"type": "integer"},
            "metadata": {"type": "object"},
            "enabled": {"type": "boolean"},
        },
    },
}


_DETAILS = {
    400: "Bad request: the body, a parameter or If-Match is invalid (`errors` names each field by JSON pointer)",
    401: "No bearer token, or a wrong one",
    403: "The admin API is disabled (no token configured and the listener is off loopback)",
    404: "No such route or version",
    409: "A static route's id (static routes change only by editing the routes file)",
    412: "If-Match names a version that is no longer the current one",
    413: "The body is over 1 MiB",
    503: "The change could not be applied or stored (the gateway is draining, or the store failed)",
}


def _problems(*statuses: int) -> dict[str, Any]:
    return {
        str(s): {"description": _DETAILS[s], "content": {"application/problem+json": {"schema": _ref("Problem")}}}
        for s in statuses
    }


def _json(description: str, schema: Mapping[str, Any], headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


_ETAG = {"ETag": {"description": 'The version as an entity tag: "7"', "schema": {"type": "string"}}}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": 'Apply only if the current version is this one ("7"); otherwise 412',
    "schema": {"type": "string", "pattern": r'^\s*(\*|(W/)?"*[0-9]+"*)\s*$'},
}
# At most 1,000 characters (400 beyond), left out of the schema: a generated longer one percent-encodes past the
# request-line limit, which aiohttp answers before the API sees the request.
_REASON = {
    "name": "reason",
    "in": "query",
    "required": False,
    "description": "Recorded with the version (at most 1,000 characters)",
    "schema": {"type": "string"},
}


def _param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


_ID = {**_param("id", "A route id"), "schema": {"type": "string", "pattern": ID_PATTERN}, "example": "example"}
_N = _param("n", "A version number")
_AUTH = (401, 403)


def _body(ref: str, required: bool = True, example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": _ref(ref)}
    if example is not None:
        media["example"] = example
    return {"required": required, "content": {"application/json": media}}


#: a route every gateway takes (what client generators and fuzzers start from)
ROUTE_EXAMPLE = {"uri": "http://127.0.0.1:9", "predicates": ["Path=/example/**"], "filters": ["StripPrefix=1"]}


def _op(summary: str, responses: dict[str, Any], *errors: int, **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {**responses, **_problems(*sorted({*errors, *_AUTH}))}, **extra}


_REPLICA = {
    "type": "object",
    "required": ["id", "host", "admin", "version", "started", "seen", "self"],
    "properties": {
        "id": {**_TEXT, "description": "hostname-pid-random, made at the replica's start"},
        "host": _TEXT,
        "admin": {**_TEXT, "description": "The replica's admin listener (host:port)"},
        "version": {"type": "integer", "minimum": 0, "description": "The routes version the replica serves"},
        "started": {**_TEXT, "description": "RFC 3339, UTC"},
        "seen": {**_TEXT, "description": "Its last heartbeat (RFC 3339, UTC, milliseconds)"},
        "self": {"type": "boolean", "description": "The replica that answered"},
    },
    "additionalProperties": False,
}
_CLUSTER = {
    "type": "object",
    "required": ["replicas", "current", "complete"],
    "properties": {
        "replicas": {"type": "array", "items": _REPLICA},
        "current": {
            "type": "integer",
            "minimum": 0,
            "description": "The store's current version, as this replica knows it",
        },
        "complete": {"type": "boolean", "description": "False when the store could not be read: this replica alone"},
    },
    "additionalProperties": False,
}


def _native_paths() -> dict[str, Any]:
    changed = _json("Applied in every worker and stored", _ref("Changed"), _ETAG)
    write = (400, 409, 412, 413, 503)
    return {
        "/admin/v1/config": {
            "get": _op(
                "The whole current config, each route marked with its source", {"200": _json("", _ref("Config"), _ETAG)}
            )
        },
        "/admin/v1/routes/{id}": {
            "parameters": [_ID],
            "put": _op(
                "Add or replace a dynamic route",
                {"200": changed, "201": {**changed, "description": "A new dynamic route"}},
                *write,
                parameters=[_IF_MATCH, _REASON],
                requestBody=_body("RouteDefinition", example=ROUTE_EXAMPLE),
            ),
            "delete": _op(
                "Delete a dynamic route", {"200": changed}, 400, 404, 409, 412, 503, parameters=[_IF_MATCH, _REASON]
            ),
        },
        "/admin/v1/batch": {
            "post": _op(
                "Apply puts and deletes all or nothing",
                {"200": changed},
                404,
                *write,
                parameters=[_IF_MATCH],
                requestBody=_body("Batch"),
            )
        },
        "/admin/v1/validate": {
            "post": _op(
                "Dry run of a batch: a full compile, nothing changes",
                {
                    "200": _json(
                        "Whether the batch would apply, and every problem by JSON pointer",
                        {
                            "type": "object",
                            "required": ["valid", "errors"],
                            "properties": {"valid": {"type": "boolean"}, "errors": _array("FieldError")},
                            "additionalProperties": False,
                        },
                    )
                },
                400,
                413,
                requestBody=_body("Batch"),
            )
        },
        "/admin/v1/versions": {
            "get": _op(
                "The stored versions",
                {
                    "200": _json(
                        "",
                        {
                            "type": "object",
                            "required": ["current", "versions"],
                            "properties": {"current": {"type": "integer", "minimum": 0}, "versions": _array("Version")},
                        },
                    )
                },
            )
        },
        "/admin/v1/versions/{n}": {
            "parameters": [_N],
            "get": _op(
                "One version with its routes",
                {
                    "200": _json(
                        "",
                        {
                            "allOf": [
                                _ref("Version"),
                                {
                                    "type": "object",
                                    "required": ["routes"],
                                    "properties": {"routes": _array("RouteView")},
                                },
                            ]
                        },
                    )
                },
                400,
                404,
            ),
        },
        "/admin/v1/diff": {
            "get": _op(
                "Routes added, removed and changed between two versions",
                {
                    "200": _json(
                        "",
                        {
                            "type": "object",
                            "required": ["from", "to", "added", "removed", "changed"],
                            "properties": {
                                "from": {"type": "integer"},
                                "to": {"type": "integer"},
                                "added": _array("RouteView"),
                                "removed": _array("RouteView"),
                                "changed": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["id", "fields"],
                                        "properties": {
                                            "id": {"type": "string"},
                                            "fields": {
                                                "type": "object",
                                                "additionalProperties": {"type": "object", "required": ["from", "to"]},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    )
                },
                400,
                404,
                parameters=[
                    {"name": "from", "in": "query", "required": False, "schema": {"type": "string"}},
                    {"name": "to", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
            )
        },
        "/admin/v1/rollback/{n}": {
            "parameters": [_N],
            "post": _op(
                "A new version whose dynamic routes are version n's",
                {"200": changed},
                400,
                404,
                412,
                413,
                503,
                parameters=[_IF_MATCH],
                requestBody={
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"reason": {"type": "string", "maxLength": 1000}},
                            }
                        }
                    },
                },
            ),
        },
        "/admin/v1/cluster": {
            "get": _op(
                "The replicas seen within the heartbeat TTL (one for a memory or file store), sorted by id",
                {"200": _json("", _CLUSTER)},
            )
        },
        "/admin/v1/openapi.json": {
            "get": _op("This document", {"200": _json("OpenAPI 3.1", {"type": "object", "required": ["openapi"]})})
        },
    }


def _actuator_paths() -> dict[str, Any]:
    empty = {"description": "Done (no body)"}
    order_map = {"type": "object", "additionalProperties": {"type": "integer"}}
    class_map = {"type": "object", "additionalProperties": {"type": "null"}}
    links = _json(
        "Links to the actuator's endpoints",
        {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["href", "methods"],
                "properties": {"href": {"type": "string"}, "methods": {"type": "array", "items": {"type": "string"}}},
            },
        },
    )
    base = "/actuator/gateway"
    write = (400, 409, 413, 503)
    return {
        base: {"get": _op("Links", {"200": links})},
        base + "/": {"get": _op("Links", {"200": links})},
        base + "/routes": {
            "get": _op("Every route, SCG's verbose form", {"200": _json("", _array("ScgRoute"))}),
            "post": _op(
                "Add or replace several dynamic routes, all or nothing",
                {"200": empty},
                *write,
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "array",
                                "minItems": 1,
                                "items": {"allOf": [_ref("RouteDefinition"), {"type": "object", "required": ["id"]}]},
                            }
                        }
                    },
                },
            ),
        },
        base + "/routes/{id}": {
            "parameters": [_ID],
            "get": _op("One route, SCG's verbose form", {"200": _json("", _ref("ScgRoute"))}, 404),
            "post": _op(
                "Add or replace a dynamic route",
                {"201": {"description": "Applied", "headers": {**_ETAG, "Location": {"schema": {"type": "string"}}}}},
                *write,
                requestBody=_body("RouteDefinition", example=ROUTE_EXAMPLE),
            ),
            "delete": _op("Delete a dynamic route", {"200": empty}, 404, 409, 503),
        },
        base + "/routes/{id}/combinedfilters": {
            "parameters": [_ID],
            "get": _op("The route's filters with the default filters, as they run", {"200": _json("", order_map)}, 404),
        },
        base + "/routedefinitions": {
            "get": _op("Every route as SCG's RouteDefinition", {"200": _json("", _array("ScgRouteDefinition"))})
        },
        base + "/refresh": {"post": _op("Accepted; changes apply when they are made", {"200": empty})},
        base + "/globalfilters": {"get": _op("The default filters with their order", {"200": _json("", order_map)})},
        base + "/routefilters": {"get": _op("The filters this gateway knows", {"200": _json("", class_map)})},
        base + "/routepredicates": {"get": _op("The predicates this gateway knows", {"200": _json("", class_map)})},
    }


def _listener_paths() -> dict[str, Any]:
    up: dict[str, Any] = {"enum": ["UP", "DOWN"]}
    status = {"type": "object", "required": ["status"], "properties": {"status": up}}
    ready = {
        "type": "object",
        "required": ["status", "draining"],
        "properties": {"status": up, "draining": {"type": "boolean"}},
    }
    return {
        "/health/live": {"get": {"summary": "Liveness", "security": [], "responses": {"200": _json("Alive", status)}}},
        "/health/ready": {
            "get": {
                "summary": "Readiness: every worker serving",
                "security": [],
                "responses": {"200": _json("Ready", ready), "503": _json("Not ready, or draining", ready)},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/routes": {
            "get": _op(
                "The running routes with each worker's version",
                {
                    "200": _json(
                        "",
                        {
                            "type": "object",
                            "required": ["version", "source", "workers", "routes"],
                            "properties": {
                                "version": {"type": "integer"},
                                "source": {"type": "string"},
                                "workers": {"type": "array", "items": {"type": "object"}},
                                "routes": _array("RouteView"),
                            },
                        },
                    )
                },
            )
        },
    }


def openapi_document(registry: Registry) -> dict[str, Any]:
    """The whole document for a gateway with `registry`'s predicates and filters."""
    schemas: dict[str, Any] = dict(_VIEWS)
    _route_schemas(registry, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sluicegate admin API",
            "version": "1",
            "description": "SCG's actuator API at /actuator/gateway and the native API at /admin/v1 "
            "(docs/admin-api.md). Everything but /health/* and /metrics needs a bearer token.",
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "security": [{"bearer": []}],
        "paths": {**_listener_paths(), **_actuator_paths(), **_native_paths()},
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def openapi_bytes(registry: Registry) -> bytes:
    """`openapi_document` as JSON, built once per registry (the registry is fixed for a gateway's life)."""
    cached = _cache.get(id(registry))
    if cached is None or cached[0] is not registry:
        cached = (registry, orjson.dumps(openapi_document(registry)))
        _cache[id(registry)] = cached
    return cached[1]
