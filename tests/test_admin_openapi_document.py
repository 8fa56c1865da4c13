"""The admin API's OpenAPI document (gateway.adminapi.openapi) without a server: it is well-formed OpenAPI 3.1, it
lists exactly the routes the admin app serves (so the two cannot drift apart), and its request schemas accept every
predicate and filter the gateway accepts, in every form relaxed binding allows. tests/e2e/test_admin_openapi.py runs
schemathesis against the live document.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest

from gateway.admin import admin_app
from gateway.adminapi.openapi import REF, openapi_bytes, openapi_document
from gateway.config.components import parse_component, validate_model
from gateway.config.snapshot import compile_snapshot
from gateway.docs import config_schema
from gateway.errors import ConfigError
from gateway.registry import Registry, load_registry
from gateway.routing.compiler import ROUTE_KEYS, with_dynamic
from gateway.routing.route import RouteOptions
from gateway.routing.scg_rules import route_enabled
from gateway.settings import Settings
from gateway.spec import FilterSpec, PredicateSpec
from gateway.supervisor import Supervisor

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
REGISTRY = load_registry()
DOCUMENT = openapi_document(REGISTRY)


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def validator(name: str) -> Any:
    """A validator for one component schema, resolving its `$ref`s inside the document."""
    return jsonschema_rs.validator_for({"components": DOCUMENT["components"], "$ref": REF + name})


def test_the_document_is_openapi_3_1() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    assert {"title", "version"} <= set(DOCUMENT["info"])
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert schemes == {"bearer": {"type": "http", "scheme": "bearer"}}
    assert DOCUMENT["security"] == [{"bearer": []}]
    for name, schema in DOCUMENT["components"]["schemas"].items():
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name
        jsonschema_rs.meta.validate(schema)  # a valid JSON Schema 2020-12 (OpenAPI 3.1's dialect)
        validator(name)  # and its references resolve
    for ref in refs(DOCUMENT):
        assert ref.startswith(REF) and ref.removeprefix(REF) in DOCUMENT["components"]["schemas"], ref
    for path, item in DOCUMENT["paths"].items():
        assert path.startswith("/"), path
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{([^}]+)}", path)), path
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert method in METHODS, (path, method)
            assert operation["responses"], (path, method)
            for status, response in operation["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d", status) and response["description"] is not None, (path, status)
                for media in response.get("content", {}).values():
                    jsonschema_rs.meta.validate(media["schema"])
            open_path = path == "/metrics" or path.startswith("/health/")
            if open_path:
                assert operation["security"] == [], path
            else:  # the bearer token: 401 without it, 403 with the admin API disabled
                assert "security" not in operation and {"401", "403"} <= set(operation["responses"]), path
                for status in operation["responses"]:
                    if status >= "400":
                        content = operation["responses"][status]["content"]
                        assert content == {"application/problem+json": {"schema": {"$ref": REF + "Problem"}}}


def test_the_document_lists_every_route_of_the_admin_app(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n- {id: r, uri: 'http://127.0.0.1:9', predicates: ['Path=/r/**']}\n", encoding="utf-8")
    settings = Settings()
    supervisor = Supervisor(settings, routes, compile_snapshot(routes, REGISTRY, settings, 1), registry=REGISTRY)
    app = admin_app(supervisor, {"admin": "a-token"})
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"  # aiohttp adds HEAD to every GET
    }
    documented = {(method, path) for path, item in DOCUMENT["paths"].items() for method in item if method in METHODS}
    assert served == documented


def test_the_document_is_built_once_per_registry() -> None:
    first = openapi_bytes(REGISTRY)
    assert openapi_bytes(REGISTRY) is first
    assert orjson.loads(first) == orjson.loads(orjson.dumps(DOCUMENT))
    other = Registry(dict(REGISTRY.filters), dict(REGISTRY.predicates), dict(REGISTRY.origins))
    assert openapi_bytes(other) is not first and openapi_bytes(other) == first


def test_the_embedded_examples_validate() -> None:
    count = 0
    for name, schema in DOCUMENT["components"]["schemas"].items():
        for branch in schema.get("oneOf", []):
            for example in branch.get("examples", []):
                assert validator(name).is_valid(example), (name, example)
                count += 1
    assert count == 2 * (len(REGISTRY.filters) + len(REGISTRY.predicates))


# -- the request schemas never refuse what the gateway accepts ---------------------------------------------------
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).upper()


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"-\1", name).lower()


def _text(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return [_text(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _text(v) for k, v in value.items()}
    return value


def _single(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def variants(spec: FilterSpec[Any] | PredicateSpec[Any]) -> Iterator[Any]:
    """The spec's example in the forms relaxed binding allows: renamed keys, text values, single values for lists,
    SCG's `_genkey_N` keys, the shortcut text."""
    example = dict(spec.example)
    yield {"name": spec.name, "args": example}
    yield {"name": spec.name, "args": {_snake(k): v for k, v in example.items()}}
    yield {"name": spec.name, "args": {_kebab(k): v for k, v in example.items()}}
    yield {"name": spec.name, "args": _text(example)}
    yield {"name": spec.name, "args": {k: _single(v) for k, v in example.items()}}
    yield {"name": spec.name, "args": {f"_genkey_{i}": _text(v) for i, v in enumerate(example.values())}}
    yield {"name": spec.name}
    yield {"name": spec.name, "args": None}
    values = [_text(example[f]) for f in spec.shortcut if f in example]
    flat = [item for v in values for item in (v if isinstance(v, list) else [v])]
    yield f"{spec.name}={','.join(map(str, flat))}" if flat else spec.name
    yield f" {spec.name} = {', '.join(map(str, flat))}"


