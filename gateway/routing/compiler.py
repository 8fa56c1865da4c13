"""routes.yaml data → validated definitions → a RouteTable; all or nothing, every problem with its location."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from gateway.config.definitions import ComponentDef, DemoUpstream, GatewayConfig, RouteDefinition
from gateway.config.source import Document, join, load_yaml
from gateway.errors import ConfigError, ConfigIssue
from gateway.exchange import Filter, MatchHints, Next, Predicate
from gateway.registry import Registry
from gateway.routing.chain import compose
from gateway.routing.route import Route, RouteOptions, parse_route_uri
from gateway.routing.table import RouteTable
from gateway.settings import Settings
from gateway.spec import BuildContext, FilterSpec, PredicateSpec

TOP_LEVEL = ("routes", "default-filters", "demo-upstream")
ROUTE_KEYS = ("id", "uri", "predicates", "filters", "order", "metadata")
_FLAGS = {"true": True, "false": False}


class _Compiler:
    def __init__(self, doc: Document, registry: Registry, settings: Settings, terminal: Next) -> None:
        self.doc, self.registry, self.settings, self.terminal = doc, registry, settings, terminal
        self.issues: list[ConfigIssue] = []

    def fail(self, path: str, message: str) -> None:
        self.issues.append(self.doc.issue(path, message))

    # -- components -------------------------------------------------------------------------------------------
    def component(
        self, item: Any, path: str, specs: Mapping[str, FilterSpec[Any] | PredicateSpec[Any]], kind: str
    ) -> tuple[ComponentDef, Any] | None:
        """Parse one predicate/filter entry and validate its args; (definition, config) or None."""
        parsed = self._split(item, path)
        if parsed is None:
            return None
        name, args, shortcut, values = parsed
        spec = specs.get(name)
        if spec is None:
            near = difflib.get_close_matches(name, list(specs), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(sorted(specs))}"
            self.fail(path, f"unknown {kind} {name!r}{hint}")
            return None
        if values is not None:
            mapped = self._map_shortcut(spec, values, path)
            if mapped is None:
                return None
            args = mapped
        config = self._validate(spec.config, args, join(path, "args"))
        if config is None:
            return None
        return ComponentDef(name, args, shortcut), config

    def _split(self, item: Any, path: str) -> tuple[str, dict[str, Any], str | None, list[str] | None] | None:
        if isinstance(item, str):
            name, sep, rest = item.partition("=")
            values = [v.strip() for v in rest.split(",")] if sep else []
            return name.strip(), {}, rest if sep else "", values
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            unknown = set(item) - {"name", "args"}
            if unknown:
                self.fail(path, f"unknown keys {sorted(unknown)}; expected name and args")
                return None
            args = item.get("args") or {}
            if not isinstance(args, dict):
                self.fail(join(path, "args"), "args must be a mapping")
                return None
            return item["name"], _ungroup_indexed(args), None, None
        self.fail(path, "expected 'Name=arg1,arg2' or a mapping with 'name' and 'args'")
        return None

    def _map_shortcut(
        self, spec: FilterSpec[Any] | PredicateSpec[Any], values: list[str], path: str
    ) -> dict[str, Any] | None:
        fields = spec.shortcut
        if not values:
            return {}
        if spec.shortcut_type == "gather_list" and fields:
            return {fields[0]: values}
        if spec.shortcut_type == "gather_list_tail_flag" and len(fields) == 2:
            if len(values) > 1 and values[-1].lower() in _FLAGS:
                return {fields[0]: values[:-1], fields[1]: _FLAGS[values[-1].lower()]}
            return {fields[0]: values}
        if len(values) > len(fields):
            self.fail(path, f"{spec.name} takes at most {len(fields)} shortcut arguments ({', '.join(fields)})")
            return None
        return dict(zip(fields, values, strict=False))

    def _validate(self, model: type[BaseModel], args: Mapping[str, Any], path: str) -> Any:
        try:
            return model.model_validate(args)
        except ValidationError as exc:
            for err in exc.errors():
                where = path
                for part in err["loc"]:
                    where = join(where, part if isinstance(part, int) else str(part))
                self.fail(where, err["msg"])
            return None

    # -- routes -----------------------------------------------------------------------------------------------
    def route_definition(
        self, item: Any, path: str, seen: set[str]
    ) -> tuple[RouteDefinition, list[Any], list[Any], RouteOptions] | None:
        if not isinstance(item, dict):
            self.fail(path, "a route must be a mapping with id and uri")
            return None
        for key in set(item) - set(ROUTE_KEYS):
            self.fail(join(path, str(key)), f"unknown route key; expected one of {', '.join(ROUTE_KEYS)}")
        ok = self._route_scalars(item, path, seen)
        options = self._validate(RouteOptions, item.get("metadata") or {}, join(path, "metadata"))
        preds = self._components(
            item.get("predicates"), join(path, "predicates"), self.registry.predicates, "predicate"
        )
        filts = self._components(item.get("filters"), join(path, "filters"), self.registry.filters, "filter")
        if not ok or options is None or preds is None or filts is None:
            return None
        definition = RouteDefinition(
            id=item["id"],
            uri=item["uri"],
            predicates=tuple(d for d, _ in preds),
            filters=tuple(d for d, _ in filts),
            order=item.get("order", 0),
            metadata=dict(item.get("metadata") or {}),
        )
        return definition, [c for _, c in preds], [c for _, c in filts], options

    def _route_scalars(self, item: dict[str, Any], path: str, seen: set[str]) -> bool:
        ok = True
        route_id = item.get("id")
        if not isinstance(route_id, str) or not route_id.strip():
            self.fail(join(path, "id"), "id is required and must be a non-empty string")
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

    def _components(
        self, items: Any, path: str, specs: Mapping[str, Any], kind: str
    ) -> list[tuple[ComponentDef, Any]] | None:
        if items is None:
            return []
        if not isinstance(items, list):
            self.fail(path, f"{kind}s must be a list")
            return None
        out = [self.component(item, join(path, i), specs, kind) for i, item in enumerate(items)]
        return None if any(o is None for o in out) else [o for o in out if o is not None]


def _ungroup_indexed(args: dict[str, Any]) -> dict[str, Any]:
    """SCG's expanded form writes lists as indexed keys (`patterns.0`, `patterns.1`); turn them into lists."""
    out: dict[str, Any] = {}
    indexed: dict[str, dict[int, Any]] = {}
    for key, value in args.items():
        base, dot, index = str(key).rpartition(".")
        if dot and index.isdigit():
            indexed.setdefault(base, {})[int(index)] = value
        else:
            out[str(key)] = value
    for base, values in indexed.items():
        out.setdefault(base, [values[i] for i in sorted(values)])
    return out


