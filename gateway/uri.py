"""URI building blocks shared by the path, parameter and redirect filters (not a filter; no entry point).

The path rule, for every path a filter builds or rewrites (PrefixPath, SetPath, RewritePath, RedirectTo):

1. Variable values are text (Path and Host captures are percent-decoded), so they are percent-encoded as path
   segments: everything except unreserved characters and ``!$&'()*+,=:@`` is escaped — ``%``, ``;``, ``?``, ``#``,
   spaces, controls and non-ASCII (as UTF-8). A value can never end the path, start a query or add a path parameter.
2. A "/" inside a value stays a separator (a ``{*rest}`` capture is several segments, as in SCG), except when the
   request path carried ``%2F`` (possible only on a route with ``allow-encoded: [%2F]``): a "/" in a decoded value
   may then have been ``%2F``, so it is escaped again and the value stays one segment, as the client sent it.
3. The result has no empty segments: "//" is merged, because a leading "//" reads as a host name to many URL
   parsers and a doubled slash is a different path to some backends. A "." or ".." segment (also spelled %2E, or
   followed by ";params", which Tomcat reads as ".."), is refused with 400: it would climb out of the prefix the
   operator wrote.

Literal text from config is checked at load: path characters and valid %XX escapes only, no "//", no dot segment,
no query or fragment. Only config text is matched with Python's `re` here; request data never is.

A built path longer than the server's `limits.max_request_line` is refused with 414: a template repeating a
variable, or a regex replacement, must not turn a short request into a huge one upstream.

Authorities (`host[:port]`) have one grammar here too, `valid_authority`, for a Host the gateway receives, sends
or writes into a Location.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from urllib.parse import quote, unquote_plus

from gateway.errors import BadRequest, UriTooLong
from gateway.exchange import PATH_ESCAPES, Exchange
from gateway.regex import Regex, Replacement
from gateway.template import Template

#: Sub-delimiters and ":@" a segment keeps unescaped; ";" is escaped (a path parameter the route did not allow).
_SEGMENT_SAFE = "!$&'()*+,=:@"
#: What a query name or value keeps unescaped: "&", "=", "+", ";" and "#" would change how the query is split.
_QUERY_SAFE = "!$'()*,:@/?"
_PATH_TEXT = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*")
_QUERY_TEXT = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*")
_DOT_SEGMENTS = frozenset({".", "..", "%2E", "%2E%2E", ".%2E", "%2E."})
_PROBE = "x"  # stands in for a variable when config text is checked at load
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "-._")
_IPV6_CHARS = frozenset(string.hexdigits + ":.")


def encode_segment(text: str) -> str:
    """`text` as one path segment: "/" and everything outside a segment's safe set percent-encoded (UTF-8)."""
    return quote(text, safe=_SEGMENT_SAFE)


def encode_query(text: str) -> str:
    """`text` as a query name or value: the characters that split a query ("&", "=", "+", ";", "#") escaped."""
    return quote(text, safe=_QUERY_SAFE)


def encode_path_value(value: str, slashes: bool) -> str:
    """A variable's value for a path: each "/"-separated part a segment, or one segment when `slashes` is False."""
    if not slashes or "/" not in value:
        return encode_segment(value)
    return "/".join(encode_segment(part) for part in value.split("/"))


def slashes_are_separators(exchange: Exchange) -> bool:
    """False when the request path held %2F: a "/" in a decoded variable may then have been data, not a separator."""
    escapes = exchange.get(PATH_ESCAPES)
    return not escapes or "%2F" not in escapes


def finish_path(path: str) -> str:
    """A built path made safe to forward: leading "/", empty segments merged; BadRequest on a dot segment."""
    if not path.startswith("/"):
        path = "/" + path
    if "//" in path:
        segments = [segment for segment in path.split("/") if segment]
        trailing = "/" if segments and path.endswith("/") else ""
        path = "/" + "/".join(segments) + trailing
    if "." in path or "%" in path:
        for segment in path.split("/"):
            # SECURITY: a ".." built from request data would escape the prefix the operator wrote; "..;x" is the
            # same to Tomcat (the canonical path refuses it on arrival, but a regex can splice one together).
            name = segment.partition(";")[0]
            if len(name) <= 6 and name.upper() in _DOT_SEGMENTS:
                raise BadRequest("the rewritten path would contain a '.' or '..' segment")
    return path


def check_path_length(path: str | None, limit: int) -> str:
    """`path`, or UriTooLong (414) when a filter built it longer than `limit` (the server's request-line limit);
    None stands for a path found too long while it was being built (`sub_within`)."""
    if path is None or len(path) > limit:
        raise UriTooLong(f"the rewritten path would be longer than {limit} bytes")
    return path


def check_path_text(text: str, *, whole: bool = True) -> None:
    """Load-time check of literal path text (variables replaced by a probe); ValueError with the reason.

    `whole=False` is for a piece spliced into a path (a RewritePath replacement): characters only, since "//" and
    dot segments can only be judged in the result, where `finish_path` does.
    """
    if "?" in text or "#" in text:
        raise ValueError("a path has no query or fragment here; use AddRequestParameter for query parameters")
    if not _PATH_TEXT.fullmatch(text):
        raise ValueError(
            "only path characters and %XX escapes are allowed (percent-encode spaces, non-ASCII and "
            "characters such as '\"<>\\^`{|}'; a variable is {name})"
        )
    if not whole:
        return
    if "//" in text:
        raise ValueError("'//' (an empty segment) is not allowed")
    if any(segment.upper() in _DOT_SEGMENTS for segment in text.split("/")):
        raise ValueError("'.' and '..' segments are not allowed")


