"""Route path patterns with Spring ``PathPattern`` semantics, as used by SCG's ``Path=`` predicate.

Patterns are matched segment-wise ("/" separates segments) and case-sensitively against the gateway's
canonical path (see ``gateway.routing.canonical``): it starts with "/", is still percent-encoded, has no
dot segments and no query. A ``%2F`` inside a segment is data, never a separator.

* literal text is compared with the *encoded* path, so write it the way the canonical path spells it:
  unreserved characters decoded (``~``, not ``%7E``), every other escape in upper-case hex (``%20``);
* ``?`` matches exactly one character of the encoded segment;
* ``*`` matches zero or more characters within one segment. A segment that is only ``*`` needs at least
  one character, except as the last segment (as in Spring: ``/a/*`` matches ``/a/`` and ``/a/x``, but not
  ``/a``, and ``/*/b`` does not match ``//b``);
* ``**`` matches zero or more whole segments and must be the last segment: ``/a/**`` matches ``/a``,
  ``/a/`` and ``/a/b/c``;
* ``{name}`` captures one or more characters within one segment;
* ``{name:regex}`` captures the part of one segment that the regex matches fully. The regex is Java syntax
  run on RE2 (``gateway.regex``), so it takes linear time on any path; a construct RE2 cannot run
  (backreferences, lookaround) is refused at compile time. It sees the encoded segment, like literals do
  (Spring shows it the decoded one), so ``%2F`` cannot smuggle a "/" past it; a regex such as ``\\d{2}``
  may contain balanced braces;
* ``{*name}`` captures the remaining segments, leading "/" included ("" when there are none), and must be
  the last segment: ``/files/{*path}`` gives ``path="/a/b"`` for ``/files/a/b``.

Captured values are percent-decoded (UTF-8, strict; a value that does not decode is returned as is).
Several variable parts in one segment split it the way Spring's greedy regexes do: ``{name}.{ext}``
on ``a.tar.gz`` gives ``name="a.tar"``, ``ext="gz"``. Path parameters (``;a=b``) are ordinary text here.
Matching takes linear time: the regexes built here from wildcards and captures are linear by
construction (see ``_SegmentBuilder``), and a segment holding a ``{name:regex}`` is matched on RE2.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import unquote

from gateway.regex import Regex, RegexError, compile_regex

__all__ = ["PathPattern", "PatternError", "compile_path_pattern"]

_Captures = tuple[tuple[str, str], ...]  # (regex group, variable name)
_Decode = Callable[[str], str]
_Result = dict[str, str] | None


class PatternError(ValueError):
    """Raised by the compile functions; ``str()`` is a human-readable reason naming the offending part."""


class _Item(NamedTuple):
    """One token of a segment. kind: lit, one (?), star (*), dstar (**), var ({x}, {x:re}), rest ({*x})."""

    kind: str
    text: str = ""  # the literal text, or the variable name
    regex: str | None = None


@dataclass(frozen=True, slots=True)
class _Check:
    """A segment matched by a second regex: it has a user regex, or several variable-length parts.

    A segment with a user regex is matched on RE2 (`user`); one with only wildcards and captures by a regex
    built here over the reversed text (`reversed_`, see `_SegmentBuilder._reversed`). Exactly one is set.
    """

    group: str  # the outer-regex group holding the whole segment
    captures: _Captures
    reversed_: re.Pattern[str] | None = None
    user: Regex | None = None

    def groups(self, text: str) -> dict[str, str] | None:
        """The check's groups (by regex group name) if the whole segment `text` matches, else None."""
        if self.user is not None:
            return self.user.groups(text)  # anchored at both ends, so this is a full match
        assert self.reversed_ is not None
        m = self.reversed_.fullmatch(text[::-1])
        return None if m is None else {g: v[::-1] for g, v in m.groupdict().items() if v is not None}


