"""What a predicate or filter module exports: its spec, its config schema and how to build it.

A spec is discovered through an entry point whose name is the config key (`StripPrefix`). `build` is called once
per route at load time, never per request; every config field carries a description, a default and bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, wraps
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, Literal, TypeVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from gateway.addresses import parse_cidr
from gateway.config.binding import Block as Block  # re-exported: filters declare their blocks with it
from gateway.config.binding import bind
from gateway.errors import HeaderInjection
from gateway.exchange import Filter, MatchHints, Predicate
from gateway.headers import TOKEN_PATTERN, check_value
from gateway.regex import RegexError, compile_regex, regex_validator
from gateway.routing.weights import WeightGroups
from gateway.services import FilterServices, default_services

if TYPE_CHECKING:
    from gateway.settings import Settings

#: An RFC 9110 token as a schema pattern (header names, cookie names); derived from gateway.headers' one definition.
HEADER_NAME = TOKEN_PATTERN

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
    """Base of every predicate/filter config, binding args the way Spring binds SCG's.

    - Names are SCG's camelCase, compared as Spring's relaxed binding does (case-insensitive, ignoring `-` and
      `_`; gateway.config.binding); an unknown, ambiguous or repeated name is an error.
    - `blocks` declares nested blocks SCG writes whose fields this schema holds flat (Retry's `backoff:`).
    - A single value given for a list field is a one-element list (`statusCodes: 500`, `methods: GET`), as Spring
      binds it. That runs after the field's own `field_validator(mode="before")` (which may split a comma string
      first) and before its `Annotated` BeforeValidators (which therefore see a list: split inside its items,
      see `comma_items`).
    - A boolean is never read as a number.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=True,
    )
    blocks: ClassVar[Mapping[str, Block]] = {}

    @model_validator(mode="before")
    @classmethod
    def _relaxed_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # Unknown keys stay, so that validation reports each at its own location (with a did-you-mean).
        bound = bind(cls, data, keep_unknown=True)
        if bound.problems:
            raise ValueError("; ".join(message for _, message in bound.problems))
        return bound.data

    @field_validator("*", mode="before")
    @classmethod
    def _scalars(cls, value: object, info: ValidationInfo) -> object:
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return value
        # pydantic's lax mode reads `true` as 1; in a routes file that is always a mistake.
        if isinstance(value, bool) and field.annotation in (int, float):
            raise ValueError(f"expected {'an integer' if field.annotation is int else 'a number'}, not a boolean")
        if isinstance(value, str | int | float | bool) and _is_list(field.annotation):
            return [value]
        return value


def _is_list(annotation: Any) -> bool:
    """Whether a field holds a list (or tuple/set), also when optional: `list[int]`, `list[str] | None`."""
    kinds = [a for a in get_args(annotation) if a is not type(None)] if get_origin(annotation) in _UNIONS else []
    return all(get_origin(k) in _SEQUENCES for k in kinds or [annotation])


_UNIONS = (Union, UnionType)
_SEQUENCES = (list, tuple, set, frozenset)


def one_or_many(value: object) -> object:
    """Before-validator: a single string stands for a one-element list (SCG's YAML has both spellings)."""
    return [value] if isinstance(value, str) else value


