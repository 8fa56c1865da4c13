"""Properties of response parsing in the real upstream pool: a raw upstream answers with generated responses.

Valid responses (any status, fields, Content-Length or chunked with random chunk sizes, extensions and trailers,
close-delimited, HTTP/1.0, cut into random TCP segments) must reach the client with the same status, the same
end-to-end fields in order and the same body bytes. Invalid ones must never be passed on: a defect in the head
(or in the first chunk-size line, which arrives with it) is a 502 problem+json; a defect later in the body is an
aborted response. One gateway and one upstream serve every example of a test; each example is its own request
path, so an example that fails (or is shrunk) cannot hand its response to another.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conformance import strategies as s
from tests.conformance.client import (
    assert_only_own_hop_fields,
)
from tests.conformance.scripted import MARKER, ScriptedUpstream, assert_problem_502, exchange, head_bytes

#: Reused gateway and upstream across examples are intended here (see the module docstring).
PROPERTY = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
PHRASES = {code.value: code.phrase for code in HTTPStatus}
#: Generated end-to-end fields never use these: framing and hop-by-hop fields are the gateway's, and it writes
#: its own request id into every response.
RESERVED = s.HOP_BY_HOP | {"content-length", "x-request-id", "x-upstream-marker"}
end_to_end_fields = st.lists(
    st.tuples(s.field_names.filter(lambda n: n.lower() not in RESERVED), s.field_values()), max_size=12
)


def chunked_body(draw: st.DrawFn, body: bytes) -> bytes:
    """`body` in chunks of random sizes, hex in either case with optional leading zeros and extensions, then the
    last chunk with optional trailer fields (which the gateway drops)."""
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(body) - 1)), max_size=8)))) if body else []
    bounds = [0, *[c for c in cuts if c < len(body)], len(body)] if body else [0]
    out = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        size = draw(st.sampled_from(["%x", "%X", "%04x"])) % (b - a)
        extension = draw(st.sampled_from(["", ";ext", ';name="quoted value"', ";a=1;b=2"]))
        out.append(f"{size}{extension}\r\n".encode() + body[a:b] + b"\r\n")
    trailers = draw(st.lists(st.tuples(st.sampled_from(["X-Trailer", "Server-Timing"]), s.field_values()), max_size=2))
    out.append(b"0\r\n" + "".join(f"{n}: {v}\r\n" for n, v in trailers).encode("latin-1") + b"\r\n")
    return b"".join(out)


# -- valid responses ----------------------------------------------------------------------------------------------


@dataclass
class Valid:
    method: str
    status: int
    reason: str
    fields: list[tuple[str, str]]  # what the client must see, in order
    body: bytes
    framing: str  # length, chunked, close, none (HEAD, 204, 304)
    wire: bytes
    close: bool
    cuts: list[int]
    head_length: int | None  # the Content-Length a HEAD answer announced


@st.composite
def valid_responses(draw: st.DrawFn) -> Valid:
    framing = draw(st.sampled_from(["length", "chunked", "close", "none"]))
    method = "GET"
    if framing == "none":
        status = draw(st.sampled_from([204, 304, 200, 404]))
        method = "GET" if status in (204, 304) else "HEAD"
    else:
        status = draw(st.integers(200, 599).filter(lambda code: code not in (204, 205, 304)))
    standard = PHRASES.get(status, "")
    reason = draw(st.one_of(st.just(standard), st.from_regex(r"[A-Za-z][A-Za-z0-9 ]{0,20}[A-Za-z0-9]", fullmatch=True)))
    reason = reason or "Whatever"
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"])) if framing in ("length", "close") else "HTTP/1.1"
    fields = draw(end_to_end_fields)
    body = draw(st.binary(max_size=4000)) if framing in ("length", "chunked", "close") else b""
    wire_fields = list(fields)
    close = framing == "close" or version == "HTTP/1.0"
    # Hop-by-hop fields the gateway must remove: Connection-named ones included.
    if draw(st.booleans()):
        at = draw(st.integers(0, len(wire_fields)))
        wire_fields[at:at] = [("Connection", "X-Hop-Only"), ("X-Hop-Only", "for this hop"), ("Keep-Alive", "timeout=5")]
    if framing == "close" or draw(st.integers(0, 4)) == 0:
        close = True
        wire_fields.insert(draw(st.integers(0, len(wire_fields))), ("Connection", "close"))
    head_length = None
    if framing == "length" or (framing == "none" and method == "HEAD"):
        length = head_length = draw(st.integers(0, 10**6)) if method == "HEAD" else len(body)
        wire_fields.insert(draw(st.integers(0, len(wire_fields))), ("Content-Length", str(length)))
    if framing == "chunked":
        wire_fields.insert(draw(st.integers(0, len(wire_fields))), ("Transfer-Encoding", "chunked"))
    payload = chunked_body(draw, body) if framing == "chunked" else body
    interim = b""
    if version == "HTTP/1.1" and draw(st.integers(0, 4)) == 0:  # informational answers come first, and are dropped
        interim = draw(
            st.sampled_from([b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"])
        )
    wire = interim + head_bytes(f"{version} {status} {reason}", wire_fields) + payload
    cuts = draw(st.lists(st.integers(1, len(wire) - 1), max_size=6))
    return Valid(method, status, reason, fields, body, framing, wire, close, cuts, head_length)


@PROPERTY
@given(valid_responses())
async def test_valid_responses_reach_the_client_unchanged(
    scripted: tuple[ScriptedUpstream, int], response: Valid
) -> None:
    upstream, gw_port = scripted
    target = upstream.plan(response.wire, response.cuts, response.close)
    reply, complete = await exchange(gw_port, target, response.method)
    assert complete, f"aborted after {len(reply.body)} bytes"
    assert (reply.status, reply.head.reason) == (response.status, response.reason)
    own = ("content-length", "transfer-encoding", "connection", "x-request-id")
    assert [(n, v) for n, v in reply.head.fields if n.lower() not in own] == response.fields
    assert_only_own_hop_fields(reply.head)
    assert reply.body == response.body
    if response.framing == "length":
        assert reply.head.length == len(response.body) and not reply.head.chunked
    elif response.framing in ("chunked", "close"):
        assert reply.head.chunked  # an HTTP/1.1 client gets a body whose end it can tell
    elif response.method == "HEAD":
        assert reply.head.length == response.head_length  # kept, though no body follows


# -- invalid heads: 502 -------------------------------------------------------------------------------------------

MALFORMED_STATUS_LINES = [
    "HTTP/1.1 2000 OK",
    "HTTP/1.1 20 OK",
    "HTTP/2 200 OK",
    "HTTP/1.1  200 OK",
    "ICY 200 OK",
    "HTTP/1.1 OK",
    "HTTP/1.2 200 OK",
    "http/1.1 200 OK",
]


@st.composite
def broken_heads(draw: st.DrawFn) -> tuple[str, bytes, list[int]]:
    """(defect, the whole response, cut points that keep the end of the head with what follows it)."""
    fields = [MARKER, *draw(end_to_end_fields)]
    body = b"hello"
    status = "HTTP/1.1 200 OK"
    defect = draw(
        st.sampled_from(
            [
                "Content-Length with Transfer-Encoding",
                "differing Content-Length fields",
                "malformed Content-Length",
                "obs-fold continuation line",
                "control character in a value",
                "malformed field name",
                "bare LF line ending",
                "head over 64 KiB",
                "more than 200 fields",
                "malformed status line",
                "malformed first chunk size",
            ]
        )
    )
    payload = body
    at = draw(st.integers(0, len(fields)))
    if defect == "Content-Length with Transfer-Encoding":
        payload = b"5\r\nhello\r\n0\r\n\r\n"
        pair = [("Transfer-Encoding", "chunked"), ("Content-Length", draw(st.sampled_from(["5", str(len(payload))])))]
        fields[at:at] = pair if draw(st.booleans()) else pair[::-1]
    elif defect == "differing Content-Length fields":
        other = draw(st.integers(0, 100).filter(lambda n: n != 5))
        fields[at:at] = [("Content-Length", "5"), ("Content-Length", str(other))]
    elif defect == "malformed Content-Length":
        bad = draw(st.sampled_from(["5x", "+5", "-5", "5, 5", "0x5", "", "5 5", "99999999999999999999999"]))
        fields.insert(at, ("Content-Length", bad))
    elif defect == "obs-fold continuation line":
        name, value = fields[at - 1] if at else MARKER
        fields.insert(at, (name, value + "\r\n" + draw(st.sampled_from([" ", "\t", "   "])) + "folded"))
        fields.append(("Content-Length", "5"))
    elif defect == "control character in a value":
        value = draw(s.field_values())
        cut = draw(st.integers(0, len(value)))
        bad = draw(st.sampled_from(["\0", "\r", "\rX", "\x01", "\x1b", "\x7f"]))
        fields.insert(at, ("X-Bad", value[:cut] + bad + value[cut:]))
        fields.append(("Content-Length", "5"))
    elif defect == "malformed field name":
        fields.insert(at, (draw(st.sampled_from(["X A", "X-A ", "", "X\x01", "X(A)", "X\xe9", " X"])), "v"))
        fields.append(("Content-Length", "5"))
    elif defect == "head over 64 KiB":
        count = draw(st.integers(1, 60))
        size = 66 * 1024 // count + 1
        fields[at:at] = [(f"X-Big-{i}", "b" * size) for i in range(count)]
        fields.append(("Content-Length", "5"))
    elif defect == "more than 200 fields":
        fields[at:at] = [(f"X-Many-{i}", "m") for i in range(draw(st.integers(201, 400)))]
        fields.append(("Content-Length", "5"))
    elif defect == "malformed status line":
        status = draw(st.sampled_from(MALFORMED_STATUS_LINES))
        fields.append(("Content-Length", "5"))
    elif defect == "malformed first chunk size":
        fields.insert(at, ("Transfer-Encoding", "chunked"))
        line = draw(st.sampled_from(["zz", "0x5", "-5", " 5", "5 ", "", "1ffffffffffffffff", "5;\x00", "5;a=b c"]))
        payload = f"{line}\r\nhello\r\n0\r\n\r\n".encode("latin-1")
    wire = head_bytes(status, fields)
    if defect == "bare LF line ending":
        lines = [status, *(f"{n}: {v}" for n, v in [*fields, ("Content-Length", "5")])]
        bare = draw(st.integers(0, len(lines) - 1))  # any line of the head, the status line included
        wire = (
            "".join(line + ("\n" if i == bare else "\r\n") for i, line in enumerate(lines)).encode("latin-1") + b"\r\n"
        )
    head_end = wire.index(b"\r\n\r\n") if b"\r\n\r\n" in wire else len(wire)
    # The head (and the chunk-size line right after it) end in the last segment: a defect that arrives after a
    # head the gateway already sent on is the other property's business.
    cuts = draw(st.lists(st.integers(1, max(1, head_end - 1)), max_size=6))
    return defect, wire + payload, cuts


@PROPERTY
@given(broken_heads())
async def test_invalid_heads_are_a_502_problem(
    scripted: tuple[ScriptedUpstream, int], broken: tuple[str, bytes, list[int]]
) -> None:
    upstream, gw_port = scripted
    defect, wire, cuts = broken
    reply, complete = await exchange(gw_port, upstream.plan(wire, cuts, close=False))
    assert complete, defect
    assert_problem_502(reply)


# -- invalid bodies: aborted --------------------------------------------------------------------------------------


@st.composite
def broken_bodies(draw: st.DrawFn) -> tuple[str, bytes, int, bytes]:
    """(defect, the whole response, the cut after the valid part, the body bytes a client may have seen).

    A client may get the bytes of a broken chunk that preceded the defect: the response is aborted all the same."""
    fields = [*draw(end_to_end_fields), ("Transfer-Encoding", "chunked")]
    good = draw(st.binary(min_size=1, max_size=3000))
    defect = draw(
        st.sampled_from(
            [
                "malformed chunk size",
                "chunk longer than its size",
                "chunk data without CRLF",
                "obs-fold in the trailer",
                "NUL in the trailer",
            ]
        )
    )
    size = f"{len(good):x}\r\n".encode()
    valid_part = size + good + b"\r\n"
    seen = good
    if defect == "malformed chunk size":
        tail = draw(st.sampled_from([b"zz\r\nxx\r\n", b"-1\r\n", b"0x5\r\nhello\r\n", b" 5\r\nhello\r\n"]))
    elif defect == "chunk longer than its size":
        tail, seen = b"3\r\nhello\r\n0\r\n\r\n", good + b"hel"
    elif defect == "chunk data without CRLF":
        tail, seen = b"5\r\nhelloXX0\r\n\r\n", good + b"hello"
    elif defect == "obs-fold in the trailer":
        tail = b"0\r\nX-T: 1\r\n folded\r\n\r\n"
    else:
        tail = b"0\r\nX-T: a\0b\r\n\r\n"
    head = head_bytes("HTTP/1.1 200 OK", fields)
    return defect, head + valid_part + tail, len(head) + len(valid_part), seen


@PROPERTY
@given(broken_bodies())
async def test_invalid_bodies_never_look_complete(
    scripted: tuple[ScriptedUpstream, int], broken: tuple[str, bytes, int, bytes]
) -> None:
    upstream, gw_port = scripted
    defect, wire, cut, seen = broken
    # The defect arrives in a later segment than the head and the valid chunk: the head may be on its way.
    reply, complete = await exchange(gw_port, upstream.plan(wire, [cut], close=False))
    if reply.status == 502:
        assert_problem_502(reply)
        return
    assert reply.status == 200
    assert not complete, f"{defect}: the client got a complete-looking response"
    assert seen.startswith(reply.body)


# -- found by the property above: sequences on one pooled connection --------------------------------------------


@pytest.mark.parametrize("interim", [b"", b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\n\r\n"])
async def test_the_connection_stays_in_step_after_a_head_answer(
    interim: bytes, scripted: tuple[ScriptedUpstream, int]
) -> None:
    """A HEAD answer announces a body that never follows, so the parser must not carry its state into the next
    response on the same (pooled) upstream connection, interim 1xx answers before it or not."""
    upstream, gw_port = scripted
    head = interim + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    reply, complete = await exchange(gw_port, upstream.plan(head, [], close=False), "HEAD")
    assert (reply.status, reply.head.length, complete) == (200, 2, True)
    after = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter"
    reply, complete = await exchange(gw_port, upstream.plan(after, [], close=False))
    assert (reply.status, reply.body, complete) == (200, b"after", True)
