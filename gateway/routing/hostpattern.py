"""SCG ``Host=`` patterns: Spring ``AntPathMatcher`` syntax with "." as the separator, case-insensitive.

* literal labels, compared lower-cased (``API.Example.org`` is ``api.example.org``);
* ``?`` matches one character and ``*`` zero or more characters within a label; a label that is only
  ``*`` matches exactly one (non-empty) label: ``*.example.org`` matches ``a.example.org`` only;
* ``**`` matches zero or more whole labels and may appear anywhere (not twice in a row). As with
  ``AntPathMatcher``, zero counts: ``**.example.org`` matches ``example.org`` as well as ``a.b.example.org``;
* ``{name}`` captures one or more characters within a label, ``{name:regex}`` a part the regex matches
  (Java syntax on RE2, linear time; it sees the lower-cased host, so write it in lower case); captured
  values are lower-case;
* an optional ``:port`` (digits) at the end; a bracketed IPv6 literal (``[::1]``) matches literally.

The ``host`` given to :meth:`HostPattern.match` is a Host header value: it may carry a port and may be an
IPv6 literal (``[::1]:8080``); a trailing dot is ignored. A pattern without a port ignores the host's port;
this differs from SCG, whose include-port default makes ``**.example.org`` fail on ``example.org:8080``.
A pattern with a port requires that port: a host without one does not match (we do not guess defaults).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.routing.pathpattern import (
    PatternError,
    _Check,
    _collect,
    _Item,
    _SegmentBuilder,
    _tokenize,
    _variable_names,
)

__all__ = ["HostPattern", "PatternError", "compile_host_pattern", "parse_host"]

# A DNS name has at most 253 characters (254 with the trailing dot), plus ":65535"; an IPv6 literal is
# shorter. Anything longer cannot be a valid host, and refusing it bounds the work a match can do.
_MAX_HOST_LENGTH = 254 + 6
_PORT = re.compile(r"(.*):([0-9]{1,5})", re.DOTALL)
_NOT_ALLOWED = re.compile(r"[\s/@#]")  # none belongs in a host name, nor in a label regex
# `**` labels absorb their neighbouring ".": leading, elsewhere, or as the whole pattern.
_LEADING_DSTAR = r"(?:[^.]+\.)*"
_LATER_DSTAR = r"(?:\.[^.]+)*"
_ONLY_DSTAR = r"[^.]+(?:\.[^.]+)*"


def parse_host(host: str) -> tuple[str, int | None] | None:
    """Split a Host header value into (lower-cased name without trailing dot, port or None).

    Return None if it is not a well-formed host: empty, too long, an unclosed "[", a non-numeric port.
    Route indexes look up :meth:`HostPattern.exact` values with the name returned here.
    """
    if not host or len(host) > _MAX_HOST_LENGTH:
        return None
    if host.startswith("["):
        end = host.find("]") + 1
        if end == 0:
            return None
        name, rest = host[:end], host[end:]
    else:
        name, colon, port_text = host.partition(":")
        rest = colon + port_text
    if rest and not rest.startswith(":"):
        return None
    port_text = rest[1:]
    if port_text and not (port_text.isascii() and port_text.isdigit()):
        return None  # also refuses a bare IPv6 address ("::1"), whose second ":" is not a digit
    if name.endswith("."):
        name = name[:-1]
    if not name:
        return None
    return name.lower(), int(port_text) if port_text else None


@dataclass(frozen=True, slots=True)
class HostPattern:
    """A compiled host pattern: build it with :func:`compile_host_pattern`, then :meth:`match` many hosts."""

    source: str
    port: int | None  # the required port, or None to ignore the host's port
    variables: tuple[str, ...]
    _regex: re.Pattern[str] | None = field(repr=False, compare=False)  # None for a literal pattern
    _captures: tuple[tuple[str, str], ...] = field(repr=False, compare=False)
    _checks: tuple[_Check, ...] = field(repr=False, compare=False)
    _literal: str | None = field(repr=False, compare=False)

    def match(self, host: str) -> dict[str, str] | None:
        """Match a Host header value: the captured variables (``{}`` if none), or None."""
        parsed = parse_host(host)
        if parsed is None or (self.port is not None and parsed[1] != self.port):
            return None
        if self._regex is None:
            return {} if parsed[0] == self._literal else None
        m = self._regex.fullmatch(parsed[0])
        return None if m is None else _collect(m, self._captures, self._checks, _identity)

    def exact(self) -> str | None:
        """The lower-cased host name if the pattern is a plain name without port, else None.

        A route index can then find the pattern by a dict lookup on ``parse_host(host)[0]``.
        """
        return self._literal if self.port is None else None


def compile_host_pattern(source: str) -> HostPattern:
    """Compile a host pattern; raise :class:`PatternError` if it is invalid."""
    try:
        return _compile(source)
    except PatternError as exc:
        raise PatternError(f"invalid host pattern {source!r}: {exc}") from None


def _compile(source: str) -> HostPattern:
    if not source:
        raise PatternError("it is empty")
    bad = _NOT_ALLOWED.search(source)
    if bad is not None:
        raise PatternError(f"{bad.group()!r} is not allowed")
    name, port = _split_port(source)
    if name.endswith("."):
        name = name[:-1]
    if name.startswith("["):
        if not name.endswith("]") or re.search(r"[{}*?\[\]]", name[1:-1]):
            raise PatternError("an IPv6 literal must be a plain '[address]'")
        return HostPattern(source, port, (), None, (), (), name.lower())
    labels = _labels(_tokenize(name, "."))
    variables = _variable_names(labels)
    if all(len(label) == 1 and label[0].kind == "lit" for label in labels):
        return HostPattern(source, port, variables, None, (), (), ".".join(lb[0].text for lb in labels))
    builder = _SegmentBuilder(".")
    regex = re.compile(_host_regex(labels, builder))
    return HostPattern(source, port, variables, regex, tuple(builder.captures), tuple(builder.checks), None)


def _split_port(source: str) -> tuple[str, int | None]:
    m = _PORT.fullmatch(source)
    if m is None or m.group(1).count("{") != m.group(1).count("}"):
        return source, None  # no port, or the ":" belongs to a {name:regex}
    port = int(m.group(2))
    if not 0 < port <= 65535:
        raise PatternError(f"port {m.group(2)} is out of range")
    return m.group(1), port


def _labels(labels: list[list[_Item]]) -> list[list[_Item]]:
    """Validate the labels; return them with literal text lower-cased."""
    for index, label in enumerate(labels):
        kinds = [it.kind for it in label]
        if not label:
            raise PatternError(f"label {index + 1} is empty")
        if "rest" in kinds:
            name = next(it.text for it in label if it.kind == "rest")
            raise PatternError(f"'{{*{name}}}' is not supported in host patterns")
        if "dstar" in kinds and len(label) != 1:
            raise PatternError("'**' must be a whole label")
        if kinds == ["dstar"] and index and labels[index - 1][0].kind == "dstar":
            raise PatternError("'**.**' is redundant; use '**'")
        if any(it.kind == "lit" and ":" in it.text for it in label):
            raise PatternError("':' may only introduce a numeric port")
    return [[it._replace(text=it.text.lower()) if it.kind == "lit" else it for it in lb] for lb in labels]


def _host_regex(labels: Sequence[Sequence[_Item]], builder: _SegmentBuilder) -> str:
    if len(labels) == 1 and labels[0][0].kind == "dstar":
        return _ONLY_DSTAR
    parts: list[str] = []
    for index, label in enumerate(labels):
        if label[0].kind == "dstar":
            parts.append(_LATER_DSTAR if index else _LEADING_DSTAR)
            continue
        if index and not (index == 1 and parts[0] == _LEADING_DSTAR):
            parts.append(r"\.")
        parts.append(builder.segment(label, star_min=1))
    return "".join(parts)


def _identity(value: str) -> str:
    return value  # host captures are not percent-encoded
