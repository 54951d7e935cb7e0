"""Writing a file a person named (an export, a results file): whole or not at all."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from pathlib import Path


def replaceable(path: Path) -> bool:
    """Whether :func:`write_text` renames a new file over ``path``: where it is a regular file
    or nothing yet. A device, a FIFO or a symlink (``/dev/stdout``) is written into instead;
    a new file renamed over it took its place (``/dev/null`` became a file holding the
    export, the symlink a copy, a reader waiting on the FIFO read nothing)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return True


def is_stdout(path: Path) -> bool:
    """Whether ``path`` is where standard output goes (``/dev/stdout``, ``/dev/fd/1``, the
    file it is redirected to). A command writes such a file through ``sys.stdout``, and its
    own messages elsewhere: written through a second opening, the file and what the command
    printed after it each began at the file's start, and the printing wrote over the file;
    into a pipe, the printing followed the file where its reader (``import``, ``jq``) refuses
    it."""
    try:
        here, there = os.fstat(sys.stdout.fileno()), os.stat(path)
    except (OSError, ValueError):  # no descriptor (captured, closed), or no such file
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def write_text(path: Path, text: str) -> None:
    """``text`` into ``path``. Where that is a regular file or nothing yet, into a new file
    beside it renamed over it: an interrupted write loses nothing, and a reader never sees
    half a file. Its mode is the old file's, else owner-only: what is written (incidents,
    fixes, transcripts quoting host text) is for whoever may read the state, not every local
    user. Anything else is opened and written as a shell's ``>`` does: a device or a FIFO
    gets the text, a symlink stays and its target gets it. Raises OSError."""
    if not replaceable(path):
        with open(path, "w", encoding="utf-8", opener=_private) as handle:
            handle.write(text)
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o600
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            os.fchmod(handle.fileno(), mode)  # the umask had no say in it
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)  # no half file stays behind
        raise


def _private(path: str, flags: int) -> int:
    """``open``'s opener: a file made through a dangling symlink is owner-only too."""
    return os.open(path, flags, 0o600)
