"""The request head sent upstream, serialised once as bytes in one pass over the exchange's fields.

What changes on the way out (docs/routes.md "What the gateway changes"): Host becomes the upstream's authority
(unless PreserveHostHeader), this hop is appended to X-Forwarded-For/-Proto/-Host/-Port/-Prefix and Forwarded, the
request id is written over whatever the client sent, and framing is recomputed from the body. The exchange itself
is not modified: a Retry attempt or a filter reading the request after the call sees what the chain built.
"""

from __future__ import annotations

import re

from gateway.body import Body
from gateway.errors import BadRequest
from gateway.exchange import Exchange, UpstreamRef
from gateway.headers import check_value
from gateway.hygiene import HOP_BY_HOP, PRESERVE_HOST, forwarding_values
from gateway.observability import REQUEST_ID

_TARGET = re.compile(r"/[\x21-\x7e]*")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_FRAMING = frozenset({"content-length", "transfer-encoding"})
#: Fields this serialiser rewrites; every other field is copied with one set lookup.
_REWRITTEN = frozenset({"host", "content-length", "transfer-encoding", "x-forwarded-for", "x-forwarded-proto"})
_REWRITTEN_TOO = frozenset({"x-forwarded-host", "x-forwarded-port", "x-forwarded-prefix", "forwarded"})
#: Hop-by-hop fields were removed on arrival; one a filter added since is not sent either (ours come last).
_HOP_BY_HOP = HOP_BY_HOP - _FRAMING
_SPECIAL = _REWRITTEN | _REWRITTEN_TOO | _HOP_BY_HOP


def serialize_request(
    exchange: Exchange, ref: UpstreamRef, upgrade: str | None, id_header: str = "X-Request-Id"
) -> tuple[bytes, bool | None]:
    """The request head as bytes, and how the body goes: None (no body), False (Content-Length), True (chunked)."""
    query = exchange.query
    target = f"{exchange.path}?{query}" if query else exchange.path
    if not _TARGET.fullmatch(target):
        raise BadRequest("the rewritten request target holds characters that cannot be sent")
    request_id = exchange.get(REQUEST_ID)
    id_lower = id_header.lower() if request_id is not None else ""
    preserve_host = exchange.get(PRESERVE_HOST) or False
    host_line = f"Host: {check_value(ref.authority)}\r\n"
    lines = [f"{exchange.method} {target} HTTP/1.1\r\n"]
    #: Forwarding fields already present (from a trusted proxy): their values, and where the joined line goes.
    present: dict[str, list[tuple[str, str, int]]] = {}
    seen_host = declared = seen_id = False
    for lower, name, value in exchange.headers.raw():
        if lower not in _SPECIAL and lower != id_lower:
            lines.append(f"{name}: {value}\r\n")
        elif lower == "host":
            if preserve_host:
                lines.append(f"{name}: {value}\r\n")
            elif not seen_host:
                lines.append(host_line)
            seen_host = True
        elif lower in _FRAMING:
            declared = declared or lower == "content-length"
        elif lower in _HOP_BY_HOP:
            continue
        elif lower == id_lower:
            if not seen_id:
                lines.append(f"{id_header}: {request_id}\r\n")
            seen_id = True
        else:
            # A forwarding field from a trusted proxy: its line is filled in below, once this hop's value is known.
            present.setdefault(lower, []).append((name, value, len(lines)))
            lines.append("")
    if not seen_host:
        lines.append(host_line)
    _forwarding(exchange, lines, present)
    if request_id is not None and not seen_id:
        lines.append(f"{id_header}: {request_id}\r\n")
    framing, chunked = _framing(exchange.method, exchange.body, declared)
    lines.append(framing)
    if upgrade:
        lines.append(f"Connection: Upgrade\r\nUpgrade: {upgrade}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1"), chunked


def _forwarding(exchange: Exchange, lines: list[str], present: dict[str, list[tuple[str, str, int]]]) -> None:
    """Append this hop: joined to the first line of a field a trusted proxy already sent, or as a new line."""
    for lower, name, value in forwarding_values(exchange):
        earlier = present.pop(lower, None)
        if earlier is None:
            lines.append(f"{name}: {value}\r\n")
            continue
        lines[earlier[0][2]] = f"{name}: {', '.join([*(sent for _, sent, _ in earlier), value])}\r\n"
    for earlier in present.values():  # a field this hop adds nothing to (X-Forwarded-Host without a Host): as sent
        for name, value, index in earlier:
            lines[index] = f"{name}: {value}\r\n"


def _framing(method: str, body: Body, declared: bool) -> tuple[str, bool | None]:
    if body.length is None:
        return "Transfer-Encoding: chunked\r\n", True
    if body.length > 0:
        return f"Content-Length: {body.length}\r\n", False
    return ("Content-Length: 0\r\n" if declared or method in _BODY_METHODS else ""), None
