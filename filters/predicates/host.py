"""Host predicate: Ant-style host patterns with `.` as separator; `{var}` captures a label."""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    HostPattern,
    MatchHints,
    PatternError,
    PredicateSpec,
    compile_host_pattern,
    compiles_each,
    match_any,
    one_or_many,
)


class HostConfig(ComponentConfig):
    patterns: list[str] = Field(
        description="Host patterns such as `**.example.org` or `{sub}.example.org`; a port in the request is "
        "ignored unless the pattern names one.",
        min_length=1,
        max_length=64,
    )

    _one_or_many = field_validator("patterns", mode="before")(one_or_many)
    _compiles = field_validator("patterns")(compiles_each(compile_host_pattern, PatternError))


class HostPredicate:
    __slots__ = ("patterns",)

    def __init__(self, patterns: list[HostPattern]) -> None:
        self.patterns = tuple(patterns)

    def __call__(self, exchange: Exchange) -> bool:
        return match_any(self.patterns, exchange.host, exchange.path_vars)


def build(config: HostConfig, context: BuildContext) -> HostPredicate:
    return HostPredicate([compile_host_pattern(p) for p in config.patterns])


def hints(config: HostConfig) -> MatchHints:
    exact = [compile_host_pattern(p).exact() for p in config.patterns]
    return MatchHints(hosts=None if None in exact else [e for e in exact if e is not None])


SPEC = PredicateSpec(
    name="Host",
    config=HostConfig,
    build=build,
    summary="Matches when the request's Host matches one of the patterns.",
    example={"patterns": ["**.somehost.org", "{sub}.anotherhost.org"]},
    shortcut=("patterns",),
    shortcut_type="gather_list",
    status="stable",
    hints=hints,
)
