"""Regular expressions from config, in SCG's (Java) syntax, run on RE2: linear time, whatever the input.

Every regex that sees request data (Header, Query, Cookie, RewritePath, RewriteResponseHeader, ...) comes from
here, so a route's pattern can never stall a worker on hostile input (Envoy made the same choice). RE2 has no
backtracking features; a pattern that needs one (backreferences, lookaround, possessive or atomic groups) is
refused at load with the reason, instead of running slowly later.

Java replacement strings are translated too: `$1`, `${name}` and SCG's YAML-friendly `$\\{name}` refer to groups,
`\\$` is a literal dollar.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, overload

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors are reported to the user with a location, not logged by the C++ library
# Java's named group `(?<name>` is also RE2's; `(?P<name>` (Python's) is accepted as well.
_REPLACEMENT_REF = re.compile(r"\\(.)|\$\\?\{([A-Za-z][A-Za-z0-9]*)\}|\$(\d+)|\$")


class RegexError(ValueError):
    """A pattern or replacement the engine cannot run; str() is the reason for the user."""


_BACKTRACKING = "lookaround, backreferences, possessive and atomic groups need backtracking, which RE2 refuses"
# Java constructs RE2 reads differently or not at all, with the spelling to use instead.
_JAVA_ONLY = (
    (
        re.compile(r"\\p\{(Lower|Upper|ASCII|Alpha|Digit|Alnum|Punct|Graph|Print|Blank|Cntrl|XDigit|Space)\}"),
        "Java's POSIX class {0}: write [[:{1}:]]",
    ),
    (re.compile(r"\\[ZRhH]"), "Java's {0} has no RE2 equivalent: use \\z, \\n or an explicit class"),
)


def _java_only(source: str) -> str | None:
    """The reason a Java pattern would mean something else (or nothing) on RE2, or None."""
    for finder, message in _JAVA_ONLY:
        found = finder.search(source)
        if found:
            name = found.group(1) if found.groups() else found.group(0)
            return message.format(found.group(0), name.lower())
    if _has_class_intersection(source):
        return "Java's class intersection ([a-z&&[^b]]) is not RE2 syntax: list the characters instead"
    return None


def _has_class_intersection(source: str) -> bool:
    depth, i = 0, 0
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
        elif depth and source.startswith("&&", i):
            return True
        i += 1
    return False


_NEEDS_BACKTRACKING = re.compile(r"perl operator|bad repetition operator|invalid escape sequence: \\\d", re.I)


def _why(message: str) -> str:
    # Only RE2's errors for lookaround, backreferences and possessive/atomic forms get the backtracking hint.
    return f"{message} ({_BACKTRACKING})" if _NEEDS_BACKTRACKING.search(message) else message


class Regex:
    """A compiled pattern; `fullmatch` is Java's `matches()`, `search` is `find()`, `sub` is `replaceAll()`."""

    __slots__ = ("source", "_compiled")

    def __init__(self, source: str) -> None:
        self.source = source
        refused = _java_only(source)
        if refused is not None:
            raise RegexError(refused)
        try:
            self._compiled: Any = re2.compile(source, _OPTIONS)
        except re2.error as exc:
            text = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            raise RegexError(_why(text)) from exc

    @property
    def group_names(self) -> frozenset[str]:
        """Names of the pattern's named groups."""
        return frozenset(self._compiled.groupindex)

    @property
    def group_count(self) -> int:
        """Number of capturing groups, named ones included."""
        return int(self._compiled.groups)

    def fullmatch(self, text: str) -> bool:
        """True when the whole of `text` matches (Java's `matches()`)."""
        return self._compiled.fullmatch(text) is not None

    def search(self, text: str) -> bool:
        """True when the pattern matches somewhere in `text` (Java's `find()`)."""
        return self._compiled.search(text) is not None

    def groups(self, text: str) -> dict[str, str] | None:
        """Named groups of the first match anywhere in `text` (None when there is none)."""
        match = self._compiled.search(text)
        if match is None:
            return None
        return {k: v for k, v in match.groupdict().items() if v is not None}

    @overload
    def sub(self, replacement: Replacement, text: str) -> str: ...

    @overload
    def sub(self, replacement: Replacement, text: str, limit: int) -> str | None: ...

    def sub(self, replacement: Replacement, text: str, limit: int | None = None) -> str | None:
        """Every match replaced, as Java's replaceAll; None once the result would exceed `limit` characters.

        Our own loop over RE2's search: an empty match is replaced once (the bindings' iterator replaced one at
        the end of the text twice), and with a limit the work stops as soon as the output outgrows it, whatever
        the pattern (`.` with a 4 KB replacement on a 64 KB value would otherwise build 256 MB first).
        """
        out: list[str] = []
        size, pos, end_of_text = 0, 0, len(text)
        while pos <= end_of_text:
            match = self._compiled.search(text, pos)
            if match is None:
                break
            start, stop = match.span()
            piece = text[pos:start] + replacement.expand(match)
            if stop == start:  # an empty match: keep the next character and move past it, as Java does
                piece += text[stop : stop + 1]
                stop += 1
            size += len(piece)
            if limit is not None and size > limit:
                return None
            out.append(piece)
            pos = stop
        out.append(text[pos:])
        result = "".join(out)
        return None if limit is not None and len(result) > limit else result

    def __repr__(self) -> str:
        return f"Regex({self.source!r})"