def comma_items(value: object) -> object:
    """Before-validator: Spring binds `GET,POST` (one string) to a list; split every string item at commas too,
    so `[503, "BAD_GATEWAY,504"]` is three items (the base class may already have wrapped a single string)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        return value
    out: list[object] = []
    for item in items:
        out += [v.strip() for v in item.split(",") if v.strip()] if isinstance(item, str) else [item]
    return out


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


#: Header names no filter may set from config: framing, connection management and Host belong to the gateway.
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


@cache
def reserved_request_headers() -> frozenset[str]:
    """RESERVED_HEADERS plus the forwarding headers (gateway.hygiene.FORWARDING): the names no filter may set on
    the request sent upstream."""
    # Imported here, not at the top: gateway.hygiene -> routing.route -> cors imports this module.
    from gateway.hygiene import FORWARDING

    return RESERVED_HEADERS | FORWARDING


def header_name(value: str) -> str:
    """Validator for a header name a filter *sets on the request*: refuse the names the gateway owns.

    Those are framing, Connection and Host, and the forwarding headers (X-Forwarded-*, Forwarded, X-Real-IP):
    the gateway writes them from the socket peer and `trusted_proxies` after every filter has run, appending to
    what is there, so a value a filter put there (perhaps copied from the client) would reach the upstream as a
    trusted claim. The stricter default is the one a plugin gets when it does not say which side it writes.
    """
    lower = value.lower()
    if lower == "host":
        raise ValueError(
            f"{value} is managed by the gateway and cannot be set by a filter; use SetRequestHostHeader "
            "(or PreserveHostHeader) to choose the Host sent upstream"
        )
    if lower in RESERVED_HEADERS:
        raise ValueError(f"{value} is managed by the gateway and cannot be set by a filter")
    # SECURITY: the upstream trusts forwarding headers because only the gateway writes them (hygiene.py).
    if lower in reserved_request_headers():
        raise ValueError(
            f"{value} is managed by the gateway and cannot be set by a filter: forwarding headers are written by "
            "the gateway from the socket peer, or kept only from `trusted_proxies` (settings); a value set here "
            "would reach the upstream as if the gateway had vouched for it"
        )
    return value


def response_header_name(value: str) -> str:
    """Validator for a header name a filter sets on the response: refuse framing, Connection and Host.

    Forwarding header names are allowed here: on a response they are only information for the client, and
    nothing in the gateway or an upstream trusts them.
    """
    if value.lower() in RESERVED_HEADERS:
        raise ValueError(f"{value} is managed by the gateway and cannot be set by a filter")
    return value


#: A header name in config: an RFC 9110 token. Each field adds its own `Field(description=...)`.
HeaderName = Annotated[str, Field(min_length=1, max_length=256, pattern=HEADER_NAME)]
#: A header name a filter sets on the request sent upstream (see `header_name`).
RequestHeaderName = Annotated[HeaderName, AfterValidator(header_name)]
#: A header name a filter sets on the response sent to the client (see `response_header_name`).
ResponseHeaderName = Annotated[HeaderName, AfterValidator(response_header_name)]


def header_value(value: str) -> str:
    """Validator for config values that end up in a header: refuse CR, LF and NUL at load (ValueError)."""
    try:
        check_value(value)
    except HeaderInjection as exc:
        raise ValueError(exc.detail) from exc
    return value


def spring_enum(value: object) -> object:
    """Before-validator for enum names: Spring binds them leniently, so `retain-first`, ` Retain_First ` and
    `RETAIN_FIRST` are the same constant."""
    return value.strip().upper().replace("-", "_") if isinstance(value, str) else value


def valid_regex(value: str | None) -> str | None:
    """Validator: the Java-syntax pattern runs on RE2 (gateway.regex); ValueError naming the reason otherwise."""
    try:
        return regex_validator(value)
    except RegexError as exc:
        raise ValueError(f"invalid regular expression: {exc}") from exc


#: One character of each kind RE2's zero-width assertions tell apart: a word character, another character, and a
#: line end. An empty match between two characters depends only on theirs (see `replacing_regex`).
_NEIGHBOURS = (("a", "a"), ("-", "-"), ("\\n", "\n"))


def replacing_regex(value: str) -> str:
    """Validator for a pattern whose every match is replaced (RewritePath, RewriteResponseHeader).

    Besides compiling, the pattern must not match the empty string *between two characters* (`""`, `x*`, `/?`,
    `\\b`): the replacement would be inserted at every such position, and an 8 KB value with a 4 KB replacement
    would become 32 MB. Empty matches at the start or end only (`^`, `$`, `^(.*)$`) happen at most twice and are
    allowed. Zero-width assertions in RE2 only look at the neighbouring characters, so testing every pair of
    neighbour kinds decides it exactly.
    """
    valid_regex(value)
    if any(_empty_between(value, before, after) for before in _NEIGHBOURS for after in _NEIGHBOURS):
        raise ValueError(
            f"{value!r} matches the empty string between characters, so the replacement would be inserted "
            "between every two characters of the value; make it match at least one character (`x+` rather than "
            "`x*`) or anchor it (`^`, `$`, `^(.*)$`)"
        )
    return value


def _empty_between(pattern: str, before: tuple[str, str], after: tuple[str, str]) -> bool:
    """Whether `pattern` (which compiles) can match "" between the characters `before` and `after`."""
    text = before[1] + after[1]
    # An unterminated \Q quote (legal at the end of a pattern) would swallow the closing ")": end it first.
    for body in (pattern, pattern + "\\E"):
        try:
            return compile_regex(f"{before[0]}(?:{body}){after[0]}").fullmatch(text)
        except RegexError:
            continue
    return False  # cannot happen for a pattern that compiles alone; the run-time cap still bounds the result


#: The `sources` of RemoteAddr and XForwardedRemoteAddr: networks parsed (and checked) at load.
CidrSources = Annotated[
    list[str],
    Field(
        description="Client networks in CIDR form (`192.168.0.0/16`, `2001:db8::/32`); a plain address means "
        "that one address. IP literals only.",
        min_length=1,
        max_length=256,
    ),
    BeforeValidator(one_or_many),
    AfterValidator(compiles_each(parse_cidr, ValueError)),
]


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
    #: Metrics, keyed state, `forward:` re-dispatch, a logger and a clock (gateway.services). The pipeline passes
    #: its worker's; the default is this process's in-memory services. A filter sees them scoped to its own name
    #: and route (FilterSpec does that before calling `build`).
    services: FilterServices = field(default_factory=default_services)

    def for_filter(self, filter_name: str, *, builtin: bool) -> BuildContext:
        """This context with `services` scoped to `filter_name` on this route."""
        return replace(self, services=self.services.scoped(filter_name, self.route_id, builtin=builtin))


def _scoped_build(name: str, build: Callable[[Any, BuildContext], Filter]) -> Callable[[Any, BuildContext], Filter]:
    """`build` called with the context's services scoped to the filter `name`, however the filter is built (the
    compiler, gateway.testing, a test). The built-ins (modules under `filters.`) may use their documented
    `gateway_…` metric names; this keeps names apart, it is no sandbox: a plugin's code runs in the worker."""
    if getattr(build, "__sluicegate_scoped__", False):
        return build
    builtin = build.__module__.startswith("filters.")

    @wraps(build)
    def scoped(config: Any, context: BuildContext) -> Filter:
        return build(config, context.for_filter(name, builtin=builtin))

    scoped.__sluicegate_scoped__ = True  # type: ignore[attr-defined]
    return scoped


@dataclass(frozen=True)
class FilterSpec(Generic[C]):
    name: str
    #: Names the filter's band (100-999, see BANDS); specs may share a number, since within a band the route's
    #: YAML order decides (D26).
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
    #: Optional and side-effect free: a check across every use of this spec in one config, run at validation
    #: (which builds nothing). Given (route id, config) of each use in file order, it yields (use index, problem).
    check_uses: Callable[[Sequence[tuple[str, C]]], Iterable[tuple[int, str]]] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "build", _scoped_build(self.name, self.build))

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
    #: Optional and side-effect free: a check across every use of this spec in one config, run at validation
    #: (which builds nothing). Given (route id, config) of each use in file order, it yields (use index, problem).
    check_uses: Callable[[Sequence[tuple[str, C]]], Iterable[tuple[int, str]]] | None = None
