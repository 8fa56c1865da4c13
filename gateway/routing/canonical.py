"""One canonical request path, used for route matching, authorisation, the path filters and forwarding.

RFC 3986 normalisation of the still-encoded path: percent-escapes of unreserved characters decoded, other escapes
upper-cased, dot segments resolved, empty segments merged (optional). The Envoy CVE-2019-9901 and
CVE-2021-29492 class of bypass comes from matching one spelling and forwarding another; here there is only one.
`%2F`, `%5C`, `%00` and `;` path parameters are reported so the route (default: refuse) decides; a raw
backslash, a `..` that climbs above the root and a `..;`/`.;` segment (Tomcat path-parameter traversal) are
refused outright.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from gateway.errors import BadRequest

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCHAR = _UNRESERVED | frozenset("!$&'()*+,;=:@%/")
# Characters clients sometimes leave unescaped although RFC 3986 forbids them in a path: escaped, not refused.
_ESCAPE_ON_SIGHT = {c: f"%{ord(c):02X}" for c in '"<>^`{|}'}
_FAST = re.compile(r"(?:/[A-Za-z0-9\-_~!$&'()*+,=:@][A-Za-z0-9\-_~!$&'()*+,=:@.]*)*/?")
_HEX = frozenset("0123456789abcdefABCDEF")
FLAGGED_ESCAPES = frozenset({"%2F", "%5C", "%00"})
#: Everything `CanonicalPath.escapes` can report: the flagged escapes and ';' (path parameters).
PATH_FLAGS = FLAGGED_ESCAPES | {";"}


class CanonicalPath(NamedTuple):
    path: str
    #: Which of %2F, %5C, %00 and ';' the path contains (empty almost always); refused unless the route allows.
    escapes: frozenset[str]


_EMPTY: frozenset[str] = frozenset()


def canonicalize(raw: str, *, merge_slashes: bool = True) -> CanonicalPath:
    """Canonicalise an origin-form path (no query). Raises BadRequest with the reason."""
    if raw[:1] == "/" and _FAST.fullmatch(raw) and "//" not in raw:
        return CanonicalPath(raw, _EMPTY)  # the common case: nothing to decode, no dot segments
    if not raw.startswith("/"):
        raise BadRequest("the request path must start with '/'")
    decoded, escapes = _normalise_escapes(raw)
    return CanonicalPath(_resolve_segments(decoded, merge_slashes), escapes)


def _normalise_escapes(raw: str) -> tuple[str, frozenset[str]]:
    out: list[str] = []
    escapes: set[str] = set()
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch == "%":
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2 or not _HEX.issuperset(pair):
                raise BadRequest("malformed percent-escape in the request path")
            char = chr(int(pair, 16))
            if char in _UNRESERVED:
                out.append(char)
            else:
                escape = "%" + pair.upper()
                if escape in FLAGGED_ESCAPES:
                    escapes.add(escape)
                out.append(escape)
            i += 3
            continue
        if ch == "\\":
            # SECURITY: some servers treat a backslash as a separator; never forward an ambiguous path.
            raise BadRequest("a raw backslash is not allowed in the request path")
        if ch == ";":
            escapes.add(";")  # path parameters: Tomcat/Spring match /admin;x=1 as /admin; the route decides
        if ch in _ESCAPE_ON_SIGHT:
            out.append(_ESCAPE_ON_SIGHT[ch])
        elif ch in _PCHAR:
            out.append(ch)
        else:
            raise BadRequest(f"character {ch!r} is not allowed in the request path")
        i += 1
    return "".join(out), frozenset(escapes)


def _resolve_segments(path: str, merge_slashes: bool) -> str:
    segments = path.split("/")[1:]
    out: list[str] = []
    last = len(segments) - 1
    trailing = False
    for index, segment in enumerate(segments):
        trailing = False
        if segment in (".", ".."):
            if segment == ".." and not out:
                raise BadRequest("the request path climbs above the root")
            if segment == ".." and out:
                out.pop()
            trailing = True  # "/a/b/.." names the directory "/a/"
            continue
        if segment.startswith(("..;", ".;")):
            # SECURITY: Tomcat-style "..;" traversal; no legitimate segment starts like this.
            raise BadRequest("a dot segment with path parameters is not allowed")
        if not segment and merge_slashes and index != last:
            continue
        out.append(segment)
    result = "/" + "/".join(out)
    if trailing and not result.endswith("/"):
        result += "/"
    return result
