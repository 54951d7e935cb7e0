"""``setup --uninstall``: take back what setup installed, from the same items.

What gives the daemon's account anything (the sudoers drop-in), what starts it (the units) and
the ``{name}-*`` commands are removed; the units are stopped and disabled first on a running
system. What holds the operator's work stays, and the plan says where: the config, the state
directory (incidents, actions, the knowledge base), the account and its groups.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .accounts import Group, Memberships, User
from .install import Item, Layout, running, systemd_runs
from .steps import (
    Directory,
    File,
    Link,
    Programs,
    Step,
    carries_marker,
    run,
    setups_link,
    under,
)


def removal_plan(root: Path, items: Sequence[Item], marker: str | None = None,
                 programs: Programs | None = None) -> list[Step]:
    """What uninstalling would do, changing nothing; ``marker``: what marks a command file
    `commands install` wrote (removed like setup's links)."""
    units = [item.path for item in items if _unit(item)]
    steps: list[Step] = []
    if systemd_runs(root):
        # `systemctl disable` of a unit whose file is gone fails, and stopped the whole
        # uninstall (a worker unit removed by hand): such a unit is only stopped, if it runs
        filed = [Path(u).name for u in units if under(root, u).exists()]
        gone = running(root, [Path(u).name for u in units if not under(root, u).exists()],
                       programs)
        if filed or gone:
            said = "systemctl disable --now" if filed else "systemctl stop"
            if filed and gone:
                said += f"; {' '.join(gone)} only stopped"
            said += " (its unit file is gone)" if gone else ""
            steps.append(Step("systemd", " ".join(filed + gone), "stop", said))
    steps += [_removal(root, item, marker) for item in items]
    if systemd_runs(root) and any(s.changes and s.target in units for s in steps):
        steps.append(Step("systemd", "daemon-reload", "update", "units removed"))
    return steps


def uninstall(root: Path, items: Sequence[Item], marker: str | None = None,
              programs: Programs | None = None) -> list[Step]:
    """Remove what :func:`removal_plan` says; returns its steps."""
    tools = programs or Programs()
    steps = removal_plan(root, items, marker, tools)
    filed = {Path(item.path).name for item in items
             if _unit(item) and under(root, item.path).exists()}
    for step in steps:
        if step.kind == "systemd" and step.action == "stop":
            names = step.target.split()
            if disable := [n for n in names if n in filed]:
                run([tools.systemctl, "disable", "--now", "--", *disable],
                    "stopping and disabling the units")
            if stop := [n for n in names if n not in filed]:
                run([tools.systemctl, "stop", "--", *stop], "stopping the units")
        elif step.kind == "systemd":
            run([tools.systemctl, "daemon-reload"], "reloading systemd")
        elif step.action == "remove":
            under(root, step.target).unlink()
    return steps


#: the second line of every unit setup writes (packaging/systemd/*.service.in)
_WRITTEN_BY = "# Written by `ai-sysadmin setup`"


def earlier_names(root: Path, layout: Layout) -> list[str]:
    """The names an earlier setup installed the daemon under, other than this one's: its
    units (found by what setup writes in them) would run a second daemon on the same config
    and state."""
    found = []
    for unit in sorted(under(root, layout.unit_dir).glob("*-ai.service")):
        try:
            head = unit.read_text(encoding="utf-8").splitlines()[:2]
        except (OSError, UnicodeDecodeError):
            continue
        name = unit.name.removesuffix("-ai.service")
        if (name != layout.name and len(head) == 2 and head[1].startswith(_WRITTEN_BY)
                and head[0].startswith(f"# {name}-ai: ")):
            found.append(name)
    return found


def renamed_items(layout: Layout, old: str, tools: Sequence[str]) -> list[Item]:
    """What setup installed under ``old`` that this name replaces: its units and commands
    (the config, the state, the account and the sudoers drop-in are shared)."""
    units: list[Item] = [File(f"{layout.unit_dir}/{old}-{unit}", "root", "root", 0o644)
                         for unit in ("ai.service", "llm-worker.service")]
    return units + [Link(f"{layout.bin_dir}/{old}-{tool}", layout.program) for tool in tools]


def _unit(item: Item) -> bool:
    return isinstance(item, File) and item.path.endswith(".service")


def _removal(root: Path, item: Item, marker: str | None) -> Step:
    if isinstance(item, Link):
        return _link_removal(root, item, marker)
    if isinstance(item, File) and not item.keep_existing:
        here = under(root, item.path)
        return (Step("file", item.path, "remove", "installed by setup") if here.exists()
                else Step("file", item.path, "keep", "absent"))
    if isinstance(item, File | Directory):
        kind = "file" if isinstance(item, File) else "directory"
        return Step(kind, item.path, "keep", "holds your config and history: left in place")
    if isinstance(item, User):
        return Step("user", item.name, "keep", f"left in place (userdel {item.name})")
    if isinstance(item, Group):
        return Step("group", item.name, "keep", f"left in place (groupdel {item.name})")
    if isinstance(item, Memberships):
        return Step("groups", item.user, "keep", "left in place, with the account")
    raise TypeError(f"no removal for {type(item).__name__}")


def _link_removal(root: Path, link: Link, marker: str | None) -> Step:
    """A command link is removed where it is setup's (it leads to an ai-sysadmin program:
    the one setup would replace, even by another path than this run's) or the wrapper
    `commands install` wrote; anything else of that name is someone else's."""
    here = under(root, link.path)
    if here.is_symlink():
        leads_to = os.readlink(here)
        if setups_link(leads_to):
            return Step("link", link.path, "remove", f"-> {leads_to}")
        return Step("link", link.path, "keep", f"leads elsewhere ({leads_to}): not setup's")
    if marker is not None and carries_marker(here, marker):
        return Step("link", link.path, "remove", "the `commands install` wrapper")
    if here.exists():
        return Step("link", link.path, "keep", "not setup's: left in place")
    return Step("link", link.path, "keep", "absent")
