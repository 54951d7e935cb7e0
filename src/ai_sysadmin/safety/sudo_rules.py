"""The sudo rules a daemon that is not root needs: exactly the fix shapes the action catalog
runs, and clean_directory's one script (pure: the caller says where each program is)."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings
from .clean_script import sudoers_rule

#: a unit the catalog's fixes start, restart or reset: one operand, systemd's characters,
#: never an option's first character, and no target (poweroff, reboot, emergency, rescue)
_UNIT = (r"[A-Za-z0-9_\\][A-Za-z0-9_@\:.\\-]*"
         r"\.(service|socket|timer|path|mount|automount|swap|slice|scope)")
#: the remediation argvs, with ``{program}`` for the executable's absolute path, as sudoers
#: text. sudo matches a rule's arguments against the command's joined by spaces, where a
#: glob's ``*`` takes spaces and dashes too (``kill -TERM -1``, ``restart -- a.service
#: poweroff.target``): each is a regular expression, whole (sudo 1.9.10 or newer), in which
#: sudoers' own ``\:`` and ``\=`` stand for ``:`` and ``=``.
SUDO_SHAPES: tuple[str, ...] = (
    rf"{{systemctl}} ^(restart|start|reset-failed) -- {_UNIT}$",
    r"{journalctl} ^--vacuum-size\=[1-9][0-9]*[KMG]$",
    r"{kill} ^-TERM [1-9][0-9]*$",
)


def sudoers_text(settings: Settings, user: str, resolve: Callable[[str], str],
                 header: str = "the fixes the ai-sysadmin daemon may run as root") -> str:
    """The sudoers drop-in. ``resolve``: a configured program (``programs.*``) to the absolute
    path sudo will see."""
    paths = {p: resolve(settings.programs.resolve(p)) for p in ("systemctl", "journalctl", "kill")}
    lines = [f"# {settings.ai_name}: {header} (check: visudo -c -f FILE)",
             # a fix over SSH is given its time limit through sudo (-T), which alone can end
             # it: a signal from outside ends sudo and leaves the command running as root
             f"Defaults:{user} user_command_timeouts",
             f"{user} ALL=(root) NOPASSWD: " + ", ".join(s.format(**paths) for s in SUDO_SHAPES)]
    if settings.safety.clean_paths:
        shell = resolve(settings.programs.resolve("sh"))
        lines.append(sudoers_rule(user, settings.safety.clean_paths, shell))
    return "\n".join(lines) + "\n"
