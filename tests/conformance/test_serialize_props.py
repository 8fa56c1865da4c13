"""Properties of the request head the forwarder sends, read back by llhttp (httptools' request parser).

`serialize_request` receives an Exchange as the edge built it (hop-by-hop fields and `Expect` already removed,
docs/architecture.md step 1) and owes the upstream every field in order, except the documented changes
(docs/routes.md "What the gateway changes"): Host set to the upstream's authority (or kept), this hop appended to
the forwarding headers, the request id written, framing recomputed from the body. The expected head is computed
here from that list, independently of the implementation, and compared with what a real parser reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.body import Body, BytesBody
from gateway.errors import BadRequest
from gateway.exchange import Endpoint, Exchange, UpstreamRef
from gateway.headers import Headers
from gateway.hygiene import PRESERVE_HOST
from gateway.observability import REQUEST_ID
from gateway.server.wire import LAST_CHUNK, chunk
from gateway.upstream.request_head import serialize_request
from tests.conformance import strategies as s
from tests.conformance.llhttp import ParsedRequest

ID_HEADER = "X-Request-Id"
FORWARDING = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Prefix")
#: Names the edge has already removed from any Exchange (hop-by-hop, Expect): not generated here.
EDGE_REMOVED = s.HOP_BY_HOP | {"expect"}
#: Fields likely to collide with the ones the forwarder writes, so the replace/append rules get exercised.
COLLIDING = st.sampled_from(
    ["Host", "host", "Content-Length", "transfer-encoding", ID_HEADER, "x-request-id", *FORWARDING, "Forwarded"]
)


class StreamedBody(Body):
    """A body of unknown length (a chunked request from the client), yielding the given chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.length = None
        self._chunks = list(chunks)

    async def read(self) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""


@dataclass
class Case:
    exchange: Exchange
    ref: UpstreamRef
    fields: list[tuple[str, str]]  # the exchange's fields before serialisation
    body: bytes
    known_length: bool
    prefix: str  # what a path filter removed ("" when none)
    request_id: str | None
    preserve_host: bool
    upgrade: str | None


@st.composite
def cases(draw: st.DrawFn) -> Case:
    method = draw(s.methods)
    path, query = draw(s.paths), draw(s.queries)
    prefix = draw(st.one_of(st.just(""), s.paths.filter(lambda p: not p.endswith("/"))))
    names = st.one_of(s.field_names, COLLIDING).filter(lambda n: n.lower() not in EDGE_REMOVED)
    fields = draw(st.lists(st.tuples(names, s.field_values()), max_size=14))
    upgrade = draw(st.sampled_from([None, "websocket"]))
    # The edge refuses an upgrade request with a body; one without reaches the forwarder with the empty body.
    body = b"" if upgrade else draw(st.binary(max_size=300))
    known_length = bool(upgrade) or draw(st.booleans())
    stream = BytesBody(body) if known_length else StreamedBody([body[i : i + 7] for i in range(0, len(body), 7)])
    exchange = Exchange(
        method,
        path,
        query,
        Headers(fields),
        stream,
        client_host=draw(st.one_of(s.ipv4, s.ipv6)),
        client_port=draw(st.integers(1, 65535)),
        scheme=draw(st.sampled_from(["http", "https"])),
        host=draw(st.one_of(st.just(""), s.authorities)),
    )
    exchange.original_path = prefix + path
    request_id = draw(st.one_of(st.none(), st.from_regex(r"[0-9a-f]{32}", fullmatch=True)))
    if request_id is not None:
        exchange.set(REQUEST_ID, request_id)
    preserve = draw(st.booleans())
    if preserve:
        exchange.set(PRESERVE_HOST, True)
    host, port = draw(s.host_names), draw(st.integers(1, 65535))
    ref = UpstreamRef(
        "ws" if upgrade else "http", f"http://{host}:{port}", Endpoint(host, port, False), authority=f"{host}:{port}"
    )
    return Case(exchange, ref, fields, body, known_length, prefix, request_id, preserve, upgrade)


# -- the documented changes, as a model ---------------------------------------------------------------------------


