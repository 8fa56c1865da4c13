"""A validated GatewayConfig → a RouteTable: runs every spec's build function. Workers only, once per version.

This is the step with side effects (a filter's build may create breakers, budgets, metrics); validation
(gateway.routing.compiler.validate) has none. Every component's args were validated already, so they are read
back with the spec's model; what can still fail is a plugin's build function, reported at the entry's location.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gateway.config.components import Spec, origin_note
from gateway.config.definitions import ComponentDef, GatewayConfig
from gateway.config.source import join
from gateway.cors import CorsPolicy, CorsTable, GlobalCors
from gateway.errors import ConfigError, ConfigIssue
from gateway.exchange import Filter, MatchHints, Next, Predicate
from gateway.registry import Registry
from gateway.routing.chain import compose
from gateway.routing.lifecycle import Lifecycle, has_lifecycle
from gateway.routing.pathpattern import compile_path_pattern
from gateway.routing.route import Route, RouteOptions, UpstreamTimeouts, parse_route_uri
from gateway.routing.table import RouteTable
from gateway.routing.weights import WeightGroups
from gateway.settings import Settings
from gateway.spec import BuildContext


@dataclass
class Runtime:
    """What a build binds the routes to in this process."""

    #: where every chain ends (the dispatcher's forwarding step)
    terminal: Next
    version: int = 0
    #: extra BuildContext fields for every route of this build (one set per worker and version, e.g. services)
    context: Mapping[str, Any] = field(default_factory=dict)


class _Builder:
    def __init__(self, config: GatewayConfig, registry: Registry, settings: Settings, runtime: Runtime) -> None:
        self.config, self.registry, self.settings, self.runtime = config, registry, settings, runtime
        self.issues: list[ConfigIssue] = []
        self.weights = WeightGroups()
        self.lifecycle = Lifecycle()

    def make(self, spec: Spec, make: Callable[[], Any], where: str) -> Any:
        """Run a spec's build function; any exception is a config error at `where` naming the plugin."""
        try:
            return make()
        except (ValueError, TypeError) as exc:
            self.issues.append(self.config.issue(where, f"{exc}{origin_note(spec, self.registry.origins)}"))
        except Exception as exc:  # a plugin's bug must not crash the load without its location
            dist = self.registry.origins.get(spec.name, "?")
            message = f"{spec.name} from distribution {dist!r} failed to build: {type(exc).__name__}: {exc}"
            self.issues.append(self.config.issue(where, message))
        return None

    def component(self, spec: Spec, cdef: ComponentDef, ctx: BuildContext, where: str) -> Any:
        config = self.make(spec, partial(spec.config.model_validate, dict(cdef.args)), where)
        if config is None:
            return None, None
        return config, self.make(spec, partial(spec.build, config, ctx), where)

    def route(self, position: int) -> Route | None:
        definition, path = self.config.routes[position], self.config.path_of(position)
        options = RouteOptions.model_validate(dict(definition.metadata))
        extra = dict(self.runtime.context)
        ctx = BuildContext(definition.id, definition.metadata, self.settings, definition.uri, self.weights, **extra)
        predicates: list[Predicate] = []
        hints = MatchHints()
        for i, pdef in enumerate(definition.predicates):
            spec = self.registry.predicates[pdef.name]
            config, built = self.component(spec, pdef, ctx, join(join(path, "predicates"), i))
            if built is not None:
                predicates.append(built)
                self.lifecycle.add(built)
                _merge_hints(hints, spec.hints(config) if spec.hints else None)
        chain = self.chain(ctx, path, definition.filters)
        if chain is None or len(predicates) != len(definition.predicates):
            return None
        return Route(
            definition.id,
            definition.order,
            position,
            definition,
            tuple(predicates),
            chain,
            parse_route_uri(definition.uri, options),
            options,
            hints,
            definition.metadata,
            UpstreamTimeouts.of(self.settings.timeouts, options),
            options.allowed_flags(),
            CorsPolicy(options.cors) if options.cors is not None else None,
        )

    def chain(self, ctx: BuildContext, path: str, own: tuple[ComponentDef, ...]) -> Next | None:
        """Default filters first, then the route's own; stable-sorted by band, so YAML order holds within a band.

        A route with a filter that has start/stop counts its in-flight requests (Lifecycle.counted), so `stop`
        waits for them after a reload; any other route's chain is exactly what it was (nothing on the hot path).
        """
        defaults = self.config.defaults_path
        entries = [(d, join(defaults, i)) for i, d in enumerate(self.config.default_filters)]
        entries += [(d, join(join(path, "filters"), i)) for i, d in enumerate(own)]
        built: list[tuple[int, Filter]] = []
        for fdef, where in entries:
            spec = self.registry.filters[fdef.name]
            _, instance = self.component(spec, fdef, ctx, where)
            if instance is None:
                return None
            built.append((spec.band, instance))
        built.sort(key=lambda pair: pair[0])
        chain = compose([f for _, f in built], self.runtime.terminal)
        managed = [f for _, f in built if has_lifecycle(f)]
        for instance in managed:
            self.lifecycle.add(instance)
        return self.lifecycle.counted(chain) if managed else chain


def _merge_hints(into: MatchHints, new: MatchHints | None) -> None:
    # Predicates are ANDed, so any one predicate's constraint is a valid index key; keep the first of each.
    if new is None:
        return
    if into.path_prefixes is None and new.path_prefixes is not None:
        into.path_prefixes = new.path_prefixes
    if into.hosts is None and new.hosts is not None:
        into.hosts = new.hosts


def build(config: GatewayConfig, registry: Registry, settings: Settings, runtime: Runtime) -> RouteTable:
    """Build every route of a validated config. Raises ConfigError (every build failure, with its location).

    The table's `lifecycle` holds the built components that have `start`/`stop`; none was started: the caller
    runs `table.lifecycle.start()` before the table serves (gateway.app.Gateway.prepare).
    """
    b = _Builder(config, registry, settings, runtime)
    routes = [b.route(i) for i in range(len(config.routes))]
    if b.issues:
        raise ConfigError(b.issues)
    table = RouteTable(
        [r for r in routes if r is not None], runtime.version, _global_cors(config.globalcors), b.weights
    )
    table.lifecycle = b.lifecycle
    return table


def _global_cors(globalcors: GlobalCors | None) -> CorsTable | None:
    if globalcors is None or not globalcors.cors_configurations:
        return None
    return CorsTable([(compile_path_pattern(p), CorsPolicy(cfg)) for p, cfg in globalcors.patterns()])
