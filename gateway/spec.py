"""What a predicate or filter module exports: its spec, its config schema and how to build it.

A spec is discovered through an entry point whose name is the config key (`StripPrefix`). `build` is called once
per route at load time, never per request; every config field carries a description, a default and bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from gateway.errors import HeaderInjection
from gateway.exchange import Filter, MatchHints, Predicate
from gateway.headers import check_value
from gateway.routing.weights import WeightGroups

if TYPE_CHECKING:
    from gateway.settings import Settings

#: An RFC 9110 field name (token); config schemas use it as a pattern for header-name arguments.
HEADER_NAME = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"

ShortcutType = Literal["default", "gather_list", "gather_list_tail_flag"]
Status = Literal["stable", "alpha"]

#: Order bands (DESIGN §4): lower runs first on the request and last on the response.
BANDS: Mapping[int, str] = {
    100: "request id / observability",
    150: "edge limits",
    200: "mTLS identity",
    300: "authentication",
    350: "authorization",
    400: "rate limit",
    450: "fault injection",
    500: "canary / traffic split",
    600: "retry",
    700: "circuit breaker",
    900: "request/response rewriting",
}


def band_of(order: int) -> int:
    """The band an order number belongs to: the largest band start not above it."""
    starts = [b for b in BANDS if b <= order]
    return max(starts) if starts else 0


class ComponentConfig(BaseModel):
    """Base of every predicate/filter config: unknown keys are errors; SCG's camelCase names are accepted."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _relaxed_names(cls, data: Any) -> Any:
        # Spring binds `max-trusted-index` to maxTrustedIndex (relaxed binding); SCG configs use both spellings.
        if isinstance(data, dict) and any(isinstance(k, str) and "-" in k for k in data):
            known = _accepted_names(cls)
            return {_kebab_to_camel(k) if isinstance(k, str) and k not in known else k: v for k, v in data.items()}
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: object, info: ValidationInfo) -> object:
        # pydantic's lax mode reads `true` as 1; in a routes file that is always a mistake.
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and field.annotation in (int, float):
            raise ValueError(f"expected {'an integer' if field.annotation is int else 'a number'}, not a boolean")
        return value


def _accepted_names(model: type[BaseModel]) -> set[str]:
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.update(n for n in (name, info.alias) if n)
        choices = getattr(info.validation_alias, "choices", None)
        if choices:
            names.update(c for c in choices if isinstance(c, str))
        elif isinstance(info.validation_alias, str):
            names.add(info.validation_alias)
    return names


def _kebab_to_camel(name: str) -> str:
    head, *rest = name.split("-")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def one_or_many(value: object) -> object:
    """Before-validator: a single string stands for a one-element list (SCG's YAML has both spellings)."""
    return [value] if isinstance(value, str) else value


def compiles_each(compile_one: Callable[[str], object], error: type[Exception]) -> Callable[[list[str]], list[str]]:
    """After-validator factory: every string must compile; the message names the one that does not."""

    def check(values: list[str]) -> list[str]:
        for value in values:
            try:
                compile_one(value)
            except error as exc:
                raise ValueError(f"{value!r}: {exc}") from exc
        return values

    return check


#: Header names a filter may not set from config: framing, connection management and Host belong to the gateway.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    }
)


def header_name(value: str) -> str:
    """Validator for config header names: refuse the ones the gateway owns (framing, Connection, Host)."""
    if value.lower() in RESERVED_HEADERS:
        raise ValueError(f"{value} is managed by the gateway and cannot be set by a filter")
    return value


def header_value(value: str) -> str:
    """Validator for config values that end up in a header: refuse CR, LF and NUL at load (ValueError)."""
    try:
        check_value(value)
    except HeaderInjection as exc:
        raise ValueError(exc.detail) from exc
    return value


C = TypeVar("C", bound=ComponentConfig)


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What a build function may know about the route it builds for."""

    route_id: str
    metadata: Mapping[str, Any]
    settings: Settings
    #: The route's URI as written (after ${env:} substitution).
    uri: str = ""
    #: Weight groups of the whole compile (one per routes file), shared by every Weight predicate.
    weights: WeightGroups = field(default_factory=WeightGroups)


@dataclass(frozen=True)
class FilterSpec(Generic[C]):
    name: str
    order: int
    config: type[C]
    build: Callable[[C, BuildContext], Filter]
    summary: str
    #: Args for docs and the contract test: a config this filter accepts.
    example: Mapping[str, Any]
    shortcut: tuple[str, ...] = ()
    shortcut_type: ShortcutType = "default"
    status: Status = "alpha"
    replays: bool = False

    @property
    def band(self) -> int:
        return band_of(self.order)


@dataclass(frozen=True)
class PredicateSpec(Generic[C]):
    name: str
    config: type[C]
    build: Callable[[C, BuildContext], Predicate]
    summary: str
    example: Mapping[str, Any]
    shortcut: tuple[str, ...] = ()
    shortcut_type: ShortcutType = "default"
    status: Status = "alpha"
    #: Optional: tells the route index which hosts/path prefixes a config can match (see MatchHints).
    hints: Callable[[C], MatchHints] | None = field(default=None)
