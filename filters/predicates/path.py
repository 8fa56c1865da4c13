"""Path predicate: Spring PathPattern matching on the canonical path; captured variables feed the filters."""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    MatchHints,
    PathPattern,
    PatternError,
    PredicateSpec,
    compile_path_pattern,
    compiles_each,
    match_any,
    one_or_many,
)


class PathConfig(ComponentConfig):
    patterns: list[str] = Field(
        description="Spring path patterns: `*`, `**`, `?`, `{var}`, `{var:regex}`, `{*rest}`; any one may match.",
        min_length=1,
        max_length=64,
    )
    match_trailing_slash: bool = Field(
        True, description="A pattern without a trailing slash also matches the path with one (SCG default)."
    )

    _one_or_many = field_validator("patterns", mode="before")(one_or_many)
    _compiles = field_validator("patterns")(compiles_each(compile_path_pattern, PatternError))

    def compiled(self) -> list[PathPattern]:
        return [compile_path_pattern(p, match_trailing_slash=self.match_trailing_slash) for p in self.patterns]


class PathPredicate:
    __slots__ = ("patterns",)

    def __init__(self, patterns: list[PathPattern]) -> None:
        self.patterns = tuple(patterns)

    def __call__(self, exchange: Exchange) -> bool:
        return match_any(self.patterns, exchange.path, exchange.path_vars)


def build(config: PathConfig, context: BuildContext) -> PathPredicate:
    return PathPredicate(config.compiled())


def hints(config: PathConfig) -> MatchHints:
    return MatchHints(path_prefixes=[p.literal_prefix() for p in config.compiled()])


SPEC = PredicateSpec(
    name="Path",
    config=PathConfig,
    build=build,
    summary="Matches when the canonical request path matches one of the patterns; `{var}` captures are usable "
    "in filter values.",
    example={"patterns": ["/red/{segment}", "/blue/**"]},
    shortcut=("patterns", "matchTrailingSlash"),
    shortcut_type="gather_list_tail_flag",
    status="stable",
    hints=hints,
)
