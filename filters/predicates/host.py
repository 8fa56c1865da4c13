"""Host predicate: Ant-style host patterns with `.` as separator; `{var}` captures a label."""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.exchange import Exchange, MatchHints
from gateway.routing.hostpattern import HostPattern, compile_host_pattern
from gateway.routing.pathpattern import PatternError
from gateway.spec import BuildContext, ComponentConfig, PredicateSpec


class HostConfig(ComponentConfig):
    patterns: list[str] = Field(
        description="Host patterns such as `**.example.org` or `{sub}.example.org`; a port in the request is "
        "ignored unless the pattern names one.",
        min_length=1,
        max_length=64,
    )

    @field_validator("patterns", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                compile_host_pattern(pattern)
            except PatternError as exc:
                raise ValueError(f"{pattern!r}: {exc}") from exc
        return value


class HostPredicate:
    __slots__ = ("patterns",)

    def __init__(self, patterns: list[HostPattern]) -> None:
        self.patterns = tuple(patterns)

    def __call__(self, exchange: Exchange) -> bool:
        host = exchange.host
        for pattern in self.patterns:
            variables = pattern.match(host)
            if variables is not None:
                if variables:
                    exchange.path_vars.update(variables)
                return True
        return False


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
