"""Response framing the gateway must refuse whole, though llhttp reads it: each rule with the RFC text it rests on.

A raw upstream (tests/conformance/scripted.py) sends the response; the client must get a 502 problem+json and
none of the upstream's fields.
"""

from __future__ import annotations

import pytest

from tests.conformance.scripted import MARKER, ScriptedUpstream, assert_problem_502, exchange, head_bytes


@pytest.mark.parametrize(
    "status_line", ["HTTP/1.1 000 Too Low", "HTTP/1.1 042 Too Low", "HTTP/1.1 099 Too Low", "HTTP/0.9 200 OK"]
)
async def test_an_invalid_status_line_is_a_502_problem(
    status_line: str, scripted: tuple[ScriptedUpstream, int]
) -> None:
    """llhttp reads any three digits as a status code and accepts version 0.9. RFC 9110 §15: codes are 100-599
    (a client may treat an unknown x00 like its class, but there is no class below 1); HTTP/0.9 has no status
    line at all. Passed on, `042` becomes the invalid status line `HTTP/1.1 42 ...`."""
    upstream, gw_port = scripted
    wire = head_bytes(status_line, [MARKER, ("Content-Length", "5")]) + b"hello"
    reply, complete = await exchange(gw_port, upstream.plan(wire, [], close=False))
    assert complete
    assert_problem_502(reply)


#: Transfer codings the gateway cannot undo: a chunked coding applied to gzip-coded bytes passed on without its
#: Transfer-Encoding hands the client gzip bytes as if they were the content. Only exactly one `chunked` is
#: framing every party agrees on (the edge applies the same rule to requests, gateway/server/request.py).
UNDECODABLE = {
    "gzip, chunked": (["gzip, chunked"], b"5\r\nhello\r\n0\r\n\r\n"),
    "deflate, chunked": (["deflate, chunked"], b"5\r\nhello\r\n0\r\n\r\n"),
    "chunked, chunked in one field": (["chunked, chunked"], b"5\r\nhello\r\n0\r\n\r\n"),
    "chunked in two fields": (["chunked", "chunked"], b"5\r\nhello\r\n0\r\n\r\n"),
    "gzip, close-delimited": (["gzip"], b"hello"),
    "chunked, gzip, close-delimited": (["chunked, gzip"], b"hello"),
}


@pytest.mark.parametrize("case", list(UNDECODABLE))
async def test_a_transfer_coding_other_than_one_chunked_is_a_502_problem(
    case: str, scripted: tuple[ScriptedUpstream, int]
) -> None:
    codings, payload = UNDECODABLE[case]
    upstream, gw_port = scripted
    wire = head_bytes("HTTP/1.1 200 OK", [MARKER, *(("Transfer-Encoding", c) for c in codings)]) + payload
    reply, _ = await exchange(gw_port, upstream.plan(wire, [], close=True))
    assert_problem_502(reply)


async def test_transfer_encoding_in_an_http_1_0_response_is_a_502_problem(
    scripted: tuple[ScriptedUpstream, int],
) -> None:
    """RFC 9112 §6.1: a recipient of an HTTP/1.0 message with Transfer-Encoding MUST treat its framing as faulty
    (the edge refuses the same in requests)."""
    upstream, gw_port = scripted
    wire = head_bytes("HTTP/1.0 200 OK", [MARKER, ("Transfer-Encoding", "chunked")]) + b"5\r\nhello\r\n0\r\n\r\n"
    reply, _ = await exchange(gw_port, upstream.plan(wire, [], close=True))
    assert_problem_502(reply)
