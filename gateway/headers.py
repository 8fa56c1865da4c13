"""A case-insensitive, order-preserving, multi-valued header map owned by the gateway.

Names and values are `str` decoded as latin-1, so every byte a peer sent round-trips unchanged. Values written
through the mutating methods are checked for CR, LF and NUL: a filter can never split a header (response
splitting / request smuggling), whatever request data it puts into a value.
"""

from __future__ import annotations

import builtins
import re
import string
from collections.abc import Iterable, Iterator

from gateway.errors import HeaderInjection

_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")

#: RFC 9110 `tchar` punctuation; with ASCII letters and digits, the characters of a token (a header name, a method,
#: a cookie name). Every token check in the gateway derives from this one definition.
_TOKEN_PUNCTUATION = "!#$%&'*+-.^_`|~"
_TOKEN_CHARS = frozenset(_TOKEN_PUNCTUATION + string.ascii_letters + string.digits)
#: The same character set as an anchored pattern, for config schemas (JSON Schema `pattern`, pydantic).
TOKEN_PATTERN = "^[" + _TOKEN_PUNCTUATION.replace("-", "\\-") + "0-9A-Za-z]+$"


def is_token(text: str) -> bool:
    """True when `text` is a non-empty RFC 9110 token."""
    return bool(text) and _TOKEN_CHARS.issuperset(text)


def check_value(value: str) -> str:
    """Return `value` in wire form, or raise HeaderInjection if it holds a control character other than HTAB.

    Values are octets held latin-1-decoded; a character beyond latin-1 (text a filter wrote) is sent as UTF-8
    rather than failing at serialisation. Filters writing text should use `to_wire` for consistent UTF-8.
    """
    # SECURITY: a CR/LF in a value written by a filter (perhaps from a path variable) would split the header; the
    # other controls (RFC 9110 §5.5) make strict upstreams answer 400, so they are refused here, at the filter.
    bad = _CONTROL.search(value)
    if bad is not None:
        raise HeaderInjection(f"header value contains a forbidden control character {bad.group()!r}")
    if not value.isascii() and max(value) > "\xff":
        return value.encode("utf-8").decode("latin-1")
    return value


def to_wire(text: str) -> str:
    """Unicode text as a header value: its UTF-8 bytes, held latin-1-decoded like every value here."""
    return text if text.isascii() else text.encode("utf-8").decode("latin-1")


def check_name(name: str) -> str:
    """Return `name` unchanged, or raise HeaderInjection if it is not an RFC 9110 token."""
    if not is_token(name):
        raise HeaderInjection(f"invalid header name {name!r}")
    return name


class Headers:
    """Ordered multi-map of HTTP fields with case-insensitive lookup.

    Each entry is kept as (lower-cased name, name as sent, value). Lookups are linear scans: a request carries a
    few dozen fields at most, and a scan over a short list beats maintaining a dict on every mutation.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str, str]] = [(check_name(n).lower(), n, check_value(v)) for n, v in items]

    @classmethod
    def trusted(cls, items: list[tuple[str, str, str]]) -> Headers:
        """Wrap (lower, name, value) triples already validated by an HTTP parser, without copying or checks."""
        headers = cls.__new__(cls)
        headers._items = items
        return headers

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of `name`, or `default`."""
        key = name.lower()
        for lower, _, value in self._items:
            if lower == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of `name`, in order."""
        key = name.lower()
        found: list[str] = []
        for lower, _, value in self._items:
            if lower == key:
                found.append(value)
        return found

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        for lower, _, _ in self._items:  # noqa: SIM110 - a loop, not any(genexpr): it runs several times per request
            if lower == key:
                return True
        return False

    def add(self, name: str, value: str) -> None:
        """Append one field, keeping any existing values of the same name."""
        self._items.append((check_name(name).lower(), name, check_value(value)))

    def set(self, name: str, value: str) -> None:
        """Replace every value of `name` with one value (added at the end when absent)."""
        key = check_name(name).lower()
        value = check_value(value)
        items = self._items
        for index, (lower, _, _) in enumerate(items):
            if lower == key:
                items[index] = (key, name, value)
                self._items = items[: index + 1] + [t for t in items[index + 1 :] if t[0] != key]
                return
        items.append((key, name, value))

    def set_trusted(self, lower: str, name: str, value: str) -> None:
        """`set` for a name and value the gateway itself vouches for (a validated setting, an id it made): no
        checks, and no copy of the list unless the field is already there."""
        items = self._items
        for entry in items:
            if entry[0] == lower:
                self._items = [t for t in items if t[0] != lower]
                break
        self._items.append((lower, name, value))

    def setdefault(self, name: str, value: str) -> None:
        """Add `name: value` only when `name` is absent."""
        if name not in self:
            self.add(name, value)

    def remove(self, name: str) -> int:
        """Remove every value of `name`; return how many were removed."""
        key = name.lower()
        before = len(self._items)
        self._items = [t for t in self._items if t[0] != key]
        return before - len(self._items)

    def remove_many(self, lower_names: frozenset[str] | builtins.set[str]) -> None:
        """Remove every field whose lower-cased name is in `lower_names`."""
        self._items = [t for t in self._items if t[0] not in lower_names]

    def items(self) -> Iterator[tuple[str, str]]:
        """(name as sent, value) pairs in order."""
        for _, name, value in self._items:
            yield name, value

    def raw(self) -> list[tuple[str, str, str]]:
        """The (lower, name, value) triples; read-only by convention, for serialisers on the hot path."""
        return self._items

    def copy(self) -> Headers:
        return Headers.trusted(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        for _, name, _ in self._items:
            yield name

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(lo, v) for lo, _, v in self._items] == [(lo, v) for lo, _, v in other._items]

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Headers({list(self.items())!r})"


def connection_tokens_of(values: list[str]) -> set[str]:
    """Lower-cased tokens listed in these `Connection` field values (RFC 9110 §7.6.1)."""
    tokens: set[str] = set()
    for value in values:
        for token in value.split(","):
            token = token.strip().lower()
            if token:
                tokens.add(token)
    return tokens
