"""The sudo rules a daemon that is not root needs: exactly the fix shapes the action catalog
runs, and clean_directory's one script (pure: the caller says where each program is)."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings
from .clean_script import sudoers_rule

#: the remediation argvs, with ``{program}`` for the executable's absolute path
SUDO_SHAPES: tuple[str, ...] = (
    "{systemctl} restart -- *", "{systemctl} start -- *", "{systemctl} reset-failed -- *",
    "{journalctl} --vacuum-size=*", "{kill} -TERM *",
)


def sudoers_text(settings: Settings, user: str, resolve: Callable[[str], str],
                 header: str = "the fixes the ai-sysadmin daemon may run as root") -> str:
    """The sudoers drop-in. ``resolve``: a configured program (``programs.*``) to the absolute
    path sudo will see."""
    paths = {p: resolve(settings.programs.resolve(p)) for p in ("systemctl", "journalctl", "kill")}
    lines = [f"# {settings.ai_name}: {header} (check: visudo -c -f FILE)",
             f"{user} ALL=(root) NOPASSWD: " + ", ".join(s.format(**paths) for s in SUDO_SHAPES)]
    if settings.safety.clean_paths:
        shell = resolve(settings.programs.resolve("sh"))
        lines.append(sudoers_rule(user, settings.safety.clean_paths, shell))
    return "\n".join(lines) + "\n"
