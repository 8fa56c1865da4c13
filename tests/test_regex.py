"""gateway/regex.py: SCG's Java syntax on RE2 — what is accepted, refused with a reason, and how replacements read."""

from __future__ import annotations

import asyncio

import pytest

from gateway.regex import RegexError, Replacement, compile_regex


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?=x)a", "backtracking"),
        ("(?<=x)a", "backtracking"),
        ("(a)\\1", "backtracking"),
        ("a*+", "backtracking"),
        ("[a-z&&[^b]]", "class intersection"),
        ("\\p{Alpha}+", "[[:alpha:]]"),
        ("a\\Z", "\\Z"),
        ("(", "missing )"),
    ],
)
def test_refused_patterns_say_why(pattern: str, reason: str) -> None:
    with pytest.raises(RegexError, match=None) as caught:
        compile_regex(pattern)
    assert reason in str(caught.value)


def test_java_named_groups_and_full_match_semantics() -> None:
    regex = compile_regex("/red/?(?<segment>.*)")
    assert regex.group_names == {"segment"}
    assert compile_regex("\\d+").fullmatch("123") and not compile_regex("\\d+").fullmatch("123a")
    assert compile_regex("\\d+").search("a123")


@pytest.mark.parametrize(
    ("replacement", "expected"),
    [("/$\\{segment}", "/blue"), ("/${segment}", "/blue"), ("/$1", "/blue"), ("\\$1", "$1"), ("$12", "blue2")],
)
def test_java_replacements(replacement: str, expected: str) -> None:
    regex = compile_regex("/red/?(?<segment>.*)")
    assert regex.sub(Replacement(replacement, regex), "/red/blue") == expected


@pytest.mark.parametrize(("replacement", "reason"), [("${nope}", "nope"), ("$2", "group 2"), ("cost $", "lone")])
def test_replacements_referring_to_nothing_are_refused(replacement: str, reason: str) -> None:
    regex = compile_regex("(?<a>x)")
    with pytest.raises(RegexError) as caught:
        Replacement(replacement, regex)
    assert reason in str(caught.value)


async def test_catastrophic_patterns_run_in_linear_time() -> None:
    # (a+)+$ against 'aaaa…b' takes exponential time on a backtracking engine; RE2 answers at once.
    hostile = "a" * 100_000 + "b"
    patterns = [compile_regex(p) for p in ("(a+)+$", "(a|aa)+c", "(.*a){12}x")]

    def run() -> list[bool]:
        return [p.fullmatch(hostile) for p in patterns]

    results = await asyncio.wait_for(asyncio.to_thread(run), timeout=10)  # a guard against a hang, not a benchmark
    assert results == [False, False, False]


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [("$", "a,b", "a,b-"), ("x*", "abc", "-a-b-c-"), ("\\b", "ab cd", "-ab- -cd-"), ("a", "banana", "b-n-n-")],
)
def test_sub_follows_java_replace_all_on_empty_matches(pattern: str, text: str, expected: str) -> None:
    regex = compile_regex(pattern)
    assert regex.sub(Replacement("-", regex), text) == expected


def test_sub_stops_once_the_result_outgrows_the_limit() -> None:
    regex = compile_regex(".")
    big = Replacement("x" * 4096, regex)
    assert regex.sub(big, "a" * 65536, 16384) is None
    assert regex.sub(big, "ab", 16384) == "x" * 8192
