"""Programs from Debian packages that the suite runs for real (see scripts/system-deps.sh)."""

from __future__ import annotations

import shutil

import pytest


def require_program(name: str, package: str) -> str:
    """The path of ``name``; fails the test naming the program and its package when missing."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin")
    if path is None:
        pytest.fail(
            f"{name} not found on PATH: install the Debian package {package} "
            "(`make test` does so when run as root: scripts/system-deps.sh)",
            pytrace=False,
        )
    return path
