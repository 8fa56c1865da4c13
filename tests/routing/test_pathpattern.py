"""Spring PathPattern semantics: syntax elements, trailing slash, decoding, errors and properties."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.routing.pathpattern import PathPattern, PatternError, compile_path_pattern


def match(pattern: str, path: str, *, trailing: bool = True) -> dict[str, str] | None:
    return compile_path_pattern(pattern, match_trailing_slash=trailing).match(path)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # literals: whole segments, case-sensitive, compared with the encoded path
        ("/a/b", "/a/b", {}),
        ("/a/b", "/a/bc", None),
        ("/a/b", "/A/b", None),
        ("/a/b", "/a", None),
        ("/a%20b", "/a%20b", {}),
        ("/a b", "/a%20b", None),
        ("/", "/", {}),
        ("/", "/a", None),
        ("/a//b", "/a//b", {}),
        # ?: exactly one character within a segment
        ("/t?st", "/test", {}),
        ("/t?st", "/tst", None),
        ("/t?st", "/t/st", None),
        # *: within one segment
        ("/img/*.png", "/img/a.png", {}),
        ("/img/*.png", "/img/.png", {}),
        ("/img/*.png", "/img/a/b.png", None),
        ("/a/*", "/a/x", {}),
        ("/a/*", "/a/", {}),
        ("/a/*", "/a", None),
        ("/a/*", "/a/x/y", None),
        ("/a/*", "/a//", None),
        ("/*/b", "/x/b", {}),
        ("/*/b", "//b", None),
        ("/a/*", "/a/b%2Fc", {}),
        # **: zero or more segments, last only
        ("/a/**", "/a", {}),
        ("/a/**", "/a/", {}),
        ("/a/**", "/a/b/c", {}),
        ("/a/**", "/ab", None),
        ("/**", "/", {}),
        ("/**", "/x/y/", {}),
        # {name}: one segment's text, non-empty; %2F is data, not a separator
        ("/u/{id}", "/u/42", {"id": "42"}),
        ("/u/{id}", "/u/", None),
        ("/u/{id}", "/u/4/2", None),
        ("/u/{id}", "/u/b%2Fc", {"id": "b/c"}),
        # {name:regex}: the regex must match the (encoded) segment text fully
        ("/u/{id:\\d+}", "/u/42", {"id": "42"}),
        ("/u/{id:\\d+}", "/u/42x", None),
        ("/u/{id:\\d*}", "/u/", None),
        ("/d/{y:\\d{4}}-{m:\\d{2}}", "/d/2024-05", {"y": "2024", "m": "05"}),
        ("/d/{y:\\d{4}}-{m:\\d{2}}", "/d/24-05", None),
        ("/s/{s:[a-z]+}", "/s/a%20b", None),
        ("/s/{s:[a-z%0-9A-F]+}", "/s/a%20b", {"s": "a b"}),
        ("/c/{v:a|b}", "/c/ab", None),
        # {*name}: the rest, with its leading "/"
        ("/files/{*path}", "/files/a/b", {"path": "/a/b"}),
        ("/files/{*path}", "/files", {"path": ""}),
        ("/files/{*path}", "/files/", {"path": "/"}),
        ("/files/{*path}", "/filesx", None),
        ("/{*path}", "/", {"path": "/"}),
        # literals, wildcards and captures mixed in one segment
        ("/img/{name}.png", "/img/cat.png", {"name": "cat"}),
        ("/img/{name}.png", "/img/.png", None),
        ("/v{version}/x", "/v2/x", {"version": "2"}),
        ("/v{version}/x", "/v/x", None),
        ("/img/{name}.{ext}", "/img/a.tar.gz", {"name": "a.tar", "ext": "gz"}),
        ("/f/*-{id}", "/f/a-b-c", {"id": "c"}),
        ("/f/{id}-*", "/f/a-b-c", {"id": "a-b"}),
        ("/f/{a}{b}", "/f/xyz", {"a": "xy", "b": "z"}),
        ("/f/{a}{b}", "/f/x", None),
        ("/f/{a}-{b:\\d+}-{c}", "/f/p-q-12-r-s", {"a": "p-q", "b": "12", "c": "r-s"}),
        ("/f/{a}?{b}", "/f/xyz", {"a": "x", "b": "z"}),
        ("/f/x*y*z", "/f/xaybz", {}),
        ("/f/x*y*z", "/f/xz", None),
    ],
)
def test_syntax(pattern: str, path: str, expected: dict[str, str] | None) -> None:
    assert match(pattern, path) == expected


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ("a%20b", "a b"),
        ("caf%C3%A9", "café"),
        ("%E2%82%AC", "€"),
        ("a+b", "a+b"),
        ("%FF", "%FF"),  # not UTF-8: returned undecoded
        ("%C3", "%C3"),
        ("100%25", "100%"),
    ],
)
def test_captures_are_percent_decoded(value: str, decoded: str) -> None:
    assert match("/x/{v}", f"/x/{value}") == {"v": decoded}
    assert match("/x/{*v}", f"/x/{value}/{value}") == {"v": f"/{decoded}/{decoded}"}


@pytest.mark.parametrize(
    ("pattern", "path", "on", "off"),
    [
        ("/red/{seg}", "/red/blue/", {"seg": "blue"}, None),
        ("/red/blue", "/red/blue/", {}, None),
        ("/img/{n}.png", "/img/a.png/", {"n": "a"}, None),
        ("/a/*", "/a/x/", {}, None),
        ("/a/*", "/a//", None, None),  # Spring: only after a non-empty last segment
        ("/a/{x}.{y}", "/a/b.c/", {"x": "b", "y": "c"}, None),
        ("/red/blue", "/red/blue//", None, None),
        ("/red/blue/", "/red/blue/", {}, {}),
        ("/red/blue/", "/red/blue", None, None),
        ("/a/**", "/a/b/", {}, {}),
        ("/a/{*rest}", "/a/b/", {"rest": "/b/"}, {"rest": "/b/"}),
    ],
)
def test_trailing_slash(pattern: str, path: str, on: dict[str, str] | None, off: dict[str, str] | None) -> None:
    assert match(pattern, path, trailing=True) == on
    assert match(pattern, path, trailing=False) == off


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("/api/v1/{x}/**", "/api/v1"),
        ("/{x}", "/"),
        ("/**", "/"),
        ("/", "/"),
        ("/api/img{n}.png", "/api"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b"),
        ("/a/b*", "/a"),
        ("/a/t?st/c", "/a"),
        ("/a//b", "/a"),
        ("/files/{*path}", "/files"),
    ],
)
def test_literal_prefix(pattern: str, prefix: str) -> None:
    assert compile_path_pattern(pattern).literal_prefix() == prefix


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("", "must start with '/'"),
        ("api/**", "must start with '/'"),
        ("/a/**/b", "'**' must be the last segment"),
        ("/a/x**", "'**' must be a whole segment"),
        ("/a/***", "'***' at position 3"),
        ("/{*rest}/b", "'{*rest}' must be the last segment"),
        ("/x{*rest}", "'{*rest}' must be a whole segment"),
        ("/{*rest:.*}", "'{*rest}' cannot have a regex"),
        ("/a/{id", "unclosed '{' at position 3"),
        ("/a/{id:\\d+", "unclosed '{' at position 3"),
        ("/a/id}", "unbalanced '}' at position 5"),
        ("/a/{a{b}}", "nested '{' at position 5"),
        ("/a/{}", "empty variable name at position 3"),
        ("/a/{:x}", "empty variable name"),
        ("/a/{1st}", "invalid variable name '1st'"),
        ("/a/{my-id}", "invalid variable name 'my-id'"),
        ("/{id}/{id}", "duplicate variable name 'id'"),
        ("/{id}/{*id}", "duplicate variable name 'id'"),
        ("/a/{id:}", "empty regex for variable 'id'"),
        ("/a/{id:[a-}", "invalid regex for variable 'id'"),
        ("/a/{id:(}", "invalid regex for variable 'id'"),
        ("/a/{n:(?P<g1>x)}", "cannot combine the segment"),
    ],
)
def test_invalid_patterns(pattern: str, reason: str) -> None:
    with pytest.raises(PatternError) as info:
        compile_path_pattern(pattern)
    assert reason in str(info.value)
    assert repr(pattern) in str(info.value)


def test_value_semantics() -> None:
    a, b = compile_path_pattern("/a/{x}"), compile_path_pattern("/a/{x}")
    assert a == b and hash(a) == hash(b)
    assert a != compile_path_pattern("/a/{x}", match_trailing_slash=False)
    assert a.variables == ("x",)
    assert compile_path_pattern("/{a}/{b:\\d}.{c}/{*d}").variables == ("a", "b", "c", "d")
    assert "_regex" not in repr(a)
    assert isinstance(a, PathPattern)


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        # Inputs that make naive backtracking regexes polynomial; these must simply fail (pytest-timeout
        # would catch a hang), with no timing assertion.
        ("/{a}/{b}/{c}/x", "/" + "/".join(["a" * 5000] * 3) + "/y"),
        ("/*a*a*a*a*b", "/" + "a" * 20000),
        ("/{a}a{b}a{c}a{d}b/x", "/" + "a" * 20000 + "b/y"),
        ("/{a}.{b}.{c}.{d}/x", "/" + "a." * 10000 + "/y"),
        ("/x/**", "/y" * 20000),
    ],
)
def test_adversarial_paths_fail(pattern: str, path: str) -> None:
    assert match(pattern, path) is None


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        # Catastrophic for a backtracking engine; user regexes run on RE2, so these simply fail.
        ("/x/{v:(a+)+b}", "/x/" + "a" * 100000 + "c"),
        ("/x/{v:(a|aa)+}-{w}", "/x/" + "a" * 100000 + "c"),
        ("/x/{v:(a|a?)+}{w:(a+)+}!", "/x/" + "a" * 100000 + "?"),
        ("/{a:(x+x+)+y}/{b}", "/" + "x" * 100000 + "/b"),
    ],
)
def test_user_regexes_run_in_linear_time(pattern: str, path: str) -> None:
    assert match(pattern, path) is None


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("/a/{v:(a)\\1}", "backreferences"),
        ("/a/{v:(?=x)x}", "lookaround"),
        ("/a/{v:x*+}", "possessive"),
        ("/a/{v:(?>x)}", "atomic"),
        ("/a/{v:x}-{w:(?<g2>y)}", "group names such as 'g2' are reserved"),
    ],
)
def test_regexes_re2_cannot_run_are_refused(pattern: str, reason: str) -> None:
    with pytest.raises(PatternError, match="invalid path pattern") as info:
        compile_path_pattern(pattern)
    assert reason in str(info.value)


def test_java_named_groups_inside_a_variable_regex() -> None:
    assert match("/v/{ver:(?<major>\\d+)\\.(?<minor>\\d+)}", "/v/2.10") == {"ver": "2.10"}
    assert match("/v/{ver:(?<major>\\d+)\\.(?<minor>\\d+)}-{tag}", "/v/2.10-rc1") == {"ver": "2.10", "tag": "rc1"}


# --- properties -------------------------------------------------------------------------------------

# Characters a canonical path segment may contain, as single units (an escape counts as one unit here).
_PATH_UNITS = st.sampled_from([*"abxyzAZ09-._~!$&'()*+,;=:@", "%20", "%2F", "%C3%A9", "%FF"])
_PATTERN_LITERAL = st.text(alphabet="abxyz09-._~!$&'()+,;=:@", min_size=1, max_size=4)
# (regex, values it matches fully): regexes for `{name:regex}` with a way to produce matching text.
_REGEXES: list[tuple[str, st.SearchStrategy[str]]] = [
    ("\\d+", st.text(alphabet="0123456789", min_size=1, max_size=4)),
    ("[a-z]{2,3}", st.text(alphabet="abcxyz", min_size=2, max_size=3)),
    ("x|yy", st.sampled_from(["x", "yy"])),
    ("[^/]+", st.text(alphabet="ab%20", min_size=1, max_size=4)),
]


def _units(min_size: int) -> st.SearchStrategy[str]:
    return st.lists(_PATH_UNITS, min_size=min_size, max_size=4).map("".join)


@st.composite
def _segment(draw: st.DrawFn, names: list[str], last: bool) -> tuple[str, str]:
    """One pattern segment and a path segment it matches."""
    drawn = draw(st.lists(st.sampled_from(["lit", "one", "star", "var", "regex"]), max_size=4))
    # two adjacent stars would spell "**", which means something else
    kinds = [k for n, k in enumerate(drawn) if not (k == "star" and n and drawn[n - 1] == "star")]
    pattern, text = "", ""
    for kind in kinds:
        if kind == "lit":
            literal = draw(_PATTERN_LITERAL)
            pattern, text = pattern + literal, text + literal
        elif kind == "one":
            pattern, text = pattern + "?", text + draw(st.sampled_from("ab~!"))
        elif kind == "star":
            # a lone "*" needs a character unless it is the last segment
            pattern, text = pattern + "*", text + draw(_units(0 if last or len(kinds) > 1 else 1))
        else:
            names.append(f"v{len(names)}")
            regex, values = _REGEXES[draw(st.integers(0, len(_REGEXES) - 1))]
            pattern += f"{{{names[-1]}}}" if kind == "var" else f"{{{names[-1]}:{regex}}}"
            text += draw(_units(1) if kind == "var" else values)
    return pattern, text


@st.composite
def _pattern_and_path(draw: st.DrawFn) -> tuple[str, str, bool]:
    """A random valid pattern, a path it must match and the trailing-slash option."""
    names: list[str] = []
    count = draw(st.integers(1, 4))
    tail = draw(st.sampled_from(["", "/**", "/{*rest}"]))
    pairs = [draw(_segment(names, n == count - 1 and not tail)) for n in range(count)]
    pattern = "/" + "/".join(p for p, _ in pairs)
    path = "/" + "/".join(t for _, t in pairs)
    trailing = draw(st.booleans())
    if tail:
        pattern += tail
        path += "".join("/" + draw(_units(0)) for _ in range(draw(st.integers(0, 3))))
    elif trailing and pairs[-1][1] and pairs[-1][0] and draw(st.booleans()):
        path += "/"
    return pattern, path, trailing


@settings(deadline=None, max_examples=400)
@given(_pattern_and_path())
def test_generated_paths_match_and_have_the_literal_prefix(case: tuple[str, str, bool]) -> None:
    pattern, path, trailing = case
    compiled = compile_path_pattern(pattern, match_trailing_slash=trailing)
    assert compiled.match(path) is not None, compiled
    prefix = compiled.literal_prefix()
    assert prefix == "/" or path == prefix or path.startswith(prefix + "/")


@settings(deadline=None, max_examples=300)
@given(_pattern_and_path(), st.text(alphabet="/ab*.", max_size=12))
def test_literal_prefix_holds_for_any_matching_path(case: tuple[str, str, bool], path: str) -> None:
    compiled = compile_path_pattern(case[0], match_trailing_slash=case[2])
    if compiled.match("/" + path) is not None:
        prefix = compiled.literal_prefix()
        assert prefix == "/" or "/" + path == prefix or ("/" + path).startswith(prefix + "/")


# Literal separators never produced by quote(value, safe=""), so a substituted path splits one way only.
_SEPARATORS = st.text(alphabet="!$&'()+,;=:@", min_size=1, max_size=3)
_VALUES = st.text(st.characters(codec="utf-8"), min_size=1, max_size=6)


@settings(deadline=None, max_examples=300)
@given(st.data())
def test_substituted_values_round_trip(data: st.DataObject) -> None:
    pattern, path = "", ""
    expected: dict[str, str] = {}
    for n in range(data.draw(st.integers(1, 4))):
        pattern, path = pattern + "/", path + "/"
        for k in range(data.draw(st.integers(1, 3))):
            if k:  # a literal between two captures of one segment
                separator = data.draw(_SEPARATORS)
                pattern, path = pattern + separator, path + separator
            name, value = f"v{n}_{k}", data.draw(_VALUES)
            regex = data.draw(st.sampled_from(["", ":[A-Za-z0-9%._~-]+"]))
            pattern, path = pattern + f"{{{name}{regex}}}", path + quote(value, safe="")
            expected[name] = value
    if data.draw(st.booleans()):
        rest = data.draw(st.lists(_VALUES, max_size=3))
        pattern += "/{*rest}"
        path += "".join("/" + quote(v, safe="") for v in rest)
        expected["rest"] = "".join("/" + v for v in rest)
    assert compile_path_pattern(pattern).match(path) == expected


_SYNTAX = st.text(alphabet="/{}*?:\\ab.()[]+^$|-0", max_size=20)


@settings(deadline=None, max_examples=500)
@given(st.one_of(st.text(max_size=30), _SYNTAX, _SYNTAX.map(lambda s: "/" + s)))
def test_compile_raises_only_pattern_error(source: str) -> None:
    try:
        compiled = compile_path_pattern(source)
    except PatternError as exc:
        assert str(exc)
        return
    for path in ("/", "/a", "/a/b.c/", "/%FF/x" + source):
        result = compiled.match(path)
        assert result is None or isinstance(result, dict)


@st.composite
def _glob_segment(draw: st.DrawFn) -> tuple[str, str]:
    """A segment of literals, ?, * and captures, and the backtracking regex Spring would build for it."""
    pattern, regex = "", ""
    for n, kind in enumerate(draw(st.lists(st.sampled_from(["lit", "one", "star", "var"]), max_size=5))):
        if kind == "lit":
            literal = draw(st.text(alphabet="ab.", min_size=1, max_size=2))
            pattern, regex = pattern + literal, regex + re.escape(literal)
        elif kind == "one":
            pattern, regex = pattern + "?", regex + "[^/]"
        elif kind == "star" and not pattern.endswith("*"):
            pattern, regex = pattern + "*", regex + "[^/]*"
        elif kind == "var":
            pattern, regex = pattern + f"{{v{n}}}", regex + f"(?P<v{n}>[^/]+)"
    return pattern, ("[^/]+" if pattern == "*" else regex)


@settings(deadline=None, max_examples=500)
@given(_glob_segment(), st.text(alphabet="ab.", max_size=8))
def test_segments_split_like_greedy_backtracking(segment: tuple[str, str], text: str) -> None:
    pattern, regex = segment
    expected = re.fullmatch(f"/{regex}/end", f"/{text}/end")
    compiled = compile_path_pattern(f"/{pattern}/end", match_trailing_slash=False)
    assert compiled.match(f"/{text}/end") == (None if expected is None else expected.groupdict())
