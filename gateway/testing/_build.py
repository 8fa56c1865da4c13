"""The kit: a filter or predicate built from its routes.yaml entry through the gateway's own parse path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.components import parse_component
from gateway.exchange import Filter, Predicate
from gateway.registry import load_registry
from gateway.settings import Settings
from gateway.spec import BuildContext, FilterSpec, PredicateSpec

Spec = FilterSpec[Any] | PredicateSpec[Any]
#: A routes.yaml entry of one filter or predicate: `"Name=a,b"` or `{"name": "Name", "args": {...}}`.
Entry = str | Mapping[str, Any]


class BuildError(ValueError):
    """A config the gateway refuses: `problems` holds (YAML path, message) pairs, as `sluicegate validate` shows."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("\n".join(f"{path}: {message}" for path, message in problems))
        self.problems = problems


# -- building a component from its config ----------------------------------------------------------------------


def _context(route_id: str, uri: str, metadata: Mapping[str, Any] | None, settings: Settings | None) -> BuildContext:
    # The services on BuildContext keep their defaults: the per-process in-memory implementations.
    return BuildContext(route_id, dict(metadata or {}), settings or Settings(), uri)


def _parse(entry: Entry, kind: str, specs: Mapping[str, Spec], origins: Mapping[str, str]) -> Any:
    """The validated config of `entry`, or BuildError with every problem at its path (as the gateway reports)."""
    problems: list[tuple[str, str]] = []
    item = dict(entry) if isinstance(entry, Mapping) else entry
    parsed = parse_component(
        item, f"{kind}s[0]", specs, kind, origins, lambda path, message: problems.append((path, message))
    )
    if parsed is None or problems:
        raise BuildError(problems or [(f"{kind}s[0]", "refused")])
    return parsed


def _build(entry: Entry, kind: str, spec: Spec | None, context: BuildContext) -> Any:
    """Parse `entry` against the installed specs of `kind` (or `spec` alone) and build it with `context`."""
    if spec is None:
        registry = load_registry()
        specs: Mapping[str, Spec] = registry.filters if kind == "filter" else registry.predicates
        origins: Mapping[str, str] = registry.origins
    else:
        specs, origins = {spec.name: spec}, {}
    definition, config = _parse(entry, kind, specs, origins)
    return specs[definition.name].build(config, context)


def build_filter(
    entry: Entry,
    *,
    spec: FilterSpec[Any] | None = None,
    route_id: str = "test",
    uri: str = "http://127.0.0.1:9",
    metadata: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
) -> Filter:
    """The filter routes.yaml's `entry` builds, through the gateway's own parse path.

    Without `spec` the name is looked up among the installed filters (your package installed with
    `pip install -e .`); with `spec`, that spec alone is used (before it is installed). Raises BuildError.
    """
    built: Filter = _build(entry, "filter", spec, _context(route_id, uri, metadata, settings))
    return built


def build_predicate(
    entry: Entry,
    *,
    spec: PredicateSpec[Any] | None = None,
    route_id: str = "test",
    uri: str = "http://127.0.0.1:9",
    metadata: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
) -> Predicate:
    """As `build_filter`, for a predicate (`"Path=/api/**"`)."""
    built: Predicate = _build(entry, "predicate", spec, _context(route_id, uri, metadata, settings))
    return built
