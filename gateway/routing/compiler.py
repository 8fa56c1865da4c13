"""routes.yaml data → a validated GatewayConfig (`validate`): every problem with its location, no side effects.

The pipeline is parse (gateway.config.source) → validate (here) → build (gateway.routing.builder, in workers).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.components import Spec, parse_component, validate_model
from gateway.config.definitions import ComponentDef, DemoUpstream, GatewayConfig, RouteDefinition
from gateway.config.source import Document, join, load_yaml
from gateway.config.spring import TOP_LEVEL, gateway_block, unknown_key
from gateway.cors import GlobalCors
from gateway.errors import ConfigError, ConfigIssue
from gateway.exchange import Next, UpstreamRef
from gateway.lb.config import parse_upstreams
from gateway.registry import Registry
from gateway.routing.builder import Runtime, build
from gateway.routing.route import RouteOptions, parse_route_uri
from gateway.routing.scg_rules import generated_id, parse_route_text, route_enabled
from gateway.routing.table import RouteTable
from gateway.settings import Settings

ROUTE_KEYS = ("id", "uri", "predicates", "filters", "order", "metadata", "enabled")
#: a Spring property placeholder (`${test.uri}`, `${HOST:localhost}`); our `${env:NAME}` is substituted before this
PLACEHOLDER = re.compile(r"\$\{[^}]*\}")
Components = list[tuple[ComponentDef, Any]]


@dataclass
class _Entry:
    """A route whose definition validated; building it (in a worker) may still fail (a plugin's build function)."""

    definition: RouteDefinition
    predicates: Components
    filters: Components
    options: RouteOptions
    target: UpstreamRef
    generated: bool = False  # the id was derived from the route's content (it was written without one)


class _Compiler:
    def __init__(self, doc: Document, registry: Registry, settings: Settings) -> None:
        self.doc, self.registry, self.settings = doc, registry, settings
        self.issues: list[ConfigIssue] = []
        self.base = ""  # "spring.cloud.gateway" when the file is a Spring application.yml
        self.pool_names: set[str] = set()  # every name under upstreams:, valid or not (no second error for a route)

    def key(self, name: str) -> str:
        """A top-level name as a YAML path, under the Spring block when there is one."""
        return join(self.base, name) if self.base else name

    def fail(self, path: str, message: str) -> None:
        self.issues.append(self.doc.issue(path, message))

    def components(self, items: Any, path: str, specs: Mapping[str, Spec], kind: str) -> Components | None:
        if items is None:
            return []
        if not isinstance(items, list):
            self.fail(path, f"{kind}s must be a list")
            return None
        out = [
            parse_component(item, join(path, i), specs, kind, self.registry.origins, self.fail)
            for i, item in enumerate(items)
        ]
        return None if any(o is None for o in out) else [o for o in out if o is not None]

    # -- definitions: every check runs, so one pass reports every problem -------------------------------------
    def entry(self, item: Any, path: str, seen: set[str]) -> _Entry | None:
        """A route's definition checked; None when it is invalid (reported) or disabled (`enabled: false`)."""
        if isinstance(item, str):  # SCG's text form: `id=uri, Predicate=value`
            try:
                item = parse_route_text(item)
            except ValueError as exc:
                self.fail(path, str(exc))
                return None
        if not isinstance(item, dict):
            self.fail(path, "a route must be a mapping with a uri, or SCG's text form id=uri, Predicate=value")
            return None
        enabled = route_enabled(item.get("enabled"))
        if enabled is None:
            self.fail(join(path, "enabled"), "enabled must be true or false")
            return None
        if not enabled:
            return None  # as SCG: a disabled route is not read at all
        for key in set(item) - set(ROUTE_KEYS):
            self.fail(join(path, str(key)), f"unknown route key; expected one of {', '.join(ROUTE_KEYS)}")
        ok = self._scalars(item, path, seen)
        metadata: dict[str, Any] = item["metadata"] if isinstance(item.get("metadata"), dict) else {}
        options = validate_model(RouteOptions, metadata, join(path, "metadata"), self.fail)
        target = self._target(item.get("uri"), options or RouteOptions(), join(path, "uri"))
        preds = self.components(item.get("predicates"), join(path, "predicates"), self.registry.predicates, "predicate")
        filts = self.components(item.get("filters"), join(path, "filters"), self.registry.filters, "filter")
        if not ok or options is None or target is None or preds is None or filts is None:
            return None
        route_id = item.get("id")
        generated = route_id is None
        if route_id is None:
            route_id = generated_id(item["uri"], [d for d, _ in preds])
        definition = RouteDefinition(
            id=route_id,
            uri=item["uri"],
            predicates=tuple(d for d, _ in preds),
            filters=tuple(d for d, _ in filts),
            order=item.get("order", 0),
            metadata=dict(metadata),
        )
        return _Entry(definition, preds, filts, options, target, generated)

    def _target(self, uri: Any, options: RouteOptions, path: str) -> UpstreamRef | None:
        if not isinstance(uri, str):
            return None  # reported by _scalars
        placeholder = PLACEHOLDER.search(uri)
        if placeholder is not None:
            self.fail(
                path,
                f"{placeholder.group(0)} is a Spring property placeholder, which Sluicegate does not resolve (every "
                "request would fail): write the address, or ${env:NAME} to take it from the environment",
            )
            return None
        try:
            ref = parse_route_uri(uri, options)
        except ValueError as exc:
            self.fail(path, str(exc))
            return None
        if ref.pool is not None and ref.pool not in self.pool_names:
            self.fail(path, f"lb://{ref.pool}: no pool named {ref.pool!r} under upstreams:")
            return None
        return ref

    def _scalars(self, item: dict[str, Any], path: str, seen: set[str]) -> bool:
        ok = True
        route_id = item.get("id")
        if route_id is None:
            pass  # an id is generated from the route's content (scg_rules.generated_id)
        elif not isinstance(route_id, str) or not route_id.strip():
            self.fail(join(path, "id"), "id must be a non-empty string (or left out to have one generated)")
            ok = False
        elif route_id in seen:
            self.fail(join(path, "id"), f"duplicate route id {route_id!r}")
            ok = False
        else:
            seen.add(route_id)
        if not isinstance(item.get("uri"), str):
            self.fail(join(path, "uri"), "uri is required and must be a string")
            ok = False
        order = item.get("order", 0)
        if not isinstance(order, int) or isinstance(order, bool):
            self.fail(join(path, "order"), "order must be an integer")
            ok = False
        if item.get("metadata") is not None and not isinstance(item["metadata"], dict):
            self.fail(join(path, "metadata"), "metadata must be a mapping")
            ok = False
        return ok


def validate(
    source: Document | Mapping[str, Any], registry: Registry, settings: Settings, name: str = "<config>"
) -> GatewayConfig:
    """Validate a parsed config (a Document from `load_yaml`, or plain data named `name`) into a GatewayConfig.

    Raises ConfigError listing every problem with its location. Side-effect free: no spec's build function runs,
    so no breaker, budget, task, socket or global is touched; `gateway.routing.builder.build` does that, in workers.
    """
    doc = source if isinstance(source, Document) else Document(name, dict(source))
    c = _Compiler(doc, registry, settings)
    data, c.base = gateway_block(doc, doc.data if doc.data is not None else {}, c.fail)
    for key in set(data) - set(TOP_LEVEL):
        if not c.base and str(key).startswith("x-"):
            continue  # Compose's convention: a place for YAML anchors (`x-defaults: &defaults`), not read
        c.fail(c.key(str(key)), unknown_key(str(key), c.base))
    defaults = c.components(data.get("default-filters"), c.key("default-filters"), registry.filters, "filter")
    demo = None
    if "demo-upstream" in data:
        demo = validate_model(DemoUpstream, data["demo-upstream"] or {}, c.key("demo-upstream"), c.fail)
    upstreams = parse_upstreams(data.get("upstreams"), c.key("upstreams"), c.fail)
    if isinstance(data.get("upstreams"), dict):
        c.pool_names = {str(name) for name in data["upstreams"]}
    raw_routes = data.get("routes") or []
    if not isinstance(raw_routes, list):
        c.fail(c.key("routes"), "routes must be a list")
        raw_routes = []
    seen: set[str] = set()
    entries = [c.entry(item, join(c.key("routes"), i), seen) for i, item in enumerate(raw_routes)]
    _check_generated_ids(c, entries, seen)
    _check_uses(c, [_use(join(c.key("routes"), i), e) for i, e in enumerate(entries) if e is not None])
    globalcors = None
    if "globalcors" in data:
        globalcors = validate_model(GlobalCors, data["globalcors"] or {}, c.key("globalcors"), c.fail)
    warnings = [*doc.warnings, *_placeholders(c)]
    if c.issues:
        raise ConfigError(c.issues)
    kept = [(join(c.key("routes"), i), e) for i, e in enumerate(entries) if e is not None]
    return GatewayConfig(
        source=doc.source,
        routes=tuple(e.definition for _, e in kept),
        default_filters=tuple(d for d, _ in defaults or []),
        demo_upstream=demo,
        env_values=frozenset(doc.env_values),
        upstreams=upstreams,
        upstreams_written=dict(data["upstreams"]) if upstreams else {},
        warnings=tuple(warnings),
        notes=tuple(doc.notes),
        globalcors=globalcors,
        route_paths=tuple(path for path, _ in kept),
        defaults_path=c.key("default-filters"),
        lines=_entry_lines(doc, [(path, e.definition) for path, e in kept], c.key("default-filters"), defaults),
    )


_Use = tuple[str, str, Components, Components]  # (YAML path, route id, predicates, filters)


def _use(path: str, entry: _Entry) -> _Use:
    return path, entry.definition.id, entry.predicates, entry.filters


def _check_uses(c: _Compiler, entries: list[_Use]) -> None:
    """Run each spec's `check_uses` over all its uses in this config (one Weight per route and group, say): checks
    across routes happen here, at validation, never in a build function that only workers run."""
    uses: dict[tuple[str, str], list[tuple[str, str, Any]]] = {}  # (kind, spec) -> (path, route id, config)
    for path, route_id, predicates, filters in entries:
        for kind, components in (("predicates", predicates), ("filters", filters)):
            for j, (definition, config) in enumerate(components):
                where = join(join(path, kind), j)
                uses.setdefault((kind, definition.name), []).append((where, route_id, config))
    for (kind, name), found in uses.items():
        specs = c.registry.predicates if kind == "predicates" else c.registry.filters
        check = specs[name].check_uses
        if check is None:
            continue
        for index, problem in check([(route_id, config) for _, route_id, config in found]):
            c.fail(found[index][0], problem)


def with_dynamic(
    static: GatewayConfig,
    routes: Sequence[tuple[str, Any]],
    registry: Registry,
    settings: Settings,
    name: str = "<admin>",
) -> GatewayConfig:
    """`static` (a validated routes file) plus dynamic routes, validated together: the config that serves.

    `routes` are (path, route data) pairs, the path being where a problem with that route is reported (a JSON
    pointer's steps in YAML-path form: `operations[0].route`). Dynamic routes see the file's `upstreams:` and take
    part in the checks across routes; they come after the static ones, so at equal `order` a static route matches
    first. Every dynamic route needs an id, and none may equal a static one (the message names both). Raises
    ConfigError listing every problem; side-effect free, like `validate`.
    """
    c = _Compiler(Document(name, {"routes": [route for _, route in routes]}), registry, settings)
    c.pool_names = set(static.upstreams)
    static_ids = {route.id: static.path_of(i) for i, route in enumerate(static.routes)}
    seen: set[str] = set()
    entries: list[tuple[str, _Entry]] = []
    for path, item in routes:
        route_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(route_id, str) and route_id in static_ids:
            where = f"{static.source}: {static_ids[route_id]}"
            c.fail(
                join(path, "id"),
                f"{route_id!r} is the id of a static route ({where}); static routes change "
                "only by editing the routes file",
            )
            continue
        if isinstance(item, dict) and item.get("id") is None:
            c.fail(join(path, "id"), "a dynamic route needs an id")
            continue
        entry = c.entry(item, path, seen)
        if entry is not None:
            entries.append((path, entry))
    _check_uses(c, [*_static_uses(c, static), *(_use(path, e) for path, e in entries)])
    if c.issues:
        raise ConfigError(c.issues)
    return dataclasses.replace(
        static,
        routes=static.routes + tuple(e.definition for _, e in entries),
        route_paths=tuple(static.path_of(i) for i in range(len(static.routes))) + tuple(p for p, _ in entries),
        dynamic_ids=frozenset(e.definition.id for _, e in entries),
    )


def _static_uses(c: _Compiler, static: GatewayConfig) -> list[_Use]:
    """The static routes' parsed components, for the checks across routes (they validated: parsing them again
    reports nothing)."""
    uses = []
    for i, route in enumerate(static.routes):
        path = static.path_of(i)
        found: list[Components] = []
        for kind, specs, components in (
            ("predicate", c.registry.predicates, route.predicates),
            ("filter", c.registry.filters, route.filters),
        ):
            parsed = [
                parse_component(d.to_data(), join(path, f"{kind}s[{j}]"), specs, kind, c.registry.origins, _ignore)
                for j, d in enumerate(components)
            ]
            found.append([p for p in parsed if p is not None])
        uses.append((path, route.id, found[0], found[1]))
    return uses


def _ignore(path: str, message: str) -> None:
    """A static route validated already; a problem parsing it again would be a bug reported where it was read."""


def _entry_lines(
    doc: Document, routes: list[tuple[str, RouteDefinition]], defaults_path: str, defaults: Components | None
) -> dict[str, int]:
    """The line of every route and component entry, so an error found when building (in a worker) says where."""
    paths = [join(defaults_path, i) for i in range(len(defaults or []))]
    for path, route in routes:
        paths += [path, *(join(join(path, "predicates"), i) for i in range(len(route.predicates)))]
        paths += [join(join(path, "filters"), i) for i in range(len(route.filters))]
    lines = {path: doc.issue(path, "").line for path in paths}
    return {path: line for path, line in lines.items() if line is not None}


def compile_config(
    doc: Document, registry: Registry, settings: Settings, terminal: Next, version: int = 0
) -> tuple[GatewayConfig, RouteTable]:
    """Validate and build `doc` in this process (tests, `sluicegate validate`); ConfigError lists every problem."""
    config = validate(doc, registry, settings)
    return config, build(config, registry, settings, Runtime(terminal, version))


def _check_generated_ids(c: _Compiler, entries: list[_Entry | None], explicit: set[str]) -> None:
    """A generated id must not be another route's explicit id, nor another generated one: both are reported."""
    first: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if entry is None or not entry.generated:
            continue
        route_id, where = entry.definition.id, join(c.key("routes"), i)
        if route_id in explicit:
            c.fail(where, f"the id generated for this route, {route_id!r}, is another route's id; give this one an id")
        elif route_id in first:
            c.fail(
                where,
                f"this route has the uri and predicates of routes[{first[route_id]}], so both would get the id "
                f"{route_id!r}; give one of them an id",
            )
        else:
            first[route_id] = i


def _placeholders(c: _Compiler) -> list[ConfigIssue]:
    """Warnings for the `${...}` placeholders in what the gateway reads (they stay text); an error for one in an
    upstream instance URL, which, like a route URI, could never be reached. Route URIs are checked in `_target`."""
    base, warnings = c.base, []
    for path, text in c.doc.placeholders.items():
        if base and not (path == base or path.startswith((base + ".", base + "["))):
            continue  # the rest of an application.yml is not read
        if _INSTANCE_URL.search(path):
            c.fail(path, f"{text} is a Spring property placeholder, which Sluicegate does not resolve: write the URL")
            continue
        message = f"{text} is left as text: Spring would resolve this property placeholder; Sluicegate substitutes"
        warnings.append(c.doc.issue(path, message + " only ${env:NAME}"))
    return warnings


_INSTANCE_URL = re.compile(r"(^|\.)upstreams\..+\.instances\[\d+\]\.url$")


def load_routes_file(path: Path, registry: Registry, settings: Settings) -> GatewayConfig:
    """Read and validate a routes file. Raises ConfigError naming the file, YAML path and reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), "", f"cannot read: {exc.strerror or exc}")]) from exc
    doc, issues = load_yaml(text, str(path))
    if issues:
        raise ConfigError(issues)
    return validate(doc, registry, settings)
