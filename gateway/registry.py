"""Discovery of predicates and filters through entry points, validated before any route is built.

Built-ins register exactly as a team's plugin does (`sluicegate.filters` / `sluicegate.predicates` groups), so
`gateway/` never imports `filters/` directly. Every problem names the entry point and its distribution.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel

from gateway.spec import BANDS, FilterSpec, PredicateSpec

FILTER_GROUP = "sluicegate.filters"
PREDICATE_GROUP = "sluicegate.predicates"
BUILTIN_DISTRIBUTION = "sluicegate"


class RegistryError(Exception):
    """One or more plugins cannot be used; the gateway refuses to start."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Registry:
    filters: Mapping[str, FilterSpec[Any]]
    predicates: Mapping[str, PredicateSpec[Any]]
    #: name -> distribution that provided it
    origins: Mapping[str, str]


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "<unknown distribution>"


def _describe(ep: EntryPoint) -> str:
    return f"entry point {ep.name!r} ({ep.group} = {ep.value}) of distribution {_dist_name(ep)!r}"


def _unique(eps: Iterable[EntryPoint]) -> list[EntryPoint]:
    # The same distribution can be visible twice (an editable install plus its egg-info on sys.path).
    seen: set[tuple[str, str, str]] = set()
    out = []
    for ep in eps:
        key = (_dist_name(ep).lower(), ep.name, ep.value)
        if key not in seen:
            seen.add(key)
            out.append(ep)
    return out


def _check_schema(spec: FilterSpec[Any] | PredicateSpec[Any]) -> list[str]:
    if not (isinstance(spec.config, type) and issubclass(spec.config, BaseModel)):
        return ["its config is not a pydantic model"]
    missing = [n for n, f in spec.config.model_fields.items() if not f.description]
    return [f"config field {n!r} has no description" for n in missing]


def _load(
    group: str, kind: type[Any], problems: list[str], distribution: str | None
) -> dict[str, tuple[Any, EntryPoint]]:
    found: dict[str, tuple[Any, EntryPoint]] = {}
    eps: Iterable[EntryPoint] = entry_points(group=group)
    if distribution is not None:
        # Before loading: another distribution's plugin is not imported at all, so it cannot break this view.
        eps = [ep for ep in eps if _dist_name(ep).lower() == distribution.lower()]
    for ep in _unique(eps):
        try:
            spec: Any = ep.load()
        except Exception as exc:  # a plugin's import error must not hide the others
            problems.append(f"{_describe(ep)} failed to load: {type(exc).__name__}: {exc}")
            continue
        if not isinstance(spec, kind):
            problems.append(f"{_describe(ep)} is a {type(spec).__name__}, expected a {kind.__name__}")
            continue
        if spec.name != ep.name:
            problems.append(f"{_describe(ep)} exports a spec named {spec.name!r}; the names must be equal")
            continue
        problems.extend(f"{_describe(ep)}: {p}" for p in _check_schema(spec))
        if ep.name in found:
            problems.append(_clash(ep, found[ep.name][1]))
            continue
        found[ep.name] = (spec, ep)
    return found


def _clash(new: EntryPoint, old: EntryPoint) -> str:
    a, b = (new, old) if _dist_name(old) == BUILTIN_DISTRIBUTION else (old, new)
    if _dist_name(b) == BUILTIN_DISTRIBUTION:
        return f"{_describe(a)} clashes with the built-in of the same name; rename the plugin"
    return f"{_describe(new)} clashes with {_describe(old)}: two plugins with one name"


def _check_bands(filters: dict[str, tuple[Any, EntryPoint]], problems: list[str]) -> None:
    # An order only names a band; within a band the route's YAML order decides (D26), so specs may share a number.
    for spec, ep in filters.values():
        if not min(BANDS) <= spec.order < 1000:
            problems.append(f"{_describe(ep)} has order {spec.order}, outside the bands 100-999")


def scan_registry(distribution: str | None = None) -> tuple[Registry, list[str]]:
    """Discover and validate the installed predicates and filters — only `distribution`'s when given.

    Returns everything that loaded (a spec with a problem in its order or schema included) and every problem
    found, so a tool can show the whole picture; `load_registry` is the strict form the gateway starts with.
    """
    problems: list[str] = []
    filters = _load(FILTER_GROUP, FilterSpec, problems, distribution)
    predicates = _load(PREDICATE_GROUP, PredicateSpec, problems, distribution)
    _check_bands(filters, problems)
    origins = {name: _dist_name(ep) for name, (_, ep) in {**predicates, **filters}.items()}
    registry = Registry(
        filters={name: spec for name, (spec, _) in filters.items()},
        predicates={name: spec for name, (spec, _) in predicates.items()},
        origins=origins,
    )
    return registry, problems


def load_registry(distribution: str | None = None) -> Registry:
    """Discover and validate every installed predicate and filter (only `distribution`'s when given).

    Raises RegistryError listing every problem; the gateway never starts with a partial set.
    """
    registry, problems = scan_registry(distribution)
    if problems:
        raise RegistryError(problems)
    return registry
