"""Parsing one predicate or filter entry of routes.yaml (shortcut or expanded form) and validating its args."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from gateway.config.definitions import ComponentDef
from gateway.config.source import join
from gateway.registry import BUILTIN_DISTRIBUTION
from gateway.spec import FilterSpec, PredicateSpec

Spec = FilterSpec[Any] | PredicateSpec[Any]
Fail = Callable[[str, str], None]
_FLAGS = {"true": True, "false": False}


def validate_model(model: type[BaseModel], args: Mapping[str, Any], path: str, fail: Fail, note: str = "") -> Any:
    """`model` validated from `args`, or None after reporting each error at its YAML path."""
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        for err in exc.errors():
            where = path
            for part in err["loc"]:
                where = join(where, part if isinstance(part, int) else str(part))
            fail(where, err["msg"] + note)
        return None


def origin_note(spec: Spec, origins: Mapping[str, str]) -> str:
    """ " (filter X from distribution D)" for a plugin, so its owners can be found; "" for a built-in."""
    dist = origins.get(spec.name, BUILTIN_DISTRIBUTION)
    if dist == BUILTIN_DISTRIBUTION:
        return ""
    kind = "filter" if isinstance(spec, FilterSpec) else "predicate"
    return f" ({kind} {spec.name} from distribution {dist!r})"


def parse_component(
    item: Any, path: str, specs: Mapping[str, Spec], kind: str, origins: Mapping[str, str], fail: Fail
) -> tuple[ComponentDef, Any] | None:
    """Parse one predicate/filter entry and validate its args: (definition, config), or None after `fail`."""
    parsed = _split(item, path, fail)
    if parsed is None:
        return None
    name, args, shortcut, values = parsed
    spec = specs.get(name)
    if spec is None:
        near = difflib.get_close_matches(name, list(specs), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(sorted(specs))}"
        fail(path, f"unknown {kind} {name!r}{hint}")
        return None
    if values is not None:
        mapped = _map_shortcut(spec, values, path, fail)
        if mapped is None:
            return None
        args = mapped
    config = validate_model(spec.config, args, join(path, "args"), fail, origin_note(spec, origins))
    return None if config is None else (ComponentDef(name, args, shortcut), config)


def _split(item: Any, path: str, fail: Fail) -> tuple[str, dict[str, Any], str | None, list[str] | None] | None:
    if isinstance(item, str):
        name, sep, rest = item.partition("=")
        # As Spring's tokenizeToStringArray: tokens trimmed, empty ones dropped (`X, , y` is two values).
        values = [v.strip() for v in rest.split(",") if v.strip()] if sep else []
        return name.strip(), {}, rest if sep else "", values
    if isinstance(item, dict) and isinstance(item.get("name"), str):
        unknown = set(item) - {"name", "args"}
        if unknown:
            fail(path, f"unknown keys {sorted(unknown)}; expected name and args")
            return None
        args = item.get("args") or {}
        if not isinstance(args, dict):
            fail(join(path, "args"), "args must be a mapping")
            return None
        return item["name"], _ungroup_indexed(args), None, None
    fail(path, "expected 'Name=arg1,arg2' or a mapping with 'name' and 'args'")
    return None


def _map_shortcut(spec: Spec, values: list[str], path: str, fail: Fail) -> dict[str, Any] | None:
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
        fail(path, f"{spec.name} takes at most {len(fields)} shortcut arguments ({', '.join(fields)})")
        return None
    return dict(zip(fields, values, strict=False))


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
