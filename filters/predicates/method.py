"""Method predicate: the request method is one of a list."""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.api import BuildContext, ComponentConfig, Exchange, PredicateSpec, is_token, one_or_many


class MethodConfig(ComponentConfig):
    methods: list[str] = Field(
        description="HTTP methods, e.g. GET, POST (case-insensitive).", min_length=1, max_length=32
    )

    _one_or_many = field_validator("methods", mode="before")(one_or_many)

    @field_validator("methods")
    @classmethod
    def _tokens(cls, value: list[str]) -> list[str]:
        upper = [m.strip().upper() for m in value]
        bad = [m for m in upper if not is_token(m)]  # a method is an RFC 9110 token, like a header name
        if bad:
            raise ValueError(f"not HTTP methods: {bad}")
        return upper


class MethodPredicate:
    __slots__ = ("methods",)

    def __init__(self, methods: list[str]) -> None:
        self.methods = frozenset(methods)

    def __call__(self, exchange: Exchange) -> bool:
        return exchange.method in self.methods


def build(config: MethodConfig, context: BuildContext) -> MethodPredicate:
    return MethodPredicate(config.methods)


SPEC = PredicateSpec(
    name="Method",
    config=MethodConfig,
    build=build,
    summary="Matches when the request method is one of `methods`.",
    example={"methods": ["GET", "POST"]},
    shortcut=("methods",),
    shortcut_type="gather_list",
    status="stable",
)
