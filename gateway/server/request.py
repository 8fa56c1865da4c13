"""Turning a parsed request head into an `Exchange`: target, Host, framing and hygiene rules of the edge."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.body import EMPTY, Body
from gateway.errors import BadRequest, ExpectationFailed
from gateway.exchange import PATH_ESCAPES, Exchange
from gateway.headers import Headers, connection_tokens_of
from gateway.hygiene import FORWARDING, HOP_BY_HOP, UPGRADE
from gateway.observability import (
    REQUEST_ID,
    TRACE_ID,
    acceptable_request_id,
    new_request_id,
    new_traceparent,
    parse_traceparent,
)
from gateway.routing.canonical import canonicalize
from gateway.settings import Settings
from gateway.uri import valid_authority

if TYPE_CHECKING:
    from gateway.server.protocol import HttpProtocol

_ABSOLUTE = re.compile(r"(?i)(https?)://([^/?#]*)(.*)")
#: Fields removed on arrival from a trusted proxy (hop-by-hop); from anyone else, forwarding fields too.
_TRUSTED_DROP = HOP_BY_HOP | {"expect"}
#: Fields the edge rules read, besides those they drop.
_READ = frozenset({"host", "content-length", "traceparent", "tracestate"})


@dataclass(frozen=True, slots=True)
class EdgeFields:
    """The field-name sets of the edge rules, built once per data server from the settings (never per request)."""

    trusted_drop: frozenset[str]
    #: SECURITY: what an untrusted peer may not send: forwarding claims and `proxy_only_headers` (client-IP and
    #: URL-override fields such as X-Original-URL, which some backends route on).
    untrusted_drop: frozenset[str]
    #: Fields the edge rules read or drop; every other field passes the scan with one set lookup.
    notable: frozenset[str]
    #: `headers_with_underscores: allow`: names are also checked against the drop sets with `_` read as `-`.
    fold_underscores: bool = False

    @classmethod
    def of(cls, settings: Settings) -> EdgeFields:
        untrusted = _TRUSTED_DROP | FORWARDING | {name.lower() for name in settings.proxy_only_headers}
        fold = settings.headers_with_underscores == "allow"
        return cls(_TRUSTED_DROP, untrusted, untrusted | _READ, fold)


@dataclass(slots=True)
class RequestHead:
    method: str
    target: str
    version: str
    headers: Headers
    keep_alive: bool
    upgrade: bool


def _split_target(target: str) -> tuple[str, str, str | None]:
    """(path, query, authority from an absolute-form target or None)."""
    if "#" in target:
        raise BadRequest("a request target must not carry a fragment")
    authority = None
    if not target.startswith("/"):
        absolute = _ABSOLUTE.fullmatch(target)
        if absolute is None:
            raise BadRequest("the request target must be origin-form (/path) or absolute-form (http://host/path)")
        authority, target = absolute.group(2), absolute.group(3) or "/"
        if not target.startswith("/"):
            target = "/" + target
    path, _, query = target.partition("?")
    return path, query, authority


class _Fields:
    """The request fields the edge rules look at, found in one pass over the head (most requests carry only Host)."""

    __slots__ = ("found", "strip")

    def __init__(self, headers: Headers, id_header: str, trusted: bool, rules: EdgeFields) -> None:
        self.found: dict[str, list[str]] = {}
        #: Lower-cased names to remove before filters see the request (hop-by-hop, untrusted claims, Expect).
        self.strip: set[str] = set()
        drop = rules.untrusted_drop if not trusted else rules.trusted_drop
        notable = rules.notable
        found = self.found
        for lower, _, value in headers.raw():
            if lower in notable or lower == id_header:
                values = found.get(lower)
                if values is None:
                    found[lower] = [value]
                else:
                    values.append(value)
                if lower in drop:
                    self.strip.add(lower)
        if rules.fold_underscores:
            # SECURITY: CGI/PHP and some nginx setups read `_` as `-`, so X_Original_URL would reach them as
            # X-Original-URL. (Otherwise the server dropped or refused underscored names already: nothing to check.)
            self.strip.update(name for name, _, _ in headers.raw() if "_" in name and name.replace("_", "-") in drop)
        connection = found.get("connection")
        if connection:
            # RFC 9110 §7.6.1: fields named in Connection are hop-by-hop too; Host is never dropped this way.
            self.strip.update(token for token in connection_tokens_of(connection) if token != "host")

    def first(self, lower: str) -> str | None:
        values = self.found.get(lower)
        return values[0] if values else None


def _host(head: RequestHead, fields: _Fields, authority: str | None) -> str:
    hosts = fields.found.get("host", ())
    if len(hosts) > 1:
        raise BadRequest("more than one Host header")
    host = hosts[0].strip() if hosts else ""
    if not host and head.version != "1.0":
        raise BadRequest("HTTP/1.1 requests must carry a Host header")
    if host and not valid_authority(host):
        raise BadRequest("invalid Host header")
    if authority is not None and authority.lower() != host.lower():
        # SECURITY: route on one authority and forward another is a classic cache-poisoning/routing bypass.
        raise BadRequest("the absolute-form request target names a different host than the Host header")
    return host


def _body(head: RequestHead, fields: _Fields, proto: HttpProtocol) -> Body:
    codings = fields.found.get("transfer-encoding", ())
    chunked = bool(codings)
    if chunked and (len(codings) != 1 or codings[0].strip().lower() != "chunked"):
        # SECURITY: only plain `chunked` is framing both we and every upstream agree on (RFC 9112 §6.1).
        raise BadRequest("unsupported Transfer-Encoding; only 'chunked' is accepted")
    if chunked and head.version == "1.0":
        # SECURITY: HTTP/1.0 has no chunked coding; a proxy that honours it disagrees with one that does not.
        raise BadRequest("Transfer-Encoding is not allowed in HTTP/1.0 requests")
    expect = fields.first("expect")
    expect_continue = False
    if expect is not None:
        if expect.strip().lower() != "100-continue":
            raise ExpectationFailed(f"unsupported expectation {expect!r}")
        expect_continue = head.version != "1.0"  # answered here, on the first read of the body
    length = fields.first("content-length")
    if head.upgrade:
        if chunked or (length is not None and int(length) != 0):
            # SECURITY: llhttp hands the bytes after an upgrade head to the tunnel, not to a body.
            raise BadRequest("an upgrade request must not carry a body")
        return EMPTY
    if chunked:
        return proto.new_body(None, expect_continue)
    if length is None or int(length) == 0:
        return EMPTY
    return proto.new_body(int(length), expect_continue)


def build_exchange(head: RequestHead, proto: HttpProtocol, settings: Settings) -> tuple[Exchange, Body]:
    """Validate the head and build the Exchange filters will see. Raises a GatewayError (4xx) on any rule."""
    raw_path, query, authority = _split_target(head.target)
    headers = head.headers
    id_header = settings.observability.request_id_header
    id_lower = id_header.lower()
    fields = _Fields(headers, id_lower, proto.trusted_peer, proto.edge_fields)
    host = _host(head, fields, authority)
    body = _body(head, fields, proto)
    upgrade = (fields.first("upgrade") or "") if head.upgrade else ""
    client_host, client_port = proto.peer
    canonical = canonicalize(raw_path, merge_slashes=settings.merge_slashes)
    exchange = Exchange(
        head.method,
        canonical.path,
        query,
        headers,
        body,
        client_host=client_host,
        client_port=client_port,
        http_version=head.version,
        host=host,
    )
    if canonical.escapes:
        exchange.set(PATH_ESCAPES, canonical.escapes)
    if upgrade and upgrade.strip().lower() == "websocket":
        # SECURITY: only WebSocket is tunnelled. Any other token (h2c, TLS/1.2) would open a byte stream past every
        # predicate and filter for all later requests on it; it is dropped (hop-by-hop) and served as plain HTTP.
        exchange.set(UPGRADE, "websocket")
    new_parent = _trace(exchange, fields, proto.trusted_peer, id_lower)
    if fields.strip:
        headers.remove_many(fields.strip)
    if new_parent is not None:
        headers.raw().append(("traceparent", "traceparent", new_parent))  # a name and a value of our own making
    return exchange, body


def _trace(exchange: Exchange, fields: _Fields, trusted: bool, id_lower: str) -> str | None:
    """Request id (kept from a trusted proxy, else generated) and W3C traceparent (kept if valid, else new: the
    new `traceparent` value is returned, for the caller to add once the fields to strip are gone).

    The client's own X-Request-Id stays visible to predicates and filters (SCG configs match on it); the id the
    gateway logs, returns and forwards is REQUEST_ID — the forwarder writes it over whatever the client sent.
    """
    given = fields.first(id_lower) if trusted else None
    # SECURITY: an untrusted client cannot choose the id the logs correlate on
    request_id = given if given is not None and acceptable_request_id(given) else new_request_id()
    exchange.set(REQUEST_ID, request_id)
    parents = fields.found.get("traceparent")
    trace = parse_traceparent(parents[0]) if parents is not None and len(parents) == 1 else None
    if trace is not None:
        exchange.set(TRACE_ID, trace)
        return None
    parent, trace = new_traceparent()
    if parents is not None:
        fields.strip.add("traceparent")
    if "tracestate" in fields.found:
        fields.strip.add("tracestate")  # state belongs to the trace it came with
    exchange.set(TRACE_ID, trace)
    return parent
