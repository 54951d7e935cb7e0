"""sudo's own refusal, told from the failure of the command it ran.

A fix behind ``sudo -n --`` that exits 1 either ran and failed (its own error on stderr) or was
never run: sudo refused it. Only the second proves that nothing of the fix ran, so it alone may
leave an approved fix approvable again. sudo also prints warnings before it runs a command
("unable to resolve host X", "setrlimit(RLIMIT_CORE)"), so a ``sudo:`` line on stderr is no
refusal by itself: sudo's refusal is the last thing it prints, and one of its known words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from ..errors import SudoRefused
from ..redact import redact_cut

#: what sudo (1.8 and 1.9, its sudoers plugin and PAM) says as it refuses to run a command, as
#: the whole last line of its stderr: no password may be asked (``-n``), a rule that does not
#: allow it (said without ``sudo:``), a tty it wants, a program it cannot find or start, and a
#: sudo that cannot become root at all (no_new_privs, a nosuid mount, broken sudoers). A
#: ``sudo -n -l`` that finds no rule says nothing: its exit status alone says no.
_REFUSALS = re.compile(
    r"sudo: (sorry, )?a password is required( to run sudo)?"
    r"|sudo: a terminal is required to read the password.*"
    r"|sudo: no tty present and no askpass program specified"
    r"|sudo: sorry, you must have a tty to run sudo"
    r"|sudo: .+: command not found"
    r"|sudo: unable to execute .+"
    r"|sudo: account validation failure, is your account locked\?"
    r"|sudo: PAM account management error: .*"
    r"|sudo: you do not exist in the .+ database"
    r"|sudo: effective uid is not 0, .+"
    r"|sudo: The \"no new privileges\" flag is set, .+"
    r"|sudo: If sudo is running in a container, .+"
    r"|sudo: no valid sudoers sources found, quitting"
    r"|sudo: unable to initialize policy plugin"
    r"|Sorry, user \S+ is not allowed to execute .+ on .+\."
    r"|Sorry, user \S+ may not run sudo on .+\."
    r"|\S+ is not in the sudoers file\..*")
#: how much of sudo's words a message quotes (they name the command: host text, masked)
_WORDS_MAX = 300


def sudo_words(argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> str | None:
    """sudo's own words (without its ``sudo: ``) where ``argv``, a sudo command, was refused
    by sudo itself and nothing of the command ran; None where the result is the command's own
    (it ran, whatever its exit), or ``argv`` is no sudo command. sudo refuses with exit 1 and
    prints nothing on stdout."""
    if not argv or PurePosixPath(argv[0]).name != "sudo" or returncode != 1 or stdout:
        return None
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines or not _REFUSALS.fullmatch(lines[-1]):
        return None
    flat = "".join(c for c in lines[-1].removeprefix("sudo: ") if c.isprintable())
    return redact_cut(flat, _WORDS_MAX)


def sudo_refused(host: str, argv: Sequence[str], returncode: int, stdout: str,
                 stderr: str) -> SudoRefused | None:
    """:class:`SudoRefused`, in words a person acts on, where sudo itself refused ``argv``
    (:func:`sudo_words`); None where the command ran."""
    words = sudo_words(argv, returncode, stdout, stderr)
    if words is None:
        return None
    need = "needs a password" if needs_password(words) else "refused"
    return SudoRefused(f"sudo on {host} {need}: `sudo -n` failed: {words}", returncode, words)


def needs_password(words: str) -> bool:
    """sudo's refusal says it wants a password (``sudo -n`` asks for none)."""
    return "password is required" in words
