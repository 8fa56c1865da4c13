"""SCG Host= patterns: Ant-style labels, ports, IPv6 literals, case and trailing dots."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.routing.hostpattern import compile_host_pattern, parse_host
from gateway.routing.pathpattern import PatternError


def match(pattern: str, host: str) -> dict[str, str] | None:
    return compile_host_pattern(pattern).match(host)


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        # literal labels, case-insensitive on both sides
        ("api.example.org", "api.example.org", {}),
        ("api.example.org", "API.Example.ORG", {}),
        ("API.Example.org", "api.example.org", {}),
        ("api.example.org", "api.example.org.evil", None),
        ("api.example.org", "xapi.example.org", None),
        # * and ?: one label, or part of a label
        ("*.example.org", "a.example.org", {}),
        ("*.example.org", "example.org", None),
        ("*.example.org", "a.b.example.org", None),
        ("api-*.example.org", "api-eu.example.org", {}),
        ("api-*.example.org", "api-.example.org", {}),
        ("api?.example.org", "api1.example.org", {}),
        ("api?.example.org", "api.example.org", None),
        ("*", "localhost", {}),
        ("*", "a.b", None),
        # **: zero or more labels (AntPathMatcher counts zero, so the bare domain matches)
        ("**.example.org", "example.org", {}),
        ("**.example.org", "a.example.org", {}),
        ("**.example.org", "a.b.example.org", {}),
        ("**.example.org", "badexample.org", None),
        ("**.example.org", "example.org.evil", None),
        ("a.**.z", "a.z", {}),
        ("a.**.z", "a.b.c.z", {}),
        ("a.**.z", "a.zz", None),
        ("example.**", "example.org", {}),
        ("**", "anything.at.all", {}),
        # captures are lower-cased
        ("{sub}.example.org", "api.example.org", {"sub": "api"}),
        ("{sub}.example.org", "API.example.org", {"sub": "api"}),
        ("{sub}.example.org", "a.b.example.org", None),
        ("{sub}.example.org", "example.org", None),
        ("{sub}.{env}.example.org", "api.eu.example.org", {"sub": "api", "env": "eu"}),
        ("{sub:[a-z]+}.example.org", "api.example.org", {"sub": "api"}),
        ("{sub:[a-z]+}.example.org", "api1.example.org", None),
        ("{n:\\d{2}}.example.org", "42.example.org", {"n": "42"}),
        ("api-{region}.example.org", "api-eu.example.org", {"region": "eu"}),
        ("{app}-{env}.example.org", "my-app-prod.example.org", {"app": "my-app", "env": "prod"}),
        ("**.{tenant}.example.org", "x.y.acme.example.org", {"tenant": "acme"}),
        ("**.{tenant}.example.org", "acme.example.org", {"tenant": "acme"}),
    ],
)
def test_syntax(pattern: str, host: str, expected: dict[str, str] | None) -> None:
    assert match(pattern, host) == expected


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        # no port in the pattern: the host's port is ignored (SCG would not match these)
        ("**.example.org", "example.org:8080", {}),
        ("{sub}.example.org", "api.example.org:8080", {"sub": "api"}),
        ("api.example.org", "api.example.org:443", {}),
        ("api.example.org", "api.example.org:", {}),  # an empty port is no port
        ("api.example.org", "api.example.org:http", None),
        ("api.example.org", "api.example.org:80:80", None),
        # a port in the pattern must be present and equal
        ("api.example.org:8443", "api.example.org:8443", {}),
        ("api.example.org:8443", "api.example.org:08443", {}),
        ("api.example.org:8443", "api.example.org:443", None),
        ("api.example.org:8443", "api.example.org", None),
        ("{sub}.example.org:8443", "api.example.org:8443", {"sub": "api"}),
        ("{sub}.example.org:8443", "api.example.org:9443", None),
        ("{n:\\d+}.example.org:8443", "1.example.org:8443", {"n": "1"}),
    ],
)
def test_ports(pattern: str, host: str, expected: dict[str, str] | None) -> None:
    assert match(pattern, host) == expected


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("[::1]", "[::1]", {}),
        ("[::1]", "[::1]:8080", {}),
        ("[::1]:8080", "[::1]:8080", {}),
        ("[::1]:8080", "[::1]", None),
        ("[::1]:8080", "[::1]:80", None),
        ("[2001:DB8::1]", "[2001:db8::1]", {}),
        ("[2001:db8::1]", "[2001:DB8::1]:443", {}),
        ("[::1]", "::1", None),  # unbracketed IPv6 is not a valid Host value
        ("[::1]", "[::1", None),
        ("[::1]", "[::1]x", None),
        ("**.example.org", "[::1]:8080", None),
        ("**", "[::1]:8080", {}),
    ],
)
def test_ipv6_literals(pattern: str, host: str, expected: dict[str, str] | None) -> None:
    assert match(pattern, host) == expected


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("example.org", "example.org.", {}),
        ("example.org", "example.org.:8080", {}),
        ("example.org.", "example.org", {}),
        ("**.example.org", "a.example.org.", {}),
        ("{sub}.example.org", "api.example.org.", {"sub": "api"}),
        ("example.org", "example.org..", None),
        ("example.org", ".", None),
    ],
)
def test_trailing_dot_is_ignored(pattern: str, host: str, expected: dict[str, str] | None) -> None:
    assert match(pattern, host) == expected


@pytest.mark.parametrize(
    ("pattern", "exact"),
    [
        ("api.example.org", "api.example.org"),
        ("API.Example.ORG.", "api.example.org"),
        ("localhost", "localhost"),
        ("[::ABC]", "[::abc]"),
        ("api.example.org:8443", None),
        ("*.example.org", None),
        ("**.example.org", None),
        ("api?.example.org", None),
        ("{sub}.example.org", None),
    ],
)
def test_exact(pattern: str, exact: str | None) -> None:
    compiled = compile_host_pattern(pattern)
    assert compiled.exact() == exact
    if exact is not None:  # a route index looks it up with the name parse_host returns
        assert parse_host(exact.upper() + ":80") == (exact, 80)


@pytest.mark.parametrize(
    ("host", "parsed"),
    [
        ("Example.ORG", ("example.org", None)),
        ("example.org:8080", ("example.org", 8080)),
        ("example.org.:8080", ("example.org", 8080)),
        ("[::1]:8080", ("[::1]", 8080)),
        ("[::1]", ("[::1]", None)),
        ("", None),
        (":80", None),
        ("example.org:8o", None),
        ("example.org:\u00b2", None),  # a superscript digit is not a port
        ("a" * 300, None),  # longer than any DNS name
    ],
)
def test_parse_host(host: str, parsed: tuple[str, int | None] | None) -> None:
    assert parse_host(host) == parsed


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("", "it is empty"),
        ("api .example.org", "' ' is not allowed"),
        ("api.example.org/x", "'/' is not allowed"),
        ("user@example.org", "'@' is not allowed"),
        ("a..example.org", "label 2 is empty"),
        (".example.org", "label 1 is empty"),
        ("{sub.example.org", "unclosed '{' at position 0"),
        ("sub}.example.org", "unbalanced '}' at position 3"),
        ("{}.example.org", "empty variable name"),
        ("{a-b}.example.org", "invalid variable name 'a-b'"),
        ("{a}.{a}.org", "duplicate variable name 'a'"),
        ("{a:[}.org", "invalid regex for variable 'a'"),
        ("{a:(x)\\1}.org", "backreferences"),  # host regexes run on RE2 too
        ("{*rest}.org", "'{*rest}' is not supported"),
        ("a**.org", "'**' must be a whole label"),
        ("**.**.org", "'**.**' is redundant"),
        ("***.org", "'***' at position 0"),
        ("example.org:http", "':' may only introduce a numeric port"),
        ("example.org:0", "port 0 is out of range"),
        ("example.org:65536", "port 65536 is out of range"),
        ("[::1", "an IPv6 literal must be a plain '[address]'"),
        ("[::*]", "an IPv6 literal must be a plain '[address]'"),
    ],
)
def test_invalid_patterns(pattern: str, reason: str) -> None:
    with pytest.raises(PatternError) as info:
        compile_host_pattern(pattern)
    assert reason in str(info.value)
    assert repr(pattern) in str(info.value)


def test_value_semantics() -> None:
    a = compile_host_pattern("{sub}.example.org:8443")
    assert a == compile_host_pattern("{sub}.example.org:8443")
    assert a.port == 8443 and a.variables == ("sub",)
    assert "_regex" not in repr(a)


def test_long_labels_fail_without_backtracking_blowup() -> None:
    label = "a-" * 60
    assert match("{a}-{b}-{c}-{d}.x", f"{label}.y") is None
    assert match("**.a.**.b", ".".join(["a"] * 100) + ".c") is None


# --- properties -------------------------------------------------------------------------------------

_LABEL_CHARS = "abcxyz0189-"


@st.composite
def _pattern_and_host(draw: st.DrawFn) -> tuple[str, str]:
    """A random valid host pattern without port and a host it must match."""
    labels: list[tuple[str, str]] = []
    names = 0
    for n in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["lit", "star", "dstar", "var", "mixed"]))
        if kind == "dstar" and not (n and labels[-1][0] == "**"):
            hosts = draw(st.lists(st.text(_LABEL_CHARS, min_size=1, max_size=3), max_size=2))
            labels.append(("**", ".".join(hosts)))
            continue
        text = draw(st.text(_LABEL_CHARS, min_size=1, max_size=5))
        if kind == "star":
            labels.append(("*", text))
        elif kind in ("var", "mixed"):
            names += 1
            prefix = "api-" if kind == "mixed" else ""
            labels.append((f"{prefix}{{v{names}}}", prefix + text))
        else:
            labels.append((text, text))
    pattern = ".".join(p for p, _ in labels)
    host = ".".join(h for _, h in labels if h)
    return pattern, host or "x"


@settings(deadline=None, max_examples=300)
@given(_pattern_and_host(), st.sampled_from(["", ":8080", ".", ".:1"]), st.booleans())
def test_generated_hosts_match_case_port_and_dot_insensitively(case: tuple[str, str], suffix: str, upper: bool) -> None:
    pattern, host = case
    compiled = compile_host_pattern(pattern)
    expected = compiled.match(host)
    assert expected is not None, compiled
    assert set(expected) == set(compiled.variables)
    varied = (host.upper() if upper else host) + suffix
    assert compiled.match(varied) == expected
    exact = compiled.exact()
    assert exact is None or exact == host


_SYNTAX = st.text(alphabet="{}*?:.[]ab-\\/ 09", max_size=20)


@settings(deadline=None, max_examples=500)
@given(st.one_of(st.text(max_size=30), _SYNTAX))
def test_compile_raises_only_pattern_error(source: str) -> None:
    try:
        compiled = compile_host_pattern(source)
    except PatternError as exc:
        assert str(exc)
        return
    for host in ("a", "a.b:80", "[::1]", source):
        result = compiled.match(host)
        assert result is None or isinstance(result, dict)