def _parse(item: Any, specs: Mapping[str, Any], kind: str) -> list[str]:
    """What the gateway's own parser refuses in `item` (nothing: it accepts it)."""
    problems: list[str] = []
    parse_component(item, "x", specs, kind, REGISTRY.origins, lambda _, message: problems.append(message))
    return problems


SPECS = [("Predicate", s) for s in REGISTRY.predicates.values()] + [("Filter", s) for s in REGISTRY.filters.values()]


@pytest.mark.parametrize(("kind", "spec"), SPECS, ids=[f"{k}.{s.name}" for k, s in SPECS])
def test_what_the_gateway_accepts_the_schema_accepts(kind: str, spec: FilterSpec[Any] | PredicateSpec[Any]) -> None:
    specs = REGISTRY.predicates if kind == "Predicate" else REGISTRY.filters
    schema = validator(kind)
    accepted = 0
    for item in variants(spec):
        problems = _parse(item, specs, kind.lower())
        if not problems:
            accepted += 1
            errors = [e.message for e in schema.iter_errors(item)]
            assert schema.is_valid(item), (item, errors[:3])
    assert accepted >= 2  # the example itself and its shortcut text at least: this test cannot pass empty


# Values of every shape; validators read some before the field's type is checked (a boolean as 0/1, a duration
# or a date as a number, text stripped before its pattern).
VALUES: list[Any] = [0, 1, -1, 5000, 1.5, True, False, "", "x", " 1 ", "true", "10s", "GET", None]
VALUES += [[], ["x"], [1], [None], [["x"]], ["GET", "POST"], {}, {"a": 1}]


@pytest.mark.parametrize(("kind", "spec"), SPECS, ids=[f"{k}.{s.name}" for k, s in SPECS])
def test_any_value_the_gateway_accepts_for_an_arg_the_schema_accepts(
    kind: str, spec: FilterSpec[Any] | PredicateSpec[Any]
) -> None:
    specs = REGISTRY.predicates if kind == "Predicate" else REGISTRY.filters
    schema = validator(kind)
    for name in config_schema(spec).get("properties", {}):
        for value in VALUES:
            item = {"name": spec.name, "args": {**dict(spec.example), name: value}}
            if not _parse(item, specs, kind.lower()):
                assert schema.is_valid(item), item


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"connect-timeout": 500, "response-timeout": -1, "allow-encoded": ["%2F"], "owner": "team-a"},
        {"connect-timeout": "500", "allow-path-parameters": "true", "allow-encoded": ["%2F"]},
        {"cors": {"allowedOrigins": ["https://a.example"]}, "anything": {"else": [1, 2]}},
    ],
)
def test_route_metadata_the_gateway_accepts_the_schema_accepts(metadata: dict[str, Any]) -> None:
    problems: list[str] = []
    assert validate_model(RouteOptions, metadata, "metadata", lambda _, m: problems.append(m)) is not None, problems
    assert validator("RouteMetadata").is_valid(metadata)


ROUTE_VALUES: list[Any] = [None, 0, 1, 1.5, True, False, "", "x", "true", "TRUE", " false ", "no", [], {}, {"a": 1}]
ROUTE_VALUES += ["Path=/a", ["Path=/a"], [" Path = /a "], ["Path"], [{"name": "Path", "args": {"patterns": "/a"}}]]
ROUTE_VALUES += [[{"name": "Path"}], [{"name": "Path", "args": []}], [{"name": "Path", "args": ""}]]


@pytest.mark.parametrize("key", [*ROUTE_KEYS, "other"])
def test_any_route_the_gateway_accepts_the_schema_accepts(key: str, tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes: []\n", encoding="utf-8")
    settings = Settings()
    static = compile_snapshot(routes, REGISTRY, settings, 1).config
    schema = validator("RouteDefinition")
    for value in ROUTE_VALUES:
        route = {"id": "r", "uri": "http://127.0.0.1:9", key: value}
        if key == "enabled" and route_enabled(value) is False:
            continue  # the admin API refuses a disabled dynamic route before validating it (gateway.changes.plan)
        try:
            with_dynamic(static, [("route", route)], REGISTRY, settings)
        except ConfigError:
            continue
        assert schema.is_valid(route), route


def test_a_dynamic_route_is_never_disabled_and_holds_only_route_keys() -> None:
    route = validator("RouteDefinition")
    assert not route.is_valid({"enabled": "FALSE", "anything": 1})
    assert not route.is_valid({"uri": "http://127.0.0.1:9", "enabled": False})
    assert route.is_valid({"uri": "http://127.0.0.1:9", "enabled": " true "})
    assert route.is_valid({"uri": "http://127.0.0.1:9", "predicates": ["Path=/a/**"], "filters": None})
    assert not route.is_valid({"uri": "http://127.0.0.1:9", "unknown": 1})
    assert not route.is_valid({"uri": "http://127.0.0.1:9", "predicates": ["NoSuchPredicate=1"]})
