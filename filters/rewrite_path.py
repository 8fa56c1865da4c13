"""RewritePath: rewrite the request path with a Java-syntax regex and replacement, run on RE2 (SCG semantics)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from gateway.exchange import Exchange, Next, Response
from gateway.regex import Regex, RegexError, Replacement, compile_regex, regex_validator
from gateway.spec import BuildContext, ComponentConfig, FilterSpec
from gateway.uri import check_path_text, finish_path


class _Probe:
    """Stands in for a match at load time: every group is "x", so only the replacement's literal text is left."""

    def group(self, _: Any) -> str:
        return "x"


class RewritePathConfig(ComponentConfig):
    regexp: str = Field(
        description="Java-syntax regex (run on RE2) applied to the percent-encoded path; every match is replaced.",
        min_length=1,
        max_length=1024,
    )
    replacement: str = Field(
        description="Java replacement: `$1`, `${name}` or `$\\{name}` insert groups, `\\$` is a dollar. Literal "
        "text must be path characters.",
        max_length=2048,
    )

    _regexp = field_validator("regexp")(regex_validator)

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
    __slots__ = ("regex", "replacement")

    def __init__(self, regex: Regex, replacement: Replacement) -> None:
        self.regex, self.replacement = regex, replacement

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        path = exchange.path
        rewritten = self.regex.sub(self.replacement, path)
        if rewritten != path:
            # Groups are slices of the encoded path, so nothing needs encoding; but a match can still glue
            # pieces into "//" or "..", which finish_path merges or refuses.
            exchange.path = finish_path(rewritten)
        return await call_next(exchange)


def build(config: RewritePathConfig, context: BuildContext) -> RewritePath:
    regex = compile_regex(config.regexp)
    return RewritePath(regex, Replacement(config.replacement, regex))


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
