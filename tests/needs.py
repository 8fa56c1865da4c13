"""Tests that need a Debian tool (nginx, wrk) skip with the install command when it is missing, except in
CI: `.ci/run` installs the tools and sets `CI=1`, so a missing tool there is a failure, not a quiet skip."""

from __future__ import annotations

import os
import shutil

import pytest

PACKAGES = {"nginx": "nginx-light", "wrk": "wrk"}


def tools(*commands: str) -> None:
    """Skip (locally) or fail (in CI) unless every command is on PATH."""
    missing = [command for command in commands if shutil.which(command) is None]
    if not missing:
        return
    packages = " ".join(sorted({PACKAGES.get(command, command) for command in missing}))
    reason = f"needs {', '.join(missing)}: apt-get install -y {packages}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs it in .ci/run)")
    pytest.skip(reason)