def _tokenize(text: str, sep: str, start: int = 0) -> list[list[_Item]]:
    """Split ``text[start:]`` at ``sep`` (outside braces) into segments of items; positions index ``text``."""
    # One token per match: a literal run, a run of stars, or any single other character.
    scanner = re.compile(rf"[^{re.escape(sep + '{}*?')}]+|\*+|.", re.DOTALL)
    segments: list[list[_Item]] = [[]]
    i = start
    while i < len(text):
        if text[i] == "{":
            item, i = _read_variable(text, i)
            segments[-1].append(item)
            continue
        m = scanner.match(text, i)
        assert m is not None  # the last alternative matches any character
        token, i = m.group(), m.end()
        if token == sep:
            segments.append([])
        elif token == "}":
            raise PatternError(f"unbalanced '}}' at position {m.start()}")
        elif token == "?":
            segments[-1].append(_Item("one"))
        elif token[0] == "*":
            if len(token) > 2:
                raise PatternError(f"{token!r} at position {m.start()}: use '*' or '**'")
            segments[-1].append(_Item("star" if len(token) == 1 else "dstar"))
        else:
            segments[-1].append(_Item("lit", token))
    return segments


def _read_variable(text: str, start: int) -> tuple[_Item, int]:
    """Parse ``{name}``, ``{name:regex}`` or ``{*name}`` at ``text[start]``; return it and the next index."""
    rest = text.startswith("*", start + 1)
    i = j = start + 2 if rest else start + 1
    while j < len(text) and text[j] not in ":}":
        if text[j] == "{":
            raise PatternError(f"nested '{{' at position {j}")
        j += 1
    if j >= len(text):
        raise PatternError(f"unclosed '{{' at position {start}")
    name = text[i:j]
    if not name:
        raise PatternError(f"empty variable name at position {start}")
    if not name.isidentifier():
        raise PatternError(f"invalid variable name {name!r} at position {start}")
    if text[j] == "}":
        return _Item("rest" if rest else "var", name), j + 1
    if rest:
        raise PatternError(f"'{{*{name}}}' cannot have a regex")
    end = _regex_end(text, j + 1, start)
    regex = text[j + 1 : end]
    if not regex:
        raise PatternError(f"empty regex for variable {name!r}")
    _compile_re2(regex, f"invalid regex for variable {name!r}")
    return _Item("var", name, regex), end + 1


def _regex_end(text: str, i: int, start: int) -> int:
    """Index of the brace closing the variable at ``start``; the regex may nest braces and escape them."""
    depth = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise PatternError(f"unclosed '{{' at position {start}")


def _compile_re2(text: str, context: str) -> Regex:
    """A user regex (or a segment holding one) on RE2; anything RE2 refuses is a PatternError saying why."""
    try:
        return compile_regex(text)
    except RegexError as exc:
        raise PatternError(f"{context}: {exc}") from None


_OWN_GROUP = re.compile(r"g[0-9]+")  # the names `_SegmentBuilder.group` gives; RE2 would let a user reuse them


def _check_group_names(items: Sequence[_Item], context: str) -> None:
    for item in items:
        if item.regex is not None:
            taken = sorted(n for n in compile_regex(item.regex).group_names if _OWN_GROUP.fullmatch(n))
            if taken:
                raise PatternError(f"{context}: group names such as {taken[0]!r} are reserved")


def _variable_names(segments: Sequence[Sequence[_Item]]) -> tuple[str, ...]:
    names = tuple(it.text for items in segments for it in items if it.kind in ("var", "rest"))
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise PatternError(f"duplicate variable name {name!r}")
        seen.add(name)
    return names


