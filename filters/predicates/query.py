"""Query predicate: a query parameter is present, or one of its values fully matches a regex (SCG semantics).

Parameters are read as Spring reads them: split at `&`, name and value at the first `=`, both percent-decoded
as UTF-8 with `+` as a space. `?debug` has the parameter with no value (present, but no value to match);
`?debug=` has it with the empty value.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from pydantic import Field, field_validator

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    ExchangeKey,
    PredicateSpec,
    Regex,
    compile_regex,
    valid_regex,
)

Params = dict[str, list[str | None]]

#: (raw query, its parameters): parsed once per request however many Query predicates the routes have.
_PARSED: ExchangeKey[tuple[str, Params]] = ExchangeKey("query-params")


class QueryConfig(ComponentConfig):
    param: str = Field(description="Parameter name (as decoded; case-sensitive).", min_length=1, max_length=256)
    regexp: str | None = Field(
        None,
        description="Regex one value must match in full (as Java's matches()); absent or empty: presence only.",
        max_length=1024,
    )

    @field_validator("regexp")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return valid_regex(value or None)  # SCG treats an empty regexp as "presence only"


def parse_query(query: str) -> Params:
    """Every parameter of a raw query string, decoded, with its values in order (None: written without `=`)."""
    params: Params = {}
    for piece in query.split("&"):
        name, eq, value = piece.partition("=")
        if not name:
            continue  # `&&` or `=x`: Spring drops a parameter without a name
        params.setdefault(_decode(name), []).append(_decode(value) if eq else None)
    return params


def _decode(text: str) -> str:
    # Malformed escapes stay as written and invalid UTF-8 becomes U+FFFD: a predicate answers, it never fails.
    return unquote_plus(text, errors="replace") if "%" in text or "+" in text else text


def params_of(exchange: Exchange) -> Params:
    """The exchange's parameters, cached on it against the raw query they came from."""
    cached = exchange.get(_PARSED)
    if cached is not None and cached[0] == exchange.query:
        return cached[1]
    params = parse_query(exchange.query) if exchange.query else {}
    exchange.set(_PARSED, (exchange.query, params))
    return params


class QueryPredicate:
    __slots__ = ("param", "regex")

    def __init__(self, param: str, regex: Regex | None) -> None:
        self.param, self.regex = param, regex

    def __call__(self, exchange: Exchange) -> bool:
        if not exchange.query:
            return False
        values = params_of(exchange).get(self.param)
        if values is None or self.regex is None:
            return values is not None
        regex = self.regex
        return any(v is not None and regex.fullmatch(v) for v in values)


def build(config: QueryConfig, context: BuildContext) -> QueryPredicate:
    return QueryPredicate(config.param, compile_regex(config.regexp) if config.regexp else None)


SPEC = PredicateSpec(
    name="Query",
    config=QueryConfig,
    build=build,
    summary="Matches when the query parameter is present and, if `regexp` is given, one of its values matches "
    "it in full.",
    example={"param": "green", "regexp": "gree."},
    shortcut=("param", "regexp"),
    status="stable",
)