def compile_config(
    doc: Document, registry: Registry, settings: Settings, terminal: Next, version: int = 0
) -> tuple[GatewayConfig, RouteTable]:
    """Validate and build every route of `doc`. Raises ConfigError listing every problem; nothing half-built."""
    c = _Compiler(doc, registry, settings, terminal)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([doc.issue("", "the routes file must be a mapping with a 'routes' list")])
    for key in set(data) - set(TOP_LEVEL):
        c.fail(str(key), f"unknown top-level key; expected one of {', '.join(TOP_LEVEL)}")
    defaults = c._components(data.get("default-filters"), "default-filters", registry.filters, "filter")
    demo = c._validate(DemoUpstream, data["demo-upstream"] or {}, "demo-upstream") if "demo-upstream" in data else None
    raw_routes = data.get("routes") or []
    if not isinstance(raw_routes, list):
        c.fail("routes", "routes must be a list")
        raw_routes = []
    seen: set[str] = set()
    parsed = [c.route_definition(item, join("routes", i), seen) for i, item in enumerate(raw_routes)]
    routes = []
    for position, entry in enumerate(parsed):
        if entry is not None and defaults is not None:
            route = _build_route(c, position, entry, defaults)
            if route is not None:
                routes.append(route)
    if c.issues:
        raise ConfigError(c.issues)
    config = GatewayConfig(
        source=doc.source,
        routes=tuple(e[0] for e in parsed if e is not None),
        default_filters=tuple(d for d, _ in defaults or []),
        demo_upstream=demo,
        secret_paths=frozenset(doc.secret_paths),
    )
    return config, RouteTable(routes, version)


