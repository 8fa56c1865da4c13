"""RewriteResponseHeader: a Java-syntax regex replacement applied to every value of a response header.

The pattern runs on RE2 (gateway/regex.py), so a route's regex stays linear-time on whatever an upstream sends.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.exchange import Exchange, Next, Response
from gateway.headers import to_wire
from gateway.regex import Regex, Replacement, compile_regex, regex_validator, replacement_validator
from gateway.spec import HEADER_NAME, BuildContext, ComponentConfig, FilterSpec, header_name, header_value


class RewriteResponseHeaderConfig(ComponentConfig):
    name: str = Field(description="Header name (an RFC 9110 token).", min_length=1, max_length=256, pattern=HEADER_NAME)
    regexp: str = Field(
        description="Java-syntax regular expression; every match in every value is replaced.", max_length=1024
    )
    replacement: str = Field(
        description="Java replacement: `$1`, `${name}` (or `$\\{name}`) insert groups; `\\$` is a literal dollar.",
        max_length=4096,
    )

    # Rewriting Content-Length or Transfer-Encoding would desynchronise the client connection.
    _name = field_validator("name")(header_name)
    _regexp = field_validator("regexp")(regex_validator)
    _replacement_text = field_validator("replacement")(header_value)
    _replacement_groups = field_validator("replacement")(replacement_validator("regexp"))


def rewrite_value(regex: Regex, replacement: Replacement, value: str) -> str:
    """`value` (wire form: octets held latin-1-decoded) with every match replaced.

    A UTF-8 value is matched as text, so `.` is one character and a non-ASCII pattern or replacement means what
    it says; other octets are matched as they are and left untouched.
    """
    if value.isascii():
        return to_wire(regex.sub(replacement, value))
    try:
        text = value.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return regex.sub(replacement, value)
    return to_wire(regex.sub(replacement, text))


class RewriteResponseHeader:
    __slots__ = ("name", "regex", "replacement")

    def __init__(self, name: str, regex: Regex, replacement: Replacement) -> None:
        self.name, self.regex, self.replacement = name, regex, replacement

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        response = await call_next(exchange)
        headers = response.headers
        values = headers.get_all(self.name)
        if values:
            rewritten = [rewrite_value(self.regex, self.replacement, value) for value in values]
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
