"""RewriteResponseHeader: a Java-syntax regex replacement applied to every value of a response header.

The pattern runs on RE2 (gateway/regex.py), so a route's regex stays linear-time on whatever an upstream sends.
A pattern that can match the empty string between two characters is refused at load, and a rewritten value is
capped at 16 KiB: past that the filter answers 500 (the route's config, not the upstream, made it too long), and
the substitution stops as soon as the cap is crossed, so the work stays bounded too.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterSpec,
    InternalError,
    Next,
    Regex,
    Replacement,
    Response,
    ResponseHeaderName,
    compile_regex,
    header_value,
    replacement_validator,
    replacing_regex,
    sub_within,
    to_wire,
)

#: Longest rewritten value, in bytes on the wire.
MAX_VALUE = 16 * 1024


class RewriteResponseHeaderConfig(ComponentConfig):
    # Rewriting Content-Length or Transfer-Encoding would desynchronise the client connection.
    name: ResponseHeaderName = Field(description="Header name (an RFC 9110 token).")
    regexp: str = Field(
        description="Java-syntax regular expression; every match in every value is replaced. It must not match "
        "the empty string between two characters (`x*`, `,?`).",
        min_length=1,
        max_length=1024,
    )
    replacement: str = Field(
        description="Java replacement: `$1`, `${name}` (or `$\\{name}`) insert groups; `\\$` is a literal dollar.",
        max_length=4096,
    )

    _regexp = field_validator("regexp")(replacing_regex)
    _replacement_text = field_validator("replacement")(header_value)
    _replacement_groups = field_validator("replacement")(replacement_validator("regexp"))


def rewrite_value(regex: Regex, replacement: Replacement, value: str, limit: int = MAX_VALUE) -> str | None:
    """`value` (wire form: octets held latin-1-decoded) with every match replaced; None when longer than `limit`.

    A UTF-8 value is matched as text, so `.` is one character and a non-ASCII pattern or replacement means what
    it says; other octets are matched as they are and left untouched.
    """
    text = value
    if not value.isascii():
        try:
            text = value.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            return sub_within(regex, replacement, value, limit)
    rewritten = sub_within(regex, replacement, text, limit)
    if rewritten is None:
        return None
    wire = to_wire(rewritten)
    return wire if len(wire) <= limit else None  # UTF-8 may be longer than the text


class RewriteResponseHeader:
    __slots__ = ("name", "regex", "replacement")

    def __init__(self, name: str, regex: Regex, replacement: Replacement) -> None:
        self.name, self.regex, self.replacement = name, regex, replacement

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        response = await call_next(exchange)
        headers = response.headers
        values = headers.get_all(self.name)
        if values:
            rewritten = []
            for value in values:
                new = rewrite_value(self.regex, self.replacement, value)
                if new is None:
                    # Config-induced (the route's replacement grew the value), hence 500 rather than 502.
                    raise InternalError(f"RewriteResponseHeader would make {self.name} longer than {MAX_VALUE} bytes")
                rewritten.append(new)
            headers.remove(self.name)
            for value in rewritten:
                headers.add(self.name, value)
        return response


def build(config: RewriteResponseHeaderConfig, context: BuildContext) -> RewriteResponseHeader:
    regex = compile_regex(config.regexp)
    return RewriteResponseHeader(config.name, regex, Replacement(config.replacement, regex))


SPEC = FilterSpec(
    name="RewriteResponseHeader",
    order=912,
    config=RewriteResponseHeaderConfig,
    build=build,
    summary=(
        "Replaces regex matches in every value of a response header: "
        "`RewriteResponseHeader=X-Response-Red, password=[^&]+, password=***`."
    ),
    example={"name": "X-Response-Red", "regexp": "password=[^&]+", "replacement": "password=***"},
    shortcut=("name", "regexp", "replacement"),
    status="stable",
)