def _build_route(
    c: _Compiler,
    position: int,
    entry: tuple[RouteDefinition, list[Any], list[Any], RouteOptions],
    defaults: list[tuple[ComponentDef, Any]],
) -> Route | None:
    definition, pred_configs, filter_configs, options = entry
    path = join("routes", position)
    try:
        target = parse_route_uri(definition.uri, options)
    except ValueError as exc:
        c.fail(join(path, "uri"), str(exc))
        return None
    ctx = BuildContext(definition.id, definition.metadata, c.settings, definition.uri)
    predicates: list[Predicate] = []
    hints = MatchHints()
    for i, (pdef, config) in enumerate(zip(definition.predicates, pred_configs, strict=True)):
        spec = c.registry.predicates[pdef.name]
        built = _build(c, lambda s=spec, cfg=config: s.build(cfg, ctx), join(join(path, "predicates"), i))
        if built is not None:
            predicates.append(built)
            _merge_hints(hints, spec.hints(config) if spec.hints else None)
    chain = _build_chain(c, ctx, path, defaults, list(zip(definition.filters, filter_configs, strict=True)))
    if chain is None or len(predicates) != len(definition.predicates):
        return None
    return Route(
        definition.id,
        definition.order,
        position,
        definition,
        tuple(predicates),
        chain,
        target,
        options,
        hints,
        definition.metadata,
    )


def _build_chain(
    c: _Compiler,
    ctx: BuildContext,
    path: str,
    defaults: list[tuple[ComponentDef, Any]],
    own: list[tuple[ComponentDef, Any]],
) -> Next | None:
    """Default filters first, then the route's own; stable-sorted by band, so YAML order holds within a band."""
    entries = [(d, cfg, join("default-filters", i)) for i, (d, cfg) in enumerate(defaults)]
    entries += [(d, cfg, join(join(path, "filters"), i)) for i, (d, cfg) in enumerate(own)]
    built: list[tuple[int, Filter]] = []
    for fdef, config, where in entries:
        spec = c.registry.filters[fdef.name]
        instance = _build(c, lambda s=spec, cfg=config: s.build(cfg, ctx), where)
        if instance is None:
            return None
        built.append((spec.band, instance))
    built.sort(key=lambda pair: pair[0])
    return compose([f for _, f in built], c.terminal)


def _build(c: _Compiler, make: Any, where: str) -> Any:
    try:
        return make()
    except (ValueError, TypeError) as exc:
        c.fail(where, str(exc))
        return None


def _merge_hints(into: MatchHints, new: MatchHints | None) -> None:
    # Predicates are ANDed, so any one predicate's constraint is a valid index key; keep the first of each.
    if new is None:
        return
    if into.path_prefixes is None and new.path_prefixes is not None:
        into.path_prefixes = new.path_prefixes
    if into.hosts is None and new.hosts is not None:
        into.hosts = new.hosts


def load_routes_file(
    path: Path, registry: Registry, settings: Settings, terminal: Next, version: int = 0
) -> tuple[GatewayConfig, RouteTable]:
    """Read, validate and compile a routes file. Raises ConfigError naming the file, YAML path and reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), "", f"cannot read: {exc.strerror or exc}")]) from exc
    doc, issues = load_yaml(text, str(path))
    if issues:
        raise ConfigError(issues)
    return compile_config(doc, registry, settings, terminal, version)
