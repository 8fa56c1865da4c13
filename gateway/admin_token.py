"""The admin token the gateway makes at start when none is configured and the admin listener is on loopback.

It lives in `$XDG_RUNTIME_DIR/sluicegate/admin-<port>.token` (else `/tmp/sluicegate-<uid>/admin-<port>.token`), mode
0600, in a directory of ours with mode 0700; `token_path(port)` and `read_token(port)` find it from the admin port
(the CLI uses them). The gateway removes the file at exit.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import stat
from pathlib import Path

from gateway.settings import Admin


class UnsafeTokenDirectory(Exception):
    """The token directory is not safe to write a secret into (the message is one line)."""


def token_directory() -> Path:
    """`$XDG_RUNTIME_DIR/sluicegate`, or `/tmp/sluicegate-<uid>` when XDG_RUNTIME_DIR is unset or empty."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    return Path(runtime) / "sluicegate" if runtime else Path(f"/tmp/sluicegate-{os.getuid()}")  # noqa: S108


def token_path(port: int) -> Path:
    """Where the gateway whose admin listener is on `port` writes its generated token."""
    return token_directory() / f"admin-{port}.token"


def read_token(port: int) -> str | None:
    """The generated token of the gateway on admin `port`, or None when there is no such file (or it is unsafe)."""
    path = token_path(port)
    try:
        _check_directory(path.parent)
        return path.read_text(encoding="utf-8").strip() or None
    except (OSError, UnsafeTokenDirectory):
        return None


def write_token(port: int) -> tuple[Path, str]:
    """Make a random token and write it, mode 0600, to `token_path(port)`; returns (path, token).

    Raises UnsafeTokenDirectory when the directory belongs to someone else or others may write to it (a /tmp path
    must not be hijackable), OSError when it cannot be written.
    """
    path = token_path(port)
    with contextlib.suppress(FileExistsError):
        path.parent.mkdir(mode=0o700, parents=False)
    _check_directory(path.parent)
    token = secrets.token_urlsafe(32)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a stale file of an earlier run on this port (the directory is ours: nobody else's file)
    # SECURITY: O_EXCL|O_NOFOLLOW: never write through a planted symlink; 0600 from creation on, no window.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return path, token


def remove_token(path: Path) -> None:
    """Remove a token file written by `write_token` (gone already is fine)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _check_directory(directory: Path) -> None:
    # SECURITY: lstat, not stat: a symlink planted in /tmp is refused, not followed to someone else's directory.
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeTokenDirectory(f"admin token directory {directory} is not a directory")
    if info.st_uid != os.getuid():
        raise UnsafeTokenDirectory(f"admin token directory {directory} is owned by uid {info.st_uid}, not by us")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeTokenDirectory(f"admin token directory {directory} is group- or world-writable")


def is_loopback(host: str) -> bool:
    """True when an admin listener bound to `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere: not loopback


def admin_tokens(admin: Admin, port: int) -> tuple[dict[str, str] | None, Path | None]:
    """The admin API's tokens (author -> token) and the generated token file to remove at exit (or None).

    Configured tokens win; with none and a loopback listener a token is generated into `token_path(port)`; with
    none off loopback the result is (None, None): the admin API is disabled. Raises ValueError (an unreadable
    token_file), UnsafeTokenDirectory or OSError, each with a one-line message.
    """
    configured = admin.credentials()
    if configured is not None:
        return configured, None
    if not is_loopback(admin.listen.host):
        return None, None
    path, token = write_token(port)
    return {"admin": token}, path