def check_query_text(text: str) -> None:
    """Load-time check of literal query or fragment text; ValueError with the reason."""
    if not _QUERY_TEXT.fullmatch(text):
        raise ValueError("only URI query characters and %XX escapes are allowed in a query or fragment")


def probe(template: Template) -> str:
    """The template's literal text, each known placeholder replaced by a harmless stand-in (for load checks)."""
    return template.render(dict.fromkeys(template.names, _PROBE))


class PathTemplate:
    """A path with `{var}` placeholders, checked at load and rendered under the module's path rule."""

    __slots__ = ("template",)

    def __init__(self, source: str) -> None:
        """Raises ValueError when the literal text breaks the path rule."""
        self.template = Template(source)
        check_path_text(probe(self.template))

    @property
    def is_static(self) -> bool:
        return self.template.is_static

    def render(self, variables: Mapping[str, str], slashes: bool) -> str:
        """The path with every placeholder filled; not yet `finish_path`ed. Unknown names stay, escaped."""
        if self.template.is_static:
            return self.template.source
        values = {}
        for name in self.template.names:
            value = variables.get(name)
            # An uncaptured name stays as written (docs/routes.md), escaped so its braces are path data.
            values[name] = encode_path_value(value, slashes) if value is not None else "%7B" + name + "%7D"
        return self.template.render(values)

    def path(self, exchange: Exchange, limit: int) -> str:
        """The path for this exchange, safe to forward: the static text as checked at load, or the rendering
        `finish_path`ed. Raises BadRequest (a dot segment) or UriTooLong (longer than `limit`)."""
        if self.template.is_static:
            return self.template.source
        rendered = self.render(exchange.path_vars, slashes_are_separators(exchange))
        return check_path_length(finish_path(rendered), limit)


def sub_within(regex: Regex, replacement: Replacement, text: str, limit: int) -> str | None:
    """`regex.sub(replacement, text)`, or None when the result would be longer than `limit` characters
    (the substitution stops as soon as it outgrows `limit`, so work and memory stay bounded)."""
    return regex.sub(replacement, text, limit)


def valid_authority(value: str) -> bool:
    """True for `name`, `name:port`, `[v6]` or `[v6]:port`: the gateway's one grammar for a Host.

    A name is 1-253 letters, digits, "-", "." and "_", not starting with "." or "-", without ".."; an IPv6
    literal is hex digits, ":" and "." with at least one ":"; a port is 1-65535. Stricter than RFC 3986's
    reg-name on purpose: no "%", "~" or sub-delimiters, which no DNS name has and which an upstream or a cache
    may read differently. Plain string operations: the value may be request data (a Host, a path variable).
    """
    if value.startswith("["):
        literal, bracket, rest = value[1:].partition("]")
        if not bracket or not literal or ":" not in literal or not _IPV6_CHARS.issuperset(literal):
            return False
        return rest == "" or (rest.startswith(":") and _valid_port(rest[1:]))
    name, colon, port = value.partition(":")
    valid_name = 0 < len(name) <= 253 and _NAME_CHARS.issuperset(name) and name[0] not in ".-" and ".." not in name
    return valid_name and (not colon or _valid_port(port))


def _valid_port(port: str) -> bool:
    return 1 <= len(port) <= 5 and port.isascii() and port.isdigit() and 0 < int(port) <= 65535


def check_authority(value: str, sample: str | None = None) -> str:
    """Validator: `value` (or `sample`, a template's rendering with stand-ins) is a host[:port]; ValueError."""
    if not valid_authority(value if sample is None else sample):
        raise ValueError(
            f"{value!r} is not a host[:port]: the pattern is name[:port] or [IPv6][:port] "
            "(e.g. api.example.org or 10.0.0.5:8443)"
        )
    return value


def render_query_template(template: Template, variables: Mapping[str, str]) -> str:
    """Query or fragment text with each placeholder's value encoded as query data (unknown names escaped)."""
    if template.is_static:
        return template.source
    values = {}
    for name in template.names:
        value = variables.get(name)
        values[name] = encode_query(value) if value is not None else "%7B" + name + "%7D"
    return template.render(values)


def parameter_name(pair: str) -> str:
    """The decoded name of one `name=value` query pair, as Spring reads it ("+" is a space)."""
    return unquote_plus(pair.partition("=")[0], errors="replace")


def remove_parameter(query: str, name: str) -> tuple[str, bool]:
    """The raw query without every pair whose decoded name is `name`, and whether one was removed.

    The other pairs keep their bytes and order; empty pairs are dropped only when something was removed.
    """
    if not query:
        return query, False
    pairs = query.split("&")
    kept = [pair for pair in pairs if pair and parameter_name(pair) != name]
    removed = len(kept) != sum(1 for pair in pairs if pair)
    return ("&".join(kept), True) if removed else (query, False)
