"""RedirectTo: answer with a 3xx and a Location, without contacting the upstream (SCG semantics, plus variables).

SECURITY: no open redirects through variables. The target's scheme and host come from config: a `{var}` in the
scheme or authority is refused at load unless the filter sets `allowVariableHost: true`, and even then a value is
fully percent-encoded there, so it cannot add a user-info part, a port or a path. In the path, values follow the
path rule of `gateway/uri.py` (no "//", so a relative target can never become `//evil.example`); in the query
and fragment they are encoded as query data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import quote

from pydantic import Field, ValidationInfo, field_validator

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterSpec,
    Headers,
    Next,
    PathTemplate,
    Response,
    Template,
    check_query_text,
    probe,
    render_query_template,
)

_ABSOLUTE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)(.*)", re.DOTALL)  # config text only
_AUTHORITY = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@\[\]]|%[0-9A-Fa-f]{2})+")
_SPRING_NAMES = {"MOVED_TEMPORARILY": 302}


def parse_redirect_status(value: object) -> int:
    """A 3xx status from 302, "302" or a Spring HttpStatus name ("FOUND"); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("status must be a number or an HTTP status name")
    text = value.strip().upper() if isinstance(value, str) else value
    if isinstance(text, str) and text.isdigit():
        text = int(text)
    if isinstance(text, str):
        code = _SPRING_NAMES.get(text) or (HTTPStatus[text].value if text in HTTPStatus.__members__ else None)
        if code is None:
            raise ValueError(f"unknown HTTP status {value!r}")
        text = code
    if not isinstance(text, int) or not 300 <= text <= 399:
        raise ValueError(f"status must be a 3xx redirect code, not {value!r}")
    return text


@dataclass(frozen=True, slots=True)
class RedirectTarget:
    """A redirect URL split where variables are judged differently: origin, path, query, fragment."""

    origin: Template | None  # "scheme://authority"; None for a relative target
    path: PathTemplate | None
    query: Template | None
    fragment: Template | None

    @property
    def is_static(self) -> bool:
        """No variable anywhere: the Location is the URL as configured (plus the request's query, if asked)."""
        parts = (self.origin, self.path, self.query, self.fragment)
        return all(part is None or part.is_static for part in parts)

    def render(self, exchange: Exchange, request_query: str, limit: int) -> str:
        """The Location value; `request_query` (raw, may be "") is appended to the target's own query.

        Raises BadRequest (a dot segment) or UriTooLong (a path longer than `limit`) from the path rule.
        """
        variables = exchange.path_vars
        out = [self._origin(variables)] if self.origin is not None else []
        if self.path is not None:
            out.append(self.path.path(exchange, limit))
        query = render_query_template(self.query, variables) if self.query is not None else None
        if request_query:
            query = f"{query}&{request_query}" if query else request_query
        if query is not None:
            out.append("?" + query)
        if self.fragment is not None:
            out.append("#" + render_query_template(self.fragment, variables))
        return "".join(out)

    def _origin(self, variables: Mapping[str, str]) -> str:
        assert self.origin is not None
        if self.origin.is_static:
            return self.origin.source
        # SECURITY: only reached with allowVariableHost; every reserved character ("@", ":", "/") is escaped.
        values = {n: quote(variables[n], safe="") if n in variables else f"%7B{n}%7D" for n in self.origin.names}
        return self.origin.render(values)


def parse_target(url: str, allow_variable_host: bool) -> RedirectTarget:
    """Split and check a configured redirect URL; ValueError with the reason."""
    origin, rest = None, url
    absolute = _ABSOLUTE.fullmatch(url)
    if absolute is not None:
        scheme, authority, rest = absolute.groups()
        origin = Template(f"{scheme}://{authority}")
        if origin.names and not allow_variable_host:
            raise ValueError(
                "a variable in the scheme or host would allow open redirects; put variables in the path or "
                "query, or set allowVariableHost: true on this filter"
            )
        if not _AUTHORITY.fullmatch(probe(Template(authority))):
            raise ValueError("the URL needs a host made of URI characters (percent-encode anything else)")
    elif not url.startswith("/") or url.startswith("//"):
        raise ValueError("url must be absolute (scheme://host/...) or a path starting with a single '/'")
    rest, hash_sign, fragment = rest.partition("#")
    path, question, query = rest.partition("?")
    query_t = Template(query) if question else None
    fragment_t = Template(fragment) if hash_sign else None
    for part in (query_t, fragment_t):
        if part is not None:
            check_query_text(probe(part))
    return RedirectTarget(origin, PathTemplate(path) if path else None, query_t, fragment_t)


class RedirectToConfig(ComponentConfig):
    status: int = Field(
        description="A 3xx status: a number or a name such as FOUND or MOVED_PERMANENTLY.", ge=300, le=399
    )
    allow_variable_host: bool = Field(
        False, description="Allow `{var}` in the URL's host (an open-redirect risk; values are fully encoded there)."
    )
    include_request_params: bool = Field(False, description="Append the request's query to the URL's query.")
    url: str = Field(
        description="The Location: `scheme://host/path?query` or a path starting with '/'; `{var}` is a variable "
        "captured by Path or Host, allowed in the path, query and fragment.",
        min_length=1,
        max_length=4096,
    )

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: object) -> int:
        return parse_redirect_status(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        parse_target(value, bool(info.data.get("allow_variable_host")))
        return value


class RedirectTo:
    __slots__ = ("status", "target", "include_query", "limit", "fixed")

    def __init__(self, status: int, target: RedirectTarget, include_query: bool, limit: int, url: str) -> None:
        self.status, self.target, self.include_query, self.limit = status, target, include_query, limit
        #: The Location when nothing varies: a static target renders as the URL as written.
        self.fixed = url if target.is_static else None

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        query = exchange.query if self.include_query else ""
        location = self.fixed if not query else None
        if location is None:
            location = self.target.render(exchange, query, self.limit)
        return Response(self.status, Headers([("Location", location)]))  # the upstream is never contacted


def build(config: RedirectToConfig, context: BuildContext) -> RedirectTo:
    target = parse_target(config.url, config.allow_variable_host)
    limit = context.settings.limits.max_request_line
    return RedirectTo(config.status, target, config.include_request_params, limit, config.url)


SPEC = FilterSpec(
    name="RedirectTo",
    order=926,
    config=RedirectToConfig,
    build=build,
    summary="Answers with a redirect (`RedirectTo=302, https://acme.org`) without contacting the upstream; "
    "variables are allowed in the URL's path, query and fragment, not in its host.",
    example={"status": 302, "url": "https://acme.org/red/{segment}", "includeRequestParams": True},
    shortcut=("status", "url", "includeRequestParams"),
    status="stable",
)
