"""Tests whose point needs root (a mount namespace of their own, a file given away): CI runs
as root, so there they fail rather than pass unseen; elsewhere they are skipped, saying why."""

from __future__ import annotations

import os

import pytest


def needs_root(why: str) -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI runs as root: {why} is what this tests")
    pytest.skip(f"needs root ({why})")
