"""RewritePath: rewrite the request path with a Java-syntax regex and replacement, run on RE2 (SCG semantics).

A pattern that can match the empty string between two characters is refused at load (it would insert the
replacement between every two characters), and a rewritten path longer than the server's `limits.max_request_line`
is refused with 414, so no request can grow into a huge one upstream.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterSpec,
    Next,
    Regex,
    RegexError,
    Replacement,
    Response,
    check_path_length,
    check_path_text,
    compile_regex,
    finish_path,
    replacing_regex,
    sub_within,
)


class _Probe:
    """Stands in for a match at load time: every group is "x", so only the replacement's literal text is left."""

    def group(self, _: Any) -> str:
        return "x"


class RewritePathConfig(ComponentConfig):
    regexp: str = Field(
        description="Java-syntax regex (run on RE2) applied to the percent-encoded path; every match is replaced. "
        "It must not match the empty string between two characters (`/?`, `x*`).",
        min_length=1,
        max_length=1024,
    )
    replacement: str = Field(
        description="Java replacement: `$1`, `${name}` or `$\\{name}` insert groups, `\\$` is a dollar. Literal "
        "text must be path characters.",
        max_length=2048,
    )

    _regexp = field_validator("regexp")(replacing_regex)

    @field_validator("replacement")
    @classmethod
    def _replacement(cls, value: str, info: ValidationInfo) -> str:
        pattern = info.data.get("regexp")
        if pattern is None:
            return value  # the pattern's own error is reported instead
        try:
            literal = Replacement(value, compile_regex(pattern)).expand(_Probe())
        except RegexError as exc:
            raise ValueError(str(exc)) from exc
        check_path_text(literal, whole=False)
        return value


class RewritePath:
    __slots__ = ("regex", "replacement", "limit")

    def __init__(self, regex: Regex, replacement: Replacement, limit: int) -> None:
        self.regex, self.replacement, self.limit = regex, replacement, limit

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        path = exchange.path
        rewritten = check_path_length(sub_within(self.regex, self.replacement, path, self.limit), self.limit)
        if rewritten != path:
            # Groups are slices of the encoded path, so nothing needs encoding; but a match can still glue
            # pieces into "//" or "..", which finish_path merges or refuses.
            exchange.path = check_path_length(finish_path(rewritten), self.limit)
        return await call_next(exchange)


def build(config: RewritePathConfig, context: BuildContext) -> RewritePath:
    regex = compile_regex(config.regexp)
    return RewritePath(regex, Replacement(config.replacement, regex), context.settings.limits.max_request_line)


SPEC = FilterSpec(
    name="RewritePath",
    order=924,
    config=RewritePathConfig,
    build=build,
    summary="Rewrites the forwarded path with a regex: `RewritePath=/red/?(?<segment>.*), /$\\{segment}` "
    "forwards `/red/blue` as `/blue`.",
    example={"regexp": "/red/?(?<segment>.*)", "replacement": "/$\\{segment}"},
    shortcut=("regexp", "replacement"),
    status="stable",
)
