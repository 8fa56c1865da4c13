"""AddRequestHeadersIfNotPresent: give request headers a default value, keeping whatever the client sent."""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterSpec,
    HeaderInjection,
    Headers,
    Next,
    Response,
    Template,
    check_name,
    header_name,
    header_value,
)

MAX_PAIRS = 64


def split_pair(item: str) -> tuple[str, str]:
    """`"X-Color:blue"` → ("X-Color", "blue"); the value may itself contain colons (a URL). ValueError otherwise."""
    name, sep, value = item.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        raise ValueError(f"expected 'name:value', got {item!r}")
    check_name_token(name)
    header_name(name)
    header_value(value)
    return name, value


def check_name_token(name: str) -> None:
    """ValueError (what pydantic reports) unless `name` is an RFC 9110 token."""
    try:
        check_name(name)
    except HeaderInjection as exc:
        raise ValueError(f"{exc.detail}: a header name must be an RFC 9110 token") from exc


def _pair_text(item: object) -> object:
    # SCG binds `{key: X-A, value: v}` as well as "X-A:v"; both spellings become the string form.
    if not isinstance(item, dict):
        return item
    if set(item) != {"key", "value"}:
        raise ValueError(f"expected 'name:value' or {{key: name, value: value}}, got {item!r}")
    return f"{item['key']}:{item['value']}"


class AddRequestHeadersIfNotPresentConfig(ComponentConfig):
    key_values: list[str] = Field(
        description=(
            "Headers as `name:value` (or `{key, value}`); repeat a name for several values. "
            "`{var}` in a value is replaced by a variable captured by Path or Host."
        ),
        min_length=1,
        max_length=MAX_PAIRS,
    )

    @field_validator("key_values", mode="before")
    @classmethod
    def _pairs(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")  # one string is a comma-separated list, as Spring binds it
        return [_pair_text(item) for item in value] if isinstance(value, list) else value

    @field_validator("key_values")
    @classmethod
    def _valid(cls, value: list[str]) -> list[str]:
        for item in value:
            if len(item) > 8192:
                raise ValueError(f"{item[:40]!r}...: a pair may be at most 8192 characters")
            split_pair(item)
        return value


def group_pairs(items: list[str]) -> tuple[tuple[str, tuple[Template, ...]], ...]:
    """Pairs grouped by header name (case-insensitive, first spelling and first-seen order kept)."""
    groups: dict[str, tuple[str, list[Template]]] = {}
    for item in items:
        name, value = split_pair(item)
        groups.setdefault(name.lower(), (name, []))[1].append(Template(value))
    return tuple((name, tuple(templates)) for name, templates in groups.values())


def absent_or_blank(headers: Headers, name: str) -> bool:
    """SCG counts a header whose every value is blank as missing."""
    return all(not value.strip() for value in headers.get_all(name))


class AddRequestHeadersIfNotPresent:
    __slots__ = ("groups",)

    def __init__(self, groups: tuple[tuple[str, tuple[Template, ...]], ...]) -> None:
        self.groups = groups

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        headers = exchange.headers
        for name, templates in self.groups:
            if not absent_or_blank(headers, name):
                continue
            # Blank values are replaced rather than kept next to the default (SCG keeps them: `"", "blue"`).
            headers.remove(name)
            for template in templates:
                # Headers.add refuses CR/LF/NUL, so a variable can never split the header (400 instead).
                headers.add(name, template.render_header(exchange.path_vars))
        return await call_next(exchange)


def build(config: AddRequestHeadersIfNotPresentConfig, context: BuildContext) -> AddRequestHeadersIfNotPresent:
    return AddRequestHeadersIfNotPresent(group_pairs(config.key_values))


SPEC = FilterSpec(
    name="AddRequestHeadersIfNotPresent",
    order=906,
    config=AddRequestHeadersIfNotPresentConfig,
    build=build,
    summary=(
        "Adds each `name:value` header to the upstream request unless the client sent that header with a "
        "non-blank value: `AddRequestHeadersIfNotPresent=X-Color:blue,X-Color:green,X-Tenant:{sub}`."
    ),
    example={"keyValues": ["X-Request-Color:blue", "X-Segment:{segment}"]},
    shortcut=("keyValues",),
    shortcut_type="gather_list",
    status="stable",
)
