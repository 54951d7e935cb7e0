"""Directories for tests whose reads run as the reading identity (nobody)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def enterable_tmp(prefix: str) -> Iterator[Path]:
    """A directory under /tmp that the reading identity may enter: pytest's own tmp_path is
    root's, 0700, and reads for the model do not run as root. Removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
