"""Hypothesis strategies for HTTP/1.1 elements, built from the RFC 9110/9112 grammars rather than from our code."""

from __future__ import annotations

import string

from hypothesis import strategies as st

from tests.conformance import client

TCHAR = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits
UNRESERVED = string.ascii_letters + string.digits + "-._~"
SUB_DELIMS = "!$&'()*+,;="
PCHAR = UNRESERVED + SUB_DELIMS + ":@"
#: field-vchar (VCHAR / obs-text), plus SP and HTAB, which may appear inside a field value but not at its ends.
VCHAR = "".join(chr(c) for c in range(0x21, 0x7F)) + "".join(chr(c) for c in range(0x80, 0x100))
#: The RFC 9110 §7.6.1 hop-by-hop set, written out once for the tests (independent of the gateway's own).
HOP_BY_HOP = client.HOP_BY_HOP

tokens = st.text(alphabet=TCHAR, min_size=1, max_size=24)
#: Names a sender would use: common ones (any case) mixed with arbitrary tokens.
field_names = st.one_of(
    tokens,
    st.sampled_from(["Accept", "Content-Type", "Cookie", "Set-Cookie", "Cache-Control", "ETag", "Vary", "X-A"]),
    st.sampled_from(["accept", "CONTENT-TYPE", "x-a"]),
)


@st.composite
def field_values(draw: st.DrawFn, max_size: int = 60) -> str:
    """An RFC 9110 field-value: VCHAR/obs-text runs separated by SP or HTAB, no whitespace at either end."""
    words = draw(st.lists(st.text(alphabet=VCHAR, min_size=1, max_size=12), max_size=max(1, max_size // 12)))
    separators = draw(st.lists(st.sampled_from([" ", "\t", "  "]), min_size=len(words), max_size=len(words)))
    return "".join(w + s for w, s in zip(words, separators, strict=True)).rstrip(" \t")


def escaped(text: str) -> str:
    return "".join(c if c in PCHAR else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


segments = st.text(alphabet=PCHAR + "%", max_size=12).map(lambda s: s.replace("%", "%25"))
paths = st.lists(segments, min_size=1, max_size=6).map(lambda parts: "/" + "/".join(parts))
queries = st.one_of(st.just(""), st.text(alphabet=PCHAR + "/?", max_size=40))
methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "REPORT"])
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.sampled_from(["::1", "2001:db8::7", "fe80::1:2", "::ffff:10.0.0.1"])
host_names = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9]{0,6}){0,3}", fullmatch=True)
ports = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))
authorities = st.one_of(
    st.tuples(host_names, ports).map("".join),
    st.tuples(ipv4, ports).map("".join),
    st.tuples(ipv6, ports).map(lambda t: f"[{t[0]}]{t[1]}"),
)
