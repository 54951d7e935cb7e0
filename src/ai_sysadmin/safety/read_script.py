"""read_file's read: one constant POSIX sh program that opens the file once and says what it
opened (pure: the argv and the reading of its answer, no I/O).

The file policy judges a path (``check_read``), and then the host reads it. Reading that path
again by name leaves a window: a local user who can write a directory on the way swaps the
file, or a directory above it, for a symlink to a file whose name the policy refuses, or for a
FIFO, on which an ``open`` for reading waits for a writer until the tool's timeout. So the host
runs :data:`SCRIPT` (ours, never model text) with the path as data::

    sh -c SCRIPT ai-sysadmin-read MAX_BYTES PATH

It refuses what is not a regular file before opening it (a FIFO, socket, device or directory:
exit :data:`EXIT_NOT_REGULAR`, with the kind on stdout), opens PATH once as the group's
standard input, checks that what it opened is a regular file (``test -f /dev/stdin`` follows
the descriptor, not the name), prints where the kernel says the opened file is
(``readlink /proc/self/fd/0``) and a NUL, then at most MAX_BYTES of it read from that same
descriptor. The caller judges the kernel's path with the file policy before it shows a byte
(:func:`opened`). A FIFO swapped in between the first test and the open can still make the
open wait until the timeout, but what is read is only ever the file judged.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the script's $0 (the shell names it in its own messages: "ai-sysadmin-read: 1: cannot open")
NAME = "ai-sysadmin-read"

#: exit statuses of SCRIPT (a failed open is the shell's own 1 or 2, a missing program 127)
EXIT_NOT_REGULAR = 3
EXIT_SWAPPED = 4
EXIT_NO_PROC = 5

_LINES = (
    "f=$2;",
    # the kind of what is not a regular file, for the message; missing or unreachable paths
    # go on to the open, which says why in the shell's words
    "if ! test -f \"$f\" && test -e \"$f\"; then",
    " stat -L -c %F -- \"$f\" 2>/dev/null || echo 'special file';",
    f" exit {EXIT_NOT_REGULAR}; fi;",
    "{",
    f" test -f /dev/stdin || exit {EXIT_SWAPPED};",
    # "&& echo ." keeps a trailing newline of the name, which $(...) would cut
    f" p=$(readlink /proc/self/fd/0 && echo .) || exit {EXIT_NO_PROC};",
    " printf '%s\\0' \"${p%?.}\";",
    " exec head -c \"$1\";",
    "} < \"$f\"",
)
SCRIPT = " ".join(_LINES)


def read_argv(path: str, max_bytes: int, sh: str = "sh") -> list[str]:
    """The argv that prints the kernel's path of the opened file, a NUL, then at most
    ``max_bytes`` of it."""
    if not path.startswith("/"):
        raise ValueError(f"{path!r} is not an absolute path")
    return [sh, "-c", SCRIPT, NAME, str(int(max_bytes)), path]


@dataclass(frozen=True)
class Opened:
    """What the script read: the opened file's path as the kernel names it, and its text."""

    path: str
    text: str


def opened(stdout: str) -> Opened | None:
    """The script's answer, once it exited 0; None when it is not one (no path before a NUL)."""
    path, nul, text = stdout.partition("\x00")
    if not nul or not path.startswith("/"):
        return None
    # a file unlinked since it was opened: the kernel adds this to the name it had
    return Opened(path.removesuffix(" (deleted)"), text)


#: what GNU stat's %F calls the files that are not regular
_KINDS = frozenset({"fifo", "socket", "character special file", "block special file",
                    "directory", "symbolic link"})


def not_regular(path: str, stdout: str) -> str:
    """Why the script refused ``path`` before opening it (exit EXIT_NOT_REGULAR)."""
    said = stdout.strip()
    kind = said if said in _KINDS else "special file"
    hint = "; list it with list_directory" if kind == "directory" else ""
    return (f"{path} is not a regular file but a {kind}: read_file reads regular files "
            f"only (a FIFO or device could block or never end){hint}")
