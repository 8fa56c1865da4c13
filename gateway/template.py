"""Config strings with `{name}` placeholders filled from the variables Path and Host captured (SCG "URI vars").

This is substitution, not an expression language: a placeholder names a variable and nothing else. A name that
no predicate captured is left as written. Compiled once at load; rendering is a join.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway.headers import to_wire

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Template:
    __slots__ = ("source", "_parts", "_names")

    def __init__(self, source: str) -> None:
        self.source = source
        parts: list[str] = []
        names: list[str] = []
        last = 0
        for match in _PLACEHOLDER.finditer(source):
            parts.append(source[last : match.start()])
            names.append(match.group(1))
            last = match.end()
        parts.append(source[last:])
        self._parts = tuple(parts)
        self._names = tuple(names)

    @property
    def is_static(self) -> bool:
        return not self._names

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def render(self, variables: Mapping[str, str]) -> str:
        """The string with each known placeholder replaced by its variable's value."""
        if not self._names:
            return self.source
        out = [self._parts[0]]
        for name, part in zip(self._names, self._parts[1:], strict=True):
            value = variables.get(name)
            out.append(value if value is not None else "{" + name + "}")
            out.append(part)
        return "".join(out)

    def render_header(self, variables: Mapping[str, str]) -> str:
        """As `render`, in the wire form header values use: text as UTF-8 bytes, held latin-1-decoded.

        Config values and decoded path variables are Unicode text; header values are octets. Without this, "été"
        would go out as latin-1 bytes and "€" could not go out at all.
        """
        return to_wire(self.render(variables))

    def __repr__(self) -> str:
        return f"Template({self.source!r})"
