"""Binding argument names onto a config schema the way Spring's relaxed binding does, remembering where each was.

Spring compares property names case-insensitively and ignoring `-` and `_`, so `maxBackOff`, `max-backoff` and
`MAX_BACKOFF` all name `maxBackoff`. Here that comparison is exact first and folded second; a folded name that
two fields share is an error, never a guess. Blocks SCG nests but a schema holds flat (Retry's `backoff:`) and
dotted keys (`backoff.firstBackoff`) are unfolded the same way, and nested models are bound recursively.

The result keeps, for every canonical location, where it was written, so an error found later by validation is
reported at the key the user wrote (and so at its line).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

Loc = tuple[str | int, ...]


def fold(name: str) -> str:
    """A name as Spring compares it: lower case, without `-` and `_`."""
    return name.replace("-", "").replace("_", "").lower()


@dataclass(frozen=True)
class Block:
    """A block SCG nests (`backoff: {firstBackoff: 10ms}`) whose fields the schema holds flat.

    `fields` are canonical field names; `implied` gives values set when the block is written without them (SCG's
    defaults for a present block, such as Retry's `firstBackoff: 5ms`).
    """

    fields: tuple[str, ...]
    implied: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Bound:
    """Arguments under canonical names, where each was written, and the problems found."""

    data: dict[str, Any] = field(default_factory=dict)
    #: canonical location -> location as written; the longest matching prefix applies
    written: dict[Loc, Loc] = field(default_factory=dict)
    problems: list[tuple[Loc, str]] = field(default_factory=list)

    def where(self, loc: Loc) -> Loc:
        """The location as written of a canonical location (a validation error's `loc`)."""
        for cut in range(len(loc), 0, -1):
            known = self.written.get(loc[:cut])
            if known is not None:
                return known + loc[cut:]
        return loc


@dataclass(frozen=True)
class _Names:
    """The spellings one model accepts: exact ones, and folded ones (which may be ambiguous)."""

    exact: Mapping[str, str]  # spelling -> canonical name
    folded: Mapping[str, tuple[str, ...]]  # folded spelling -> canonical names (more than one: ambiguous)
    fields: Mapping[str, FieldInfo]  # canonical name -> field
    blocks: Mapping[str, Block]
    forbid: bool


@cache
def _names(model: type[BaseModel]) -> _Names:
    exact: dict[str, str] = {}
    folded: dict[str, set[str]] = {}
    fields: dict[str, FieldInfo] = {}
    by_name = bool(model.model_config.get("populate_by_name"))
    for name, info in model.model_fields.items():
        choices = _validation_names(info)
        canonical = info.alias if info.alias and info.alias in choices else (choices[0] if choices else name)
        fields[canonical] = info
        for spelling in {*choices, *([name] if by_name or not choices else [])}:
            exact[spelling] = canonical
            folded.setdefault(fold(spelling), set()).add(canonical)
    blocks: Mapping[str, Block] = getattr(model, "blocks", {})
    return _Names(
        exact,
        {k: tuple(sorted(v)) for k, v in folded.items()},
        fields,
        blocks,
        model.model_config.get("extra") == "forbid",
    )


def _validation_names(info: FieldInfo) -> list[str]:
    alias = info.validation_alias
    if isinstance(alias, str):
        return [alias]
    choices = getattr(alias, "choices", None)
    if choices:
        return [c for c in choices if isinstance(c, str)]
    return [info.alias] if info.alias else []


def bind(model: type[BaseModel], data: Mapping[Any, Any], noun: str = "key", keep_unknown: bool = False) -> Bound:
    """`data` with every key under its canonical name (see the module docstring); nothing is validated here.

    Problems (unknown, ambiguous or repeated names, a block that is not a mapping) are returned, never raised;
    their keys are left out of `data`. `noun` names a key in messages ("argument" for a filter's args). With
    `keep_unknown`, an unknown key stays as written instead, for validation to report at its own location.
    """
    names = _names(model)
    out = Bound()
    given: dict[str, str] = {}  # canonical -> the key as written, to report a second spelling
    blocks_seen: list[Block] = []
    for key, value in _nest_dotted(names, data, out.problems).items():
        text = str(key)
        canonical, problem = _resolve(names, text, noun)
        if canonical is not None:
            _put(model, out, given, canonical, value, (key,), (noun, keep_unknown))
            continue
        block = _block(names, text)
        if block is not None:
            blocks_seen.append(block)
            _bind_block(model, block, out, given, (text, key, value), (noun, keep_unknown))
        elif problem is not None:
            out.problems.append(((key,), problem))
        elif keep_unknown or not names.forbid:
            out.data[text] = value
            out.written[(text,)] = (key,)
        else:
            out.problems.append(((key,), _unknown(model, names, text, noun)))
    for block in blocks_seen:
        for name, value in block.implied.items():
            out.data.setdefault(name, value)
    return out


def _nest_dotted(names: _Names, data: Mapping[Any, Any], problems: list[tuple[Loc, str]]) -> dict[Any, Any]:
    """`{backoff.firstBackoff: x}` -> `{backoff: {firstBackoff: x}}` when `backoff` is a block or a nested model.

    Builds new mappings (the input is never changed); an inner key given both ways is a problem, not overwritten.
    """
    out: dict[Any, Any] = {}
    for key, value in data.items():
        head, dot, rest = str(key).partition(".")
        nests = dot and rest and (_block(names, head) is not None or _model_of(names, head) is not None)
        into, inner_key = (head, rest) if nests else (key, None)
        if inner_key is None and not (isinstance(value, Mapping) and isinstance(out.get(key), dict)):
            out[key] = dict(value) if isinstance(value, Mapping) else value  # a copy: dotted keys may join it
            continue
        merged = out.setdefault(into, {})
        if not isinstance(merged, dict):
            problems.append(((key,), f"{key!r} repeats {into!r}, given as a value, not a mapping"))
            continue
        entries = {inner_key: value} if inner_key is not None else dict(value)
        for inner, inner_value in entries.items():
            if inner in merged:
                problems.append(((into, inner), f"'{into}.{inner}' is given twice"))
            else:
                merged[inner] = inner_value
    return out


def _resolve(names: _Names, key: str, noun: str) -> tuple[str | None, str | None]:
    """(canonical name, None), or (None, why not) for an ambiguous name, or (None, None) when no field has it."""
    if key in names.exact:
        return names.exact[key], None
    matches = names.folded.get(fold(key), ())
    if len(matches) == 1:
        return matches[0], None
    if len(matches) > 1:
        listed = ", ".join(repr(m) for m in matches)
        why = f"{key!r} matches more than one {noun} ({listed}) when case, '-' and '_' are ignored"
        return None, f"{why}; write one of them exactly"
    return None, None


def field_named(model: type[BaseModel], key: str) -> str | None:
    """The canonical name of the field `key` names, exactly or relaxed (None when none, or when ambiguous)."""
    canonical, _ = _resolve(_names(model), key, "key")
    return canonical


def _block(names: _Names, key: str) -> Block | None:
    matches = [block for name, block in names.blocks.items() if fold(name) == fold(key)]
    return matches[0] if len(matches) == 1 else None


def _model_of(names: _Names, key: str) -> type[BaseModel] | None:
    canonical = names.exact.get(key) or next(iter(names.folded.get(fold(key), ())), None)
    info = names.fields.get(canonical or "")
    return _nested_model(info.annotation) if info is not None else None


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds directly (`Model` or `Model | None`), if any."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    kinds = [a for a in typing.get_args(annotation) if a is not type(None)] if union else [annotation]
    if len(kinds) == 1 and isinstance(kinds[0], type) and issubclass(kinds[0], BaseModel):
        return kinds[0]
    return None


def _put(
    model: type[BaseModel],
    out: Bound,
    given: dict[str, str],
    canonical: str,
    value: Any,
    loc: Loc,
    how: tuple[str, bool],
) -> None:
    """Store one value under its canonical name; a nested model's keys (also in a dict or list of models) are bound
    in turn. `how` is (noun, keep_unknown) as given to `bind`."""
    written = ".".join(str(part) for part in loc)
    if canonical in given:
        again = f"{written!r} is the {how[0]} {canonical!r} again (already given as {given[canonical]!r})"
        out.problems.append((loc, again))
        return
    given[canonical] = written
    out.written[(canonical,)] = loc
    annotation = _names(model).fields[canonical].annotation
    held = _held_model(annotation)
    if held is None:
        out.data[canonical] = value
        return
    if _nested_model(annotation) is not None:
        out.data[canonical] = _bind_inner(held, out, value, (canonical,), loc, how)
    elif isinstance(value, Mapping):
        out.data[canonical] = {k: _bind_inner(held, out, v, (canonical, k), loc + (k,), how) for k, v in value.items()}
    elif isinstance(value, list):
        out.data[canonical] = [_bind_inner(held, out, v, (canonical, i), loc + (i,), how) for i, v in enumerate(value)]
    else:
        out.data[canonical] = value


def _bind_inner(model: type[BaseModel], out: Bound, value: Any, at: Loc, loc: Loc, how: tuple[str, bool]) -> Any:
    """`value` bound to `model` when it is a mapping (its locations recorded under `at`), else as it is."""
    if not isinstance(value, Mapping):
        return value
    inner = bind(model, value, *how)
    out.written.update({at + k: loc + w for k, w in inner.written.items()})
    out.problems += [(loc + p, m) for p, m in inner.problems]
    return inner.data


def _bind_block(
    model: type[BaseModel],
    block: Block,
    out: Bound,
    given: dict[str, str],
    entry: tuple[str, Any, Any],
    how: tuple[str, bool],
) -> None:
    text, key, value = entry
    names = _names(model)
    if not isinstance(value, Mapping):
        example = ", ".join(f"{k}: {v}" for k, v in block.implied.items()) or f"{block.fields[0]}: ..."
        out.problems.append(((key,), f"{text} must be a mapping, such as {{{example}}}"))
        return
    for inner_key, inner_value in value.items():
        canonical, problem = _resolve(names, str(inner_key), how[0])
        loc: Loc = (key, inner_key)
        if canonical in block.fields:
            _put(model, out, given, canonical, inner_value, loc, how)
        else:
            near = difflib.get_close_matches(fold(str(inner_key)), [fold(f) for f in block.fields], n=1)
            holds = f"it holds {', '.join(block.fields)}"
            hint = f"did you mean {_unfold(block.fields, near[0])!r}?" if near else holds
            out.problems.append((loc, problem or f"unknown {how[0]} {inner_key!r} in {text}; {hint}"))


def _unfold(canonicals: typing.Iterable[str], folded: str) -> str:
    return next(c for c in canonicals if fold(c) == folded)


def _unknown(model: type[BaseModel], names: _Names, key: str, noun: str) -> str:
    known = [*names.fields, *names.blocks]
    near = difflib.get_close_matches(fold(key), [fold(k) for k in known], n=1)
    if near:
        return f"unknown {noun} {key!r}; did you mean {_unfold(known, near[0])!r}?"
    return f"unknown {noun} {key!r}; known: {', '.join(known)}"


def suggestion(model: type[BaseModel], key: str, noun: str = "key") -> str:
    """The message for an unknown `key` of `model`: a near spelling when there is one, else the known names."""
    return _unknown(model, _names(model), key, noun)


def model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model that holds the values at `loc` (a validation error's location without its last key), if known."""
    parts = list(loc)
    while parts:
        names = _names(model)
        info = names.fields.get(names.exact.get(str(parts.pop(0)), ""))
        inner = _held_model(info.annotation) if info is not None else None
        if info is None or inner is None:
            return None
        if _nested_model(info.annotation) is None and parts:
            parts.pop(0)  # the key or index inside a dict or list of models
        model = inner
    return model


def _held_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds: directly, optionally, or as the items of a list or the values of a dict."""
    direct = _nested_model(annotation)
    if direct is not None:
        return direct
    args, origin = typing.get_args(annotation), typing.get_origin(annotation)
    if origin in (list, tuple) and args:
        return _nested_model(args[0])
    return _nested_model(args[-1]) if origin is dict and args else None


#: pydantic's prefixes on messages raised by validators (ours): the text after them is the message.
_PREFIXES = ("Value error, ", "Assertion failed, ")


def error_message(model: type[BaseModel], err: ErrorDetails) -> str:
    """A pydantic validation error of `model` as a sentence of ours: no pydantic prefixes, lower case, an unknown
    key with a did-you-mean."""
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        *parents, key = err["loc"]
        holder = model_at(model, tuple(parents))
        return suggestion(holder, str(key)) if holder is not None else f"unknown key {str(key)!r}"
    if kind == "missing":
        return "required, but not given"
    for prefix in _PREFIXES:
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg[:1].lower() + msg[1:]
