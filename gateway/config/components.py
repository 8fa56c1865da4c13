"""Parsing one predicate or filter entry of routes.yaml (shortcut or expanded form) and validating its args."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from gateway.config.binding import Bound, Loc, bind, error_message, field_named
from gateway.config.definitions import ComponentDef
from gateway.config.source import join
from gateway.registry import BUILTIN_DISTRIBUTION
from gateway.spec import ComponentConfig, FilterSpec, PredicateSpec

Spec = FilterSpec[Any] | PredicateSpec[Any]
Fail = Callable[[str, str], None]
#: SCG's key for the Nth shortcut value (NameUtils.generateName); route definitions exported as JSON carry it.
GENKEY = "_genkey_"
_FLAGS = {"true": True, "false": False}


def validate_model(
    model: type[BaseModel],
    args: Mapping[str, Any],
    path: str,
    fail: Fail,
    note: str = "",
    written: Callable[[Loc], Loc] | None = None,
) -> Any:
    """`model` validated from `args`, or None after reporting each error at its YAML path.

    `written` maps an error's location to where the value was written (relaxed names, gathered values), so the
    path, and with it the line, is the user's. Messages are ours: no pydantic prefixes, unknown keys with a hint.
    """
    if written is None and issubclass(model, ComponentConfig):
        # Bound here too (the model would do it itself) to learn where each key was written.
        bound = bind(model, args, keep_unknown=True)
        for loc, message in bound.problems:
            fail(_at(path, loc), message + note)
        args, written = bound.data, bound.where
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            fail(_at(path, written(loc) if written else loc), error_message(model, err) + note)
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
    """Parse one predicate/filter entry and validate its args: (definition, config), or None after `fail`.

    Args are read as SCG reads them, whichever form they come in: shortcut values and `_genkey_N` keys map onto
    the spec's shortcut fields (or are gathered into its list), names bind as Spring's relaxed binding does.
    The definition keeps the args normalized (canonical names, gathered lists; values as written), so it shows
    and serialises as something that reads back to the same config.
    """
    parsed = _split(item, path, fail)
    if parsed is None:
        return None
    name, raw, shortcut = parsed
    spec = specs.get(name)
    if spec is None:
        near = difflib.get_close_matches(name, list(specs), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(sorted(specs))}"
        fail(path, f"unknown {kind} {name!r}{hint}")
        return None
    args_path = join(path, "args")
    shaped = shape_args(spec, raw)
    bound = bind(spec.config, shaped.data, "argument")

    def written(loc: Loc) -> Loc:
        return loc if shortcut is not None else shaped.where(bound.where(loc))

    note = origin_note(spec, origins)
    for loc, message in shaped.problems:
        fail(path if shortcut is not None else _at(args_path, loc), message + note)
    for loc, message in bound.problems:
        fail(_at(args_path, shaped.where(loc)), message + note)
    problems = bool(shaped.problems or bound.problems)
    # After a name problem, "required" for the field it probably meant is noise: report the rest only.
    report = _without_missing(fail) if problems else fail
    config = validate_model(spec.config, bound.data, args_path, report, note, written)
    return None if config is None or problems else (ComponentDef(name, bound.data, shortcut), config)


def _at(path: str, loc: Loc) -> str:
    for part in loc:
        path = join(path, part if isinstance(part, int) else str(part))
    return path


def _without_missing(fail: Fail) -> Fail:
    def report(where: str, message: str) -> None:
        if not message.startswith("required, but not given"):
            fail(where, message)

    return report


def _split(item: Any, path: str, fail: Fail) -> tuple[str, dict[Any, Any], str | None] | None:
    """(name, raw args, shortcut text or None); shortcut values become `_genkey_N` args, as SCG stores them."""
    if isinstance(item, str):
        name, sep, rest = item.partition("=")
        # As Spring's tokenizeToStringArray: tokens trimmed, empty ones dropped (`X, , y` is two values).
        values = [v.strip() for v in rest.split(",") if v.strip()] if sep else []
        return name.strip(), {f"{GENKEY}{i}": v for i, v in enumerate(values)}, rest if sep else ""
    if isinstance(item, dict) and isinstance(item.get("name"), str):
        unknown = set(item) - {"name", "args"}
        if unknown:
            fail(path, f"unknown keys {sorted(unknown)}; expected name and args")
            return None
        args = item.get("args") or {}
        if not isinstance(args, dict):
            fail(join(path, "args"), "args must be a mapping")
            return None
        return item["name"], _ungroup_indexed(args), None
    fail(path, "expected 'Name=arg1,arg2' or a mapping with 'name' and 'args'")
    return None


def shape_args(spec: Spec, raw: Mapping[Any, Any]) -> Bound:
    """SCG's ShortcutType.normalize: map `_genkey_N` keys onto the shortcut fields, or gather every value.

    DEFAULT: the Nth entry, when its key is generated, is the Nth shortcut field (SCG uses the entry's position).
    GATHER_LIST: every value, whatever its key, is an item of the one list field (`Host` with `{host: a.org}`).
    GATHER_LIST_TAIL_FLAG: the same, plus the flag field, named or as a trailing `true`/`false` value.
    """
    if spec.shortcut_type == "default" or not spec.shortcut:
        return _positional(spec, raw)
    return _gather(spec, raw)


def _positional(spec: Spec, raw: Mapping[Any, Any]) -> Bound:
    out = Bound()
    fields = spec.shortcut
    for index, (key, value) in enumerate(raw.items()):
        name = str(key)
        if name.startswith(GENKEY):
            if index >= len(fields):
                takes = f"at most {len(fields)} shortcut arguments" + (f" ({', '.join(fields)})" if fields else "")
                out.problems.append(((key,), f"{spec.name} takes {takes}"))
                break
            name = fields[index]
        if name in out.data:
            out.problems.append(((key,), f"{name!r} is given twice (as a shortcut value and by name)"))
            continue
        out.data[name] = value
        out.written[(name,)] = (key,)
    return out


#: One value to gather: (value, where written, whether under a generated key or the list field's own key).
_Item = tuple[Any, Loc, bool]


def _gather(spec: Spec, raw: Mapping[Any, Any]) -> Bound:
    """Every value into the list field, as SCG's GATHER_LIST does; a key naming another field binds to it.

    SCG would gather that value too (XForwardedRemoteAddr's `maxTrustedIndex` becomes a source); a value under a
    key that names no field is gathered as SCG does, and refused when it cannot be an item (`caseSensitive: false`).
    The list field written alone under its own name is passed on as written: the field reads its own forms.
    """
    out = Bound()
    field = spec.shortcut[0]
    flag = spec.shortcut[1] if spec.shortcut_type == "gather_list_tail_flag" and len(spec.shortcut) > 1 else None
    items: list[_Item] = []
    names = {key: field_named(spec.config, str(key)) for key in raw}
    alone = sum(1 for name in names.values() if name in (None, field)) == 1
    for key, value in raw.items():
        named = names[key]
        if named is not None and named != field:
            _set(
                out, named, _FLAGS.get(value.lower(), value) if named == flag and isinstance(value, str) else value, key
            )
        elif named == field and alone and not (flag and isinstance(value, list) and value and _is_flag(value[-1])):
            _set(out, field, value, key)
        else:
            own = str(key).startswith(GENKEY) or named == field
            listed = value if isinstance(value, list) else [value]
            items += [(v, (key, i) if isinstance(value, list) else (key,), own) for i, v in enumerate(listed)]
    if field in out.data or (not items and field not in names.values()):
        return out
    if flag is not None and flag not in out.data and items and items[-1][2] and _is_flag(items[-1][0]):
        value, loc, _ = items.pop()
        out.data[flag], out.written[(flag,)] = _FLAGS.get(str(value).lower(), value), loc
    _gather_items(spec, field, items, out)
    return out


def _set(out: Bound, name: str, value: Any, key: Any) -> None:
    if name in out.data:
        out.problems.append(((key,), f"{name!r} is given twice"))
        return
    out.data[name], out.written[(name,)] = value, (key,)


def _gather_items(spec: Spec, field: str, items: list[_Item], out: Bound) -> None:
    """The list field from `items`; a value under a foreign key that cannot be an item is a problem at its key."""
    kept = []
    for value, loc, own in items:
        if own or not (value is None or isinstance(value, bool | int | float)):
            kept.append((value, loc))
            continue
        what = f"{spec.name} takes every argument value as one of its {field} (as SCG does)"
        out.problems.append((loc, f"{what}, and {value!r} is not one"))
    out.data[field] = [value for value, _ in kept]
    out.written.update({(field, index): loc for index, (_, loc) in enumerate(kept)})
    sources = {loc[0] for _, loc in kept}
    if len(sources) == 1:
        out.written[(field,)] = (sources.pop(),)


def _is_flag(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, str) and value.lower() in _FLAGS)


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