class Replacement:
    """A Java replacement string, parsed once into literal parts and group references."""

    __slots__ = ("source", "_parts")

    def __init__(self, source: str, regex: Regex) -> None:
        self.source = source
        self._parts: list[str | int | tuple[str]] = _parse_replacement(source, regex)

    def expand(self, match: Any) -> str:
        """The replacement text for one match (a group that did not take part contributes "")."""
        out = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
            else:
                value = match.group(part if isinstance(part, int) else part[0])
                out.append(value or "")
        return "".join(out)


def _parse_replacement(source: str, regex: Regex) -> list[str | int | tuple[str]]:
    parts: list[str | int | tuple[str]] = []
    last = 0
    for ref in _REPLACEMENT_REF.finditer(source):
        if ref.start() > last:
            parts.append(source[last : ref.start()])
        last = ref.end()
        escaped, name, number = ref.group(1), ref.group(2), ref.group(3)
        if escaped is not None:
            parts.append(escaped)
        elif name is not None:
            if name not in regex.group_names:
                raise RegexError(f"the replacement refers to group {name!r}, which the pattern does not define")
            parts.append((name,))
        elif number is not None:
            group, rest = _java_group_number(number, regex.group_count)
            parts.append(group)
            if rest:
                parts.append(rest)
        else:
            raise RegexError("a lone '$' in the replacement; write '\\$' for a literal dollar")
    if last < len(source):
        parts.append(source[last:])
    return parts


def _java_group_number(digits: str, groups: int) -> tuple[int, str]:
    """Java's rule for `$12`: the first digit always, then more digits while the group exists (`$12` with one
    group is group 1 followed by "2")."""
    number = int(digits[0])
    if number > groups:
        raise RegexError(f"the replacement refers to group {number}, but the pattern has {groups}")
    used = 1
    while used < len(digits) and int(digits[: used + 1]) <= groups:
        number, used = int(digits[: used + 1]), used + 1
    return number, digits[used:]


def compile_regex(source: str) -> Regex:
    """Compile a Java-syntax pattern on RE2. Raises RegexError with the reason."""
    return Regex(source)


def regex_validator(value: str | None) -> str | None:
    """Pydantic validator: the pattern must compile on the linear-time engine (ValueError with the reason)."""
    if value is not None:
        compile_regex(value)
    return value


def replacement_validator(pattern_field: str) -> Callable[[str, Any], str]:
    """Pydantic validator factory: a replacement must only refer to groups the pattern in `pattern_field` has."""

    def check(value: str, info: Any) -> str:
        pattern = info.data.get(pattern_field)
        if pattern is not None:
            Replacement(value, compile_regex(pattern))
        return value

    return check
