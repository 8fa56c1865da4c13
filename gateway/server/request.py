"""Turning a parsed request head into an `Exchange`: target, Host, framing and hygiene rules of the edge."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.body import EMPTY, Body
from gateway.errors import BadRequest, ExpectationFailed
from gateway.exchange import PATH_ESCAPES, Exchange
from gateway.headers import Headers
from gateway.hygiene import FORWARDING, UPGRADE, strip_hop_by_hop
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


def _host(head: RequestHead, authority: str | None) -> str:
    hosts = head.headers.get_all("host")
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


def _body(head: RequestHead, proto: HttpProtocol) -> Body:
    headers = head.headers
    codings = headers.get_all("transfer-encoding")
    chunked = bool(codings)
    if chunked and (len(codings) != 1 or codings[0].strip().lower() != "chunked"):
        # SECURITY: only plain `chunked` is framing both we and every upstream agree on (RFC 9112 §6.1).
        raise BadRequest("unsupported Transfer-Encoding; only 'chunked' is accepted")
    if chunked and head.version == "1.0":
        # SECURITY: HTTP/1.0 has no chunked coding; a proxy that honours it disagrees with one that does not.
        raise BadRequest("Transfer-Encoding is not allowed in HTTP/1.0 requests")
    expect = headers.get("expect")
    expect_continue = False
    if expect is not None:
        if expect.strip().lower() != "100-continue":
            raise ExpectationFailed(f"unsupported expectation {expect!r}")
        expect_continue = head.version != "1.0"
        headers.remove("expect")  # answered here, on the first read of the body
    length = headers.get("content-length")
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
    host = _host(head, authority)
    body = _body(head, proto)
    headers = head.headers
    upgrade = headers.get("upgrade", "") if head.upgrade else ""
    strip_hop_by_hop(headers)
    client_host, client_port = proto.peer
    if not proto.trusted_peer:
        headers.remove_many(FORWARDING)  # SECURITY: only trusted proxies may speak for the client
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
    if upgrade:
        exchange.set(UPGRADE, upgrade.strip().lower())
    _trace(exchange, headers, proto.trusted_peer, settings.observability.request_id_header)
    return exchange, body


def _trace(exchange: Exchange, headers: Headers, trusted: bool, id_header: str) -> None:
    """Request id (kept from a trusted proxy, else generated) and W3C traceparent (kept if valid, else new).

    The client's own X-Request-Id stays visible to predicates and filters (SCG configs match on it); the id the
    gateway logs, returns and forwards is REQUEST_ID — the forwarder writes it over whatever the client sent.
    """
    given = headers.get(id_header) if trusted else None
    # SECURITY: an untrusted client cannot choose the id the logs correlate on
    request_id = given if given is not None and acceptable_request_id(given) else new_request_id()
    exchange.set(REQUEST_ID, request_id)
    parent = headers.get("traceparent")
    trace = parse_traceparent(parent) if parent is not None else None
    if trace is None:
        parent, trace = new_traceparent()
        headers.set("traceparent", parent)
        headers.remove("tracestate")  # state belongs to the trace it came with
    exchange.set(TRACE_ID, trace)
