"""Properties of `gateway.headers.Headers`: nothing that could split a message gets in; everything else round-trips.

Every header a filter writes goes through `add`/`set` (or the constructor); a CR, LF or NUL in a value, or a name
that is not an RFC 9110 token, would let request data forge a field or a second message (docs/routes.md).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import HeaderInjection
from gateway.headers import Headers
from tests.conformance import strategies as s

SPLITTERS = st.sampled_from(["\r", "\n", "\0", "\r\n", "\r\nX-Injected: 1", "\n\n", "\0\r\n"])
#: Characters that are not tchar: separators, whitespace, controls, non-ASCII.
NON_TOKEN = st.one_of(
    st.sampled_from(list(' "(),/:;<=>?@[\\]{}\t\r\n\0\x7f') + ["é", "\u2028"]),
    st.characters(max_codepoint=0x20),
    st.characters(min_codepoint=0x7F, max_codepoint=0x10FF),
)
existing = st.lists(st.tuples(s.field_names, s.field_values()), max_size=6)


@st.composite
def spliced(draw: st.DrawFn, text: st.SearchStrategy[str], bad: st.SearchStrategy[str]) -> str:
    """A string from `text` with a `bad` piece inserted somewhere."""
    value = draw(text)
    at = draw(st.integers(0, len(value)))
    return value[:at] + draw(bad) + value[at:]


def snapshot(headers: Headers) -> list[tuple[str, str]]:
    return list(headers.items())


@settings(deadline=None, max_examples=200)
@given(existing, s.field_names, spliced(s.field_values(), SPLITTERS), st.sampled_from(["add", "set"]))
def test_a_value_with_cr_lf_or_nul_is_refused(
    fields: list[tuple[str, str]], name: str, value: str, method: str
) -> None:
    headers = Headers(fields)
    before = snapshot(headers)
    with pytest.raises(HeaderInjection):
        getattr(headers, method)(name, value)
    with pytest.raises(HeaderInjection):
        Headers([*fields, (name, value)])
    assert snapshot(headers) == before  # a refused write changes nothing


@settings(deadline=None, max_examples=200)
@given(existing, spliced(s.tokens | st.just(""), NON_TOKEN) | st.just(""), s.field_values())
def test_a_name_that_is_not_a_token_is_refused(fields: list[tuple[str, str]], name: str, value: str) -> None:
    headers = Headers(fields)
    before = snapshot(headers)
    for method in (headers.add, headers.set):
        with pytest.raises(HeaderInjection):
            method(name, value)
    with pytest.raises(HeaderInjection):
        Headers([(name, value)])
    assert snapshot(headers) == before


@settings(deadline=None, max_examples=200)
@given(existing, st.lists(st.tuples(s.field_names, s.field_values()), min_size=1, max_size=8))
def test_valid_fields_round_trip_in_order(fields: list[tuple[str, str]], added: list[tuple[str, str]]) -> None:
    headers = Headers(fields)
    for name, value in added:
        headers.add(name, value)
    everything = [*fields, *added]
    assert snapshot(headers) == everything  # names keep their case, values every byte, in order
    for name in {n.lower() for n, _ in everything}:
        assert headers.get_all(name.upper()) == [v for n, v in everything if n.lower() == name]
        assert name in headers and name.upper() in headers


@settings(deadline=None, max_examples=200)
@given(existing, s.field_names, s.field_values())
def test_set_leaves_one_field_at_the_first_ones_place(fields: list[tuple[str, str]], name: str, value: str) -> None:
    headers = Headers(fields)
    headers.set(name, value)
    key = name.lower()
    at = next((i for i, (n, _) in enumerate(fields) if n.lower() == key), len(fields))
    others = [(n, v) for n, v in fields if n.lower() != key]
    assert headers.get_all(name) == [value]
    assert snapshot(headers) == [*others[:at], (name, value), *others[at:]]


CONTROLS = "".join(chr(c) for c in [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])


@settings(deadline=None, max_examples=200)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters=CONTROLS), max_size=40))
def test_any_text_value_is_sent_as_its_bytes(text: str) -> None:
    """Latin-1 text is held as those octets; text beyond latin-1 is held as its UTF-8 octets, never an error."""
    headers = Headers()
    headers.add("X-Text", text)
    held = headers.get("x-text")
    assert held is not None
    expected = text.encode("latin-1") if all(ord(c) < 256 for c in text) else text.encode("utf-8")
    assert held.encode("latin-1") == expected


@settings(deadline=None, max_examples=100)
@given(st.text(max_size=10), st.sampled_from(CONTROLS), st.text(max_size=10))
def test_a_control_character_other_than_tab_is_refused(before: str, control: str, after: str) -> None:
    """RFC 9110 §5.5: CR/LF/NUL would split a field; the other controls make strict upstreams answer 400."""
    with pytest.raises(HeaderInjection):
        Headers().add("X-Text", before + control + after)
    assert Headers([("X-Tab", "a\tb")]).get("x-tab") == "a\tb"
