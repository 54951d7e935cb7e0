"""Who a person's decision is recorded as: the account of the process's real uid.

``getpass.getuser()`` reads LOGNAME and USER first: under sudo it said "root" whoever ran
sudo, and anyone could write another name into the audit log (``LOGNAME=alice hal-approve
approve 3``). The real uid is what the kernel says; who ran sudo is only what sudo's
environment says (root, or anyone, can set SUDO_USER), so it is recorded as a claim beside it.
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Mapping

#: a user name as sudo and useradd write one; anything else in SUDO_USER is shown as unknown
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?")
#: the real uid this process was started with, kept before a command of root's becomes the
#: state directory's owner (:func:`~.context.as_state_owner`): the person is who ran it,
#: not the daemon's account it runs as after
_started_as: int | None = None


def keep_caller() -> None:
    """Remember who runs this command, before its uid changes."""
    global _started_as
    if _started_as is None:
        _started_as = os.getuid()


def switched() -> bool:
    """Whether this command runs as another account than the one that started it: root's,
    run on a daemon's state, runs as that state's owner."""
    return _started_as is not None and _started_as != os.getuid()


def _account(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def actor(environ: Mapping[str, str] | None = None, uid: int | None = None) -> str:
    """``alice``; under sudo ``root (sudo from bob uid 1000, as SUDO_USER says)``."""
    environ = os.environ if environ is None else environ
    if uid is None:
        uid = os.getuid() if _started_as is None else _started_as
    real = _account(uid)
    name, number = environ.get("SUDO_USER"), environ.get("SUDO_UID")
    if name is None and number is None:
        return real
    claimed = name if name is not None and _NAME.fullmatch(name) else "?"
    if number is not None:
        claimed += f" uid {number}" if re.fullmatch(r"[0-9]{1,10}", number) else " uid ?"
    return f"{real} (sudo from {claimed}, as SUDO_USER says)"
