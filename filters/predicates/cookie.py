"""Cookie predicate: some cookie with the given name has a value that fully matches a regex (SCG semantics).

`regexp` is required. SCG's code accepts a Cookie predicate without one and then never matches; a route that can
never match is a config mistake, so it is refused at load instead. To test for presence only, use `regexp: .*`.

Cookies are read from every `Cookie` field line (HTTP/2 clients send one line per cookie) as `name=value` pairs
separated by `;`. Names are case-sensitive; a value in double quotes is compared without them (as Netty, which SCG
runs on, reads it); a pair without `=` is a cookie with the empty value.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    HeaderName,
    PredicateSpec,
    Regex,
    compile_regex,
    valid_regex,
)


class CookieConfig(ComponentConfig):
    # RFC 6265: a cookie-name is a token, like a header name (`$` included, for old-style attribute cookies).
    name: HeaderName = Field(description="Cookie name (case-sensitive).")
    regexp: str = Field(
        description="Regex one value must match in full (as Java's matches()); required — use `.*` to match any "
        "value of a present cookie.",
        min_length=1,
        max_length=1024,
    )

    _regexp = field_validator("regexp")(valid_regex)


def cookie_values(exchange: Exchange, name: str) -> list[str]:
    """The values of every cookie called `name`, in the order the client sent them."""
    values: list[str] = []
    for line in exchange.headers.get_all("Cookie"):
        if name not in line:
            continue  # the common case: this line cannot hold the cookie, skip splitting it
        for pair in line.split(";"):
            key, _, value = pair.partition("=")
            if key.strip() == name:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                values.append(value)
    return values


class CookiePredicate:
    __slots__ = ("name", "regex")

    def __init__(self, name: str, regex: Regex) -> None:
        self.name, self.regex = name, regex

    def __call__(self, exchange: Exchange) -> bool:
        regex = self.regex
        return any(regex.fullmatch(v) for v in cookie_values(exchange, self.name))


def build(config: CookieConfig, context: BuildContext) -> CookiePredicate:
    return CookiePredicate(config.name, compile_regex(config.regexp))


SPEC = PredicateSpec(
    name="Cookie",
    config=CookieConfig,
    build=build,
    summary="Matches when a cookie called `name` has a value matching `regexp` in full.",
    example={"name": "chocolate", "regexp": "ch.p"},
    shortcut=("name", "regexp"),
    status="stable",
)
