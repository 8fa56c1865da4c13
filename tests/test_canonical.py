"""The one canonical path (gateway.routing.canonical): RFC 3986 normalisation of the still-encoded path.

Pure-function tests plus hypothesis properties: idempotence, equivalent spellings agree, and arbitrary input
can only ever be refused with BadRequest (never another exception).
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.errors import BadRequest
from gateway.routing.canonical import PATH_FLAGS, CanonicalPath, canonicalize

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
# Characters allowed in a path besides the unreserved ones (sub-delims, ":", "@"); "%" and "/" are structural.
PCHAR_EXTRA = "!$&'()*+,;=:@"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/a/b/c", "/a/b/c"),
        ("/a/./b", "/a/b"),
        ("/a/b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/.", "/a/"),
        ("/.", "/"),
        ("/a/b/../../c", "/c"),
        ("/anything/../get", "/get"),
        ("/anything/%2e%2e/get", "/get"),
        ("/anything/%2E%2E/get", "/get"),
        ("/anything/.%2e/get", "/get"),
        ("/a/%2e/b", "/a/b"),
        ("/a/...", "/a/..."),
        ("/a/..b/c", "/a/..b/c"),
    ],
)
def test_dot_segments_are_resolved(raw: str, expected: str) -> None:
    assert canonicalize(raw).path == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/%41", "/A"),
        ("/%7E", "/~"),
        ("/%7e", "/~"),
        ("/%61%62%63", "/abc"),
        ("/a%2Db%5Fc%2E", "/a-b_c."),
        ("/%30%39", "/09"),
    ],
)
def test_unreserved_escapes_are_decoded(raw: str, expected: str) -> None:
    result = canonicalize(raw)
    assert result.path == expected
    assert result.escapes == frozenset()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/a%20b", "/a%20b"),
        ("/a%3fb", "/a%3Fb"),
        ("/%c3%a9", "/%C3%A9"),
        ("/%25", "/%25"),
        ("/%25%34%31", "/%2541"),
        ("/a%3Bb", "/a%3Bb"),
    ],
)
def test_other_escapes_are_upper_cased_and_kept(raw: str, expected: str) -> None:
    result = canonicalize(raw)
    assert result.path == expected
    assert result.escapes == frozenset()


@pytest.mark.parametrize(
    ("raw", "path", "escapes"),
    [
        ("/a%2fb", "/a%2Fb", {"%2F"}),
        ("/a%2Fb", "/a%2Fb", {"%2F"}),
        ("/a%5cb", "/a%5Cb", {"%5C"}),
        ("/admin%00", "/admin%00", {"%00"}),
        ("/%2f%5C%00", "/%2F%5C%00", {"%2F", "%5C", "%00"}),
    ],
)
def test_flagged_escapes_are_reported(raw: str, path: str, escapes: set[str]) -> None:
    result = canonicalize(raw)
    assert result == CanonicalPath(path, frozenset(escapes))


def test_encoded_slash_is_data_not_a_separator() -> None:
    # "%2F.." must not become a dot segment that climbs out of /a.
    assert canonicalize("/a/b%2F..%2Fc").path == "/a/b%2F..%2Fc"


@pytest.mark.parametrize("raw", ["/%zz", "/a%4", "/a%", "/%g0", "/%0g", "/a%%41", "/%-1"])
def test_malformed_escapes_are_refused(raw: str) -> None:
    with pytest.raises(BadRequest):
        canonicalize(raw)


@pytest.mark.parametrize("raw", ["/a\\b", "\\", "/a/..\\admin", "/\\\\evil"])
def test_raw_backslash_is_refused(raw: str) -> None:
    with pytest.raises(BadRequest):
        canonicalize(raw)


@pytest.mark.parametrize("raw", ["/..", "/../x", "/a/../../x", "/%2e%2e/x", "/a/%2E%2E/%2e%2e/x", "/./../x"])
def test_climbing_above_the_root_is_refused(raw: str) -> None:
    with pytest.raises(BadRequest):
        canonicalize(raw)


DOT_PARAMS = ["/public/..;/admin", "/a/.;/b", "/a/..;x=1/b", "/public/%2e%2e;/admin", "/a/%2E;/b"]


@pytest.mark.parametrize("raw", DOT_PARAMS)
def test_dot_segments_with_parameters_are_refused(raw: str) -> None:
    with pytest.raises(BadRequest):
        canonicalize(raw)


def test_a_flagged_escape_removed_by_a_dot_segment_is_still_reported() -> None:
    # Conservative: the client did send an encoded slash, so the route still decides whether that is allowed.
    assert canonicalize("/%2F/../x") == CanonicalPath("/x", frozenset({"%2F"}))


def test_path_parameters_on_ordinary_segments_are_data() -> None:
    assert canonicalize("/a;b=1/c").path == "/a;b=1/c"


@pytest.mark.parametrize(
    ("raw", "merged", "unmerged"),
    [
        ("//admin/x", "/admin/x", "//admin/x"),
        ("/a//b", "/a/b", "/a//b"),
        ("/a///b/", "/a/b/", "/a///b/"),
        ("/a//", "/a/", "/a//"),
        ("//", "/", "//"),
    ],
)
def test_merge_slashes_on_and_off(raw: str, merged: str, unmerged: str) -> None:
    assert canonicalize(raw).path == merged
    assert canonicalize(raw, merge_slashes=True).path == merged
    assert canonicalize(raw, merge_slashes=False).path == unmerged


@pytest.mark.parametrize("raw", ["/a/", "/a/b/", "/a/%41/", "/x/./y/"])
def test_trailing_slash_is_kept(raw: str) -> None:
    assert canonicalize(raw).path.endswith("/")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/{x}", "/%7Bx%7D"),
        ("/a|b", "/a%7Cb"),
        ("/a^b", "/a%5Eb"),
        ('/a"b', "/a%22b"),
        ("/<script>", "/%3Cscript%3E"),
        ("/a`b", "/a%60b"),
    ],
)
def test_unsafe_characters_are_escaped(raw: str, expected: str) -> None:
    assert canonicalize(raw).path == expected


NOT_PATHS = [
    "",
    "a/b",
    "*",
    "http://evil.example/x",
    "/a b",
    "/a\tb",
    "/a\x00b",
    "/a\rb",
    "/a\nb",
    "/é",
    "/a#b",
    "/a?b",
]


@pytest.mark.parametrize("raw", NOT_PATHS)
def test_characters_that_cannot_be_in_a_path_are_refused(raw: str) -> None:
    with pytest.raises(BadRequest):
        canonicalize(raw)


# -- properties ----------------------------------------------------------------------------------------------

PATH_ALPHABET = UNRESERVED + PCHAR_EXTRA + '/%\\"<>^`{|} #?\x00\r\né'
hex_escape = st.builds(lambda n, up: f"%{n:02X}" if up else f"%{n:02x}", st.integers(0, 255), st.booleans())
path_piece = st.one_of(
    st.sampled_from([".", "..", "/", "//", "/./", "/../", ";", "..;", "%2e", "%2E%2e", "%2F", "%5c", "%00"]),
    hex_escape,
    st.text(alphabet=PATH_ALPHABET, max_size=4),
)
slash_paths = st.lists(path_piece, max_size=12).map(lambda parts: "/" + "".join(parts))


def _outcome(raw: str, merge_slashes: bool = True) -> CanonicalPath | None:
    """The canonical form, or None when the path is refused."""
    try:
        return canonicalize(raw, merge_slashes=merge_slashes)
    except BadRequest:
        return None


@settings(deadline=None, max_examples=400)
@given(slash_paths, st.booleans())
@example("/a/b/..", True)
@example("/.//", False)
@example("//..//a", False)
@example("/%7b%2e%7D", True)
def test_canonicalisation_is_idempotent(raw: str, merge_slashes: bool) -> None:
    first = _outcome(raw, merge_slashes)
    if first is None:
        return
    second = canonicalize(first.path, merge_slashes=merge_slashes)
    assert second.path == first.path
    # `escapes` describes the request as sent; a dot segment may remove a flagged escape from the result.
    assert second.escapes == {e for e in PATH_FLAGS if e in first.path} <= first.escapes


@settings(deadline=None, max_examples=400)
@given(st.text(max_size=40).map(lambda s: "/" + s), st.booleans())
def test_arbitrary_text_is_only_ever_refused_with_bad_request(raw: str, merge_slashes: bool) -> None:
    try:
        result = canonicalize(raw, merge_slashes=merge_slashes)
    except BadRequest:
        return
    assert result.path.startswith("/")
    assert result.path.isascii()


@settings(deadline=None, max_examples=400)
@given(slash_paths, st.booleans())
def test_structured_paths_are_only_ever_refused_with_bad_request(raw: str, merge_slashes: bool) -> None:
    try:
        result = canonicalize(raw, merge_slashes=merge_slashes)
    except BadRequest:
        return
    assert result.path.startswith("/")
    assert not set(result.path) & set(' \\\x00\r\n#?é{}|^"<>`')


segment_text = st.text(alphabet=UNRESERVED, min_size=1, max_size=6)
plain_segment = segment_text.filter(lambda s: s.strip(".") != "")
segments = st.lists(segment_text, min_size=1, max_size=5)


def _escape(char: str, upper: bool) -> str:
    return f"%{ord(char):02X}" if upper else f"%{ord(char):02x}"


@settings(deadline=None, max_examples=400)
@given(segments, st.data())
def test_equivalent_spellings_canonicalise_alike(parts: list[str], data: st.DataObject) -> None:
    plain = "/" + "/".join(parts)
    spelled = ""
    for char in plain:
        if char != "/" and data.draw(st.booleans(), label=f"escape {char!r}"):
            spelled += _escape(char, data.draw(st.booleans(), label="upper-case hex"))
        else:
            spelled += char
    assert _outcome(spelled) == _outcome(plain)


@settings(deadline=None, max_examples=200)
@given(st.lists(plain_segment, min_size=1, max_size=5), st.integers(0, 255), st.booleans())
def test_escape_hex_case_does_not_matter(parts: list[str], byte: int, upper_first: bool) -> None:
    lower, upper = f"%{byte:02x}", f"%{byte:02X}"
    prefix = "/" + "/".join(parts) + "/"
    assert _outcome(prefix + lower) == _outcome(prefix + upper)
    result = _outcome(prefix + (upper if upper_first else lower))
    assert result is not None  # no single escaped byte makes a path invalid
    assert lower not in result.path or lower == upper
