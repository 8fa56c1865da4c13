"""`FromEnv`: a string that remembers it came from `${env:...}`, so config views can redact it wherever it ends up.

The mark travels with the value, not with its YAML path: renamed or normalised argument keys, lists gathered from
indexed keys, dotted keys, merge keys and aliases all move the same object. Parsers also cut strings (a shortcut is
split at `=` and `,`, tokens are stripped), so every `str` method that returns a piece or a derivation of the text
returns a `FromEnv` again. What cannot be hooked (an f-string, `sep.join(...)`, a pydantic model's own copy) loses
the mark; `gateway.config.redact` catches those by the recorded values (see docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

REDACTED = "<redacted>"
#: Recorded env texts at least this long are also searched for inside shown strings (gateway.config.redact).
MIN_SEARCHED = 8


class FromEnv(str):
    """A `str` whose text came (wholly or partly) from the environment. Equal to, and hashed as, the plain text."""

    __slots__ = ()

    def __radd__(self, other: str) -> FromEnv:
        # `"prefix" + value`: Python asks the subclass first, so the mark survives concatenation on either side.
        return FromEnv(str.__add__(other, self))


def marked(value: Any) -> Any:
    """`value` with every str in it (a str, or the items of a list/tuple) turned into a FromEnv."""
    if isinstance(value, str):
        return value if isinstance(value, FromEnv) else FromEnv(value)
    if isinstance(value, list | tuple):
        return type(value)(marked(item) for item in value)
    return value


def _keeping_mark(name: str) -> Callable[..., Any]:
    method = getattr(str, name)

    def derived(self: FromEnv, *args: Any, **kwargs: Any) -> Any:
        return marked(method(self, *args, **kwargs))

    derived.__name__ = derived.__qualname__ = name
    derived.__doc__ = method.__doc__
    return derived


# SECURITY: every derivation of a secret is still a secret (a shortcut's tokens, a stripped value, a slice).
_DERIVING = (
    # Not __format__: an f-string joins its parts into a plain str anyway, and a route's Host line is an f-string
    # built per request (a Python-level wrapper there would cost on the data path for nothing).
    *("__add__", "__getitem__", "__mod__", "__mul__", "__rmul__", "format", "translate"),
    *("capitalize", "casefold", "lower", "swapcase", "title", "upper"),
    *("center", "expandtabs", "ljust", "rjust", "zfill", "replace", "removeprefix", "removesuffix"),
    *("strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "partition", "rpartition"),
)
for _name in _DERIVING:
    setattr(FromEnv, _name, _keeping_mark(_name))


def redact_message(message: str, env_values: Collection[str]) -> str:
    """`message` (a config error or warning) with every value substituted from `${env:...}` replaced.

    Validators quote the value they refuse (`unknown HTTP status 's3cret'`), and these messages reach stderr and
    the logs. A recorded text is replaced where it stands quoted, whatever its length, and anywhere once it has
    `MIN_SEARCHED` characters (the rule of the views: a short text such as `80` is not searched for in prose).
    """
    for text in sorted({value.strip() for value in env_values} - {""}, key=len, reverse=True):
        for quoted in (repr(text), f"'{text}'", f'"{text}"'):
            message = message.replace(quoted, REDACTED)
        if len(text) >= MIN_SEARCHED:
            message = message.replace(text, REDACTED)
    return message
