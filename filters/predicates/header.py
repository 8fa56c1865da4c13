"""Header predicate: a header is present, or one of its values fully matches a regular expression.

The regex is Java syntax run on RE2 (gateway/regex.py): matching takes linear time whatever the header value.
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


class HeaderConfig(ComponentConfig):
    header: HeaderName = Field(description="Header name.")
    regexp: str | None = Field(
        None,
        description="Regex one value must match in full (as Java's matches()); absent: presence only.",
        max_length=1024,
    )

    _regexp = field_validator("regexp")(valid_regex)


class HeaderPredicate:
    __slots__ = ("name", "regex")

    def __init__(self, name: str, regex: Regex | None) -> None:
        self.name, self.regex = name, regex

    def __call__(self, exchange: Exchange) -> bool:
        values = exchange.headers.get_all(self.name)
        if self.regex is None:
            return bool(values)
        regex = self.regex
        return any(regex.fullmatch(v) for v in values)


def build(config: HeaderConfig, context: BuildContext) -> HeaderPredicate:
    return HeaderPredicate(config.header, compile_regex(config.regexp) if config.regexp is not None else None)


SPEC = PredicateSpec(
    name="Header",
    config=HeaderConfig,
    build=build,
    summary="Matches when the header is present and, if `regexp` is given, one of its values matches it in full.",
    example={"header": "X-Request-Id", "regexp": "\\d+"},
    shortcut=("header", "regexp"),
    status="stable",
)