class _SegmentBuilder:
    """Translates segments to regex text, collecting captures and checks; shared with host patterns."""

    def __init__(self, sep: str) -> None:
        self.cls = f"[^{re.escape(sep)}]"  # never crosses a separator, which keeps backtracking linear
        self.captures: list[tuple[str, str]] = []
        self.checks: list[_Check] = []
        self._groups = 0

    def group(self) -> str:
        self._groups += 1
        return f"g{self._groups}"

    def segment(self, items: Sequence[_Item], *, star_min: int) -> str:
        """Regex text for one segment of the outer regex; ``star_min`` is the minimum for a lone ``*``."""
        if [it.kind for it in items] == ["star"]:
            return self.cls + ("+" if star_min else "*")
        # One variable-length part has a single way to fit the segment; two or more could make a
        # backtracking regex polynomial, so such segments (and user regexes) get a separate check.
        if sum(it.kind in ("star", "var") for it in items) > 1 or any(it.regex for it in items):
            return self._checked(items)
        return self._forwards(items, self.captures)

    def _forwards(self, items: Sequence[_Item], captures: list[tuple[str, str]]) -> str:
        return "".join(self._forward(it, captures) for it in items)

    def _forward(self, item: _Item, captures: list[tuple[str, str]]) -> str:
        if item.kind == "lit":
            return re.escape(item.text)
        if item.kind in ("one", "star"):
            return self.cls + ("*" if item.kind == "star" else "")
        group = self.group()
        captures.append((group, item.text))
        return f"(?P<{group}>{self.cls}+)" if item.regex is None else f"(?P<{group}>(?:{item.regex}))"

    def _checked(self, items: Sequence[_Item]) -> str:
        captures: list[tuple[str, str]] = []
        if any(it.regex for it in items):
            # SECURITY: user regexes see request data, so they run on RE2 (linear time), anchored at both ends.
            text = rf"\A(?:{self._forwards(items, captures)})\z"
            context = "cannot combine the segment with variables " + ", ".join(name for _, name in captures)
            _check_group_names(items, context)
            user = _compile_re2(text, context)
            check = _Check(self.group(), tuple(captures), user=user)
        else:
            # Only escaped literals and our own linear-by-construction gaps: the standard engine is safe here.
            reversed_ = re.compile(self._reversed(items, captures))
            check = _Check(self.group(), tuple(captures), reversed_=reversed_)
        self.checks.append(check)
        group = check.group
        return f"(?P<{group}>{self.cls}{'+' if len(items) == 1 else '*'})"  # a lone {x:re} is non-empty

    def _reversed(self, items: Sequence[_Item], captures: list[tuple[str, str]]) -> str:
        """Regex over the reversed segment that splits it like greedy backtracking would, in linear time.

        A greedy matcher places each fixed run (literals and ``?``) as far right as the rest allows. Read
        backwards that is the *earliest* fit of each run, which a lazy gap in an atomic group finds without
        ever being revisited; the last gap then takes whatever is left before the first run.
        """
        runs: list[str] = [""]
        gaps: list[_Item] = []
        for item in reversed(items):
            if item.kind in ("star", "var"):
                gaps.append(item)
                runs.append("")
            else:
                runs[-1] += self.cls if item.kind == "one" else re.escape(item.text[::-1])
        parts = [runs[0]]
        for n, gap in enumerate(gaps):
            last = n == len(gaps) - 1
            quantifier = ("+" if gap.kind == "var" else "*") + ("" if last else "?")
            body = self.cls + quantifier
            if gap.kind == "var":
                group = self.group()
                captures.append((group, gap.text))
                body = f"(?P<{group}>{body})"
            parts.append(body + runs[n + 1] if last else f"(?>{body}{runs[n + 1]})")
        captures.reverse()  # so that variables come out in pattern order
        return "".join(parts)


def _collect(m: re.Match[str], captures: _Captures, checks: Sequence[_Check], decode: _Decode) -> _Result:
    """Variables of a successful outer match, or None if a checked segment does not match."""
    values = {name: decode(m.group(group)) for group, name in captures}
    for check in checks:
        groups = check.groups(m.group(check.group))
        if groups is None:
            return None
        for group, name in check.captures:
            values[name] = decode(groups[group])
    return values