def _set(fields: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    """Replace every `name` field by one, at the first one's place (appended when absent)."""
    key = name.lower()
    at = next((i for i, (n, _) in enumerate(fields) if n.lower() == key), None)
    if at is None:
        return [*fields, (name, value)]
    rest = [(n, v) for n, v in fields[at + 1 :] if n.lower() != key]
    return [*fields[:at], (name, value), *rest]


def _append_hop(fields: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    """This hop added to a forwarding header: a new field, or the value appended to the list already there."""
    values = [v for n, v in fields if n.lower() == name.lower()]
    return _set(fields, name, ", ".join([*values, value])) if values else [*fields, (name, value)]


def _port(host: str, scheme: str) -> str:
    port = host.rpartition("]")[2] if host.startswith("[") else host
    _, colon, number = port.rpartition(":")
    return number if colon and number.isdigit() else ("443" if scheme == "https" else "80")


def expected_fields(case: Case) -> list[tuple[str, str]]:
    exchange = case.exchange
    fields = list(case.fields)
    if not (case.preserve_host and any(n.lower() == "host" for n, _ in fields)):
        fields = _set(fields, "Host", case.ref.authority)
    client, scheme, host = exchange.client_host, exchange.scheme, exchange.host
    fields = _append_hop(fields, "X-Forwarded-For", client)
    fields = _append_hop(fields, "X-Forwarded-Proto", scheme)
    if host:
        fields = _append_hop(fields, "X-Forwarded-Host", host)
    fields = _append_hop(fields, "X-Forwarded-Port", _port(host, scheme))
    if case.prefix:
        fields = _append_hop(fields, "X-Forwarded-Prefix", case.prefix)
    node = f'"[{client}]"' if ":" in client else client
    fields = _append_hop(fields, "Forwarded", f"for={node};proto={scheme}" + (f';host="{host}"' if host else ""))
    if case.request_id is not None:
        fields = _set(fields, ID_HEADER, case.request_id)
    declared = any(n.lower() == "content-length" for n, _ in case.fields)
    fields = [(n, v) for n, v in fields if n.lower() not in ("content-length", "transfer-encoding")]
    if not case.known_length:
        fields.append(("Transfer-Encoding", "chunked"))
    elif case.body or declared or exchange.method in ("POST", "PUT", "PATCH"):
        fields.append(("Content-Length", str(len(case.body))))
    if case.upgrade:
        fields += [("Connection", "Upgrade"), ("Upgrade", case.upgrade)]
    return fields


# -- properties ---------------------------------------------------------------------------------------------------


@settings(deadline=None, max_examples=300)
@given(cases())
def test_serialized_head_reads_back_as_the_documented_request(case: Case) -> None:
    exchange = case.exchange
    target = exchange.path + ("?" + exchange.query if exchange.query else "")
    head, chunked = serialize_request(exchange, case.ref, case.upgrade, ID_HEADER)
    parsed = ParsedRequest()
    parser = httptools.HttpRequestParser(parsed)
    try:
        parser.feed_data(head)
    except httptools.HttpParserUpgrade as upgrade:
        assert case.upgrade and upgrade.args[0] == len(head)  # the tunnel starts right after the head
    assert parsed.head_done, f"llhttp did not see the end of the head in {head!r}"
    assert head.endswith(b"\r\n\r\n") and head.count(b"\r\n\r\n") == 1
    assert parser.get_method().decode() == exchange.method
    assert parsed.url.decode() == target
    assert parser.get_http_version() == "1.1"
    assert parsed.fields == expected_fields(case)
    assert chunked == (None if not case.body and case.known_length else not case.known_length)
    # The framing the head announces is the framing the forwarder then sends (`_send_body`'s encoding).
    if chunked:
        parser.feed_data(b"".join(chunk(case.body[i : i + 7]) for i in range(0, len(case.body), 7)) + LAST_CHUNK)
    elif chunked is not None:
        parser.feed_data(case.body)
    assert parsed.complete and parsed.body == case.body


_OUTSIDE_TARGET = st.one_of(
    st.sampled_from([" ", "\t", "\r", "\n", "\x00", "\x7f", "é", "\u2028"]),
    st.characters(max_codepoint=0x20),
    st.characters(min_codepoint=0x7F, max_codepoint=0x2FFF),
)


@settings(deadline=None, max_examples=200)
@given(s.paths, s.queries, _OUTSIDE_TARGET, st.data())
def test_a_target_that_cannot_be_sent_is_refused(path: str, query: str, bad: str, data: st.DataObject) -> None:
    """A filter-rewritten path or query holding a byte outside the request-target grammar is a 400, never sent."""
    in_query = bool(query) and data.draw(st.booleans())
    text = query if in_query else path
    at = data.draw(st.integers(1 if not in_query else 0, len(text)))
    text = text[:at] + bad + text[at:]
    exchange = Exchange("GET", path if in_query else text, text if in_query else query, Headers([("Host", "gw")]))
    ref = UpstreamRef("http", "http://up:80", Endpoint("up", 80, False), authority="up")
    with pytest.raises(BadRequest):
        serialize_request(exchange, ref, None)