def _decode(value: str) -> str:
    if "%" not in value:
        return value
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        return value


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A compiled path pattern: build it with :func:`compile_path_pattern`, then :meth:`match` many paths."""

    source: str
    match_trailing_slash: bool
    variables: tuple[str, ...]  # variable names in pattern order
    _regex: re.Pattern[str] = field(repr=False, compare=False)
    _captures: _Captures = field(repr=False, compare=False)
    _checks: tuple[_Check, ...] = field(repr=False, compare=False)
    _prefix: str = field(repr=False, compare=False)

    def match(self, path: str) -> dict[str, str] | None:
        """Match a canonical path: the decoded variables (``{}`` if none), or None if it does not match."""
        m = self._regex.fullmatch(path)
        if m is None:
            return None
        if self._checks:
            return _collect(m, self._captures, self._checks, _decode)
        values: dict[str, str] = {}  # the common case, inlined: this runs for every route tried
        for group, name in self._captures:
            values[name] = _decode(m.group(group))
        return values

    def literal_prefix(self) -> str:
        """The leading whole literal segments, e.g. ``/api/v1`` for ``/api/v1/{x}/**`` and ``/`` for ``/{x}``.

        Every path the pattern matches equals this prefix, starts with it followed by "/", or the prefix is
        "/". Empty segments end the prefix, so it never ends with "/" unless it is "/".
        """
        return self._prefix


def compile_path_pattern(source: str, *, match_trailing_slash: bool = True) -> PathPattern:
    """Compile a Spring path pattern; raise :class:`PatternError` if it is invalid.

    With ``match_trailing_slash`` (SCG's default) a pattern that does not end in "/" also matches the
    path with one trailing "/" after a non-empty last segment: ``/red/{seg}`` matches ``/red/blue/``.
    """
    try:
        return _compile(source, match_trailing_slash)
    except PatternError as exc:
        raise PatternError(f"invalid path pattern {source!r}: {exc}") from None


def _compile(source: str, match_trailing_slash: bool) -> PathPattern:
    if not source.startswith("/"):
        raise PatternError("it must start with '/'")
    segments = _tokenize(source, "/", 1)
    variables = _variable_names(segments)
    builder = _SegmentBuilder("/")
    parts: list[str] = []
    for index, items in enumerate(segments):
        last = index == len(segments) - 1
        tail = next((it for it in items if it.kind in ("dstar", "rest")), None)
        if tail is not None:
            shown = "'**'" if tail.kind == "dstar" else f"'{{*{tail.text}}}'"
            if len(items) != 1:
                raise PatternError(f"{shown} must be a whole segment")
            if not last:
                raise PatternError(f"{shown} must be the last segment")
            parts.append(_tail(tail, builder))
        else:
            parts.append("/" + builder.segment(items, star_min=0 if last else 1))
    if match_trailing_slash and segments[-1] and segments[-1][0].kind not in ("dstar", "rest"):
        # As in Spring, only after a non-empty last segment: the look-behind is needed (and costs a little)
        # only where the segment's own regex can match nothing.
        parts.append("/?" if _never_empty(segments[-1]) else "(?:(?<=[^/])/)?")
    regex = re.compile("".join(parts), re.DOTALL)
    captures, checks = tuple(builder.captures), tuple(builder.checks)
    return PathPattern(source, match_trailing_slash, variables, regex, captures, checks, _prefix(segments))


def _never_empty(items: Sequence[_Item]) -> bool:
    if len(items) == 1 and items[0].regex is not None:
        return True  # a lone {name:regex} is matched by `[^/]+`
    return any(it.kind in ("lit", "one") or (it.kind == "var" and it.regex is None) for it in items)


def _tail(item: _Item, builder: _SegmentBuilder) -> str:
    """``**`` or ``{*name}``: zero or more segments, including the "/" that introduces them."""
    if item.kind == "dstar":
        return "(?:/.*)?"
    group = builder.group()
    builder.captures.append((group, item.text))
    return f"(?P<{group}>(?:/.*)?)"


def _prefix(segments: Sequence[Sequence[_Item]]) -> str:
    literals: list[str] = []
    for items in segments:
        if len(items) != 1 or items[0].kind != "lit":
            break
        literals.append(items[0].text)
    return "/" + "/".join(literals)
