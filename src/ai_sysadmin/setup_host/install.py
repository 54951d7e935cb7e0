"""The whole install as a list of items, planned (a dry run) or applied."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..config import Settings
from ..llm.queue import queue_file
from .accounts import Group, Memberships, User
from .sample_config import sample_config
from .steps import Directory, File, Link, Programs, SetupError, Step, run, under
from .units import read_write_paths, render_units, unit_word

#: sudo's secure_path on Debian, Ubuntu and Fedora: how it turns a bare program name into a path
SECURE_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


#: what ai-sysadmin writes in its state directory (config.py's db_path and log_dir, the
#: queue's queue.db, the knowledge base, config_repo's copy, index and lock, `eval`'s results;
#: sqlite's journals beside each database, and the copy an upgrade keeps of it; the lock of
#: `run`, which a try of `sudo ai-sysadmin run` before setup leaves) and the account's ~/.ssh
#: there
STATE_NAMES = ("state.db", "state.db-*", "state.db.schema-*", "queue.db", "queue.db-*",
               "queue.db.schema-*", "logs", "knowledge", "config-repo", "config-repo-index.*",
               "config-repo.lock", "eval", "daemon.lock", ".ssh")
#: what ChromaDB writes in a knowledge.path: its database and a directory per collection
KNOWLEDGE_NAMES = ("chroma.sqlite3", "chroma.sqlite3-*", "writers.lock",
                   "????????-????-????-????-????????????")


def state_names(settings: Settings, state_dir: str) -> tuple[str, ...]:
    """STATE_NAMES, and a knowledge path or a queue file the config puts elsewhere in the
    state directory."""
    names = list(STATE_NAMES)
    queue = queue_file(settings)
    for path in (settings.knowledge_dir, queue):
        if path is not None and path.is_relative_to(state_dir) and path != Path(state_dir):
            top = path.relative_to(state_dir).parts[0]
            names += [top, f"{top}-*", f"{top}.schema-*"] if path == queue else [top]
    return tuple(names)


def own_dirs(settings: Settings, state_dir: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The daemon's directories outside the state directory, where the config puts them: a
    knowledge path and a queue file's directory -> the key that names it, and the names in it
    that are ai-sysadmin's own."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    knowledge = settings.knowledge.path
    if knowledge is not None and not knowledge.is_relative_to(state_dir):
        found[str(knowledge)] = ("knowledge.path", KNOWLEDGE_NAMES)
    queue = queue_file(settings)
    if queue is not None and not queue.parent.is_relative_to(state_dir):
        key, names = found.get(str(queue.parent), ("queue.url", ()))
        found[str(queue.parent)] = (key, (*names, queue.name, f"{queue.name}-*",
                                          f"{queue.name}.schema-*"))
    return found


class Item(Protocol):
    def check(self, root: Path) -> Step: ...

    def apply(self, root: Path, programs: Programs) -> None: ...


@dataclass(frozen=True)
class Layout:
    """Where everything goes on the target system, and who runs it."""

    name: str
    program: str
    user: str = "ai-sysadmin"
    group: str = "ai-sysadmin"
    reader_groups: tuple[str, ...] = ("adm", "systemd-journal")
    state_dir: str = "/var/lib/ai-sysadmin"
    config_dir: str = "/etc/ai-sysadmin"
    unit_dir: str = "/etc/systemd/system"
    bin_dir: str = "/usr/local/bin"
    sudoers: str = "/etc/sudoers.d/ai-sysadmin"

    @property
    def config_path(self) -> str:
        return f"{self.config_dir}/config.toml"


def new_config(layout: Layout) -> str:
    """The config setup writes when there is none: every key, with the name, the state
    directory and the separate worker unit set."""
    return sample_config({"ai_name": layout.name, "state_dir": layout.state_dir,
                          "queue.embedded_worker": False})


def program_path(root: Path, program: str, config: str = "the config") -> str:
    """The absolute path sudo matches for ``program`` (a configured path, or a bare name
    looked up as sudo's secure_path does, on the target system under ``root``); ``config``:
    where the operator sets its path instead, said when it is not found."""
    found = _found(root, program)
    if found is None:
        raise not_found(root, [program], config)
    return found


def _found(root: Path, program: str) -> str | None:
    if program.startswith("/"):
        return program
    for directory in SECURE_PATH:
        if os.access(under(root, f"{directory}/{program}"), os.X_OK):
            return f"{directory}/{program}"
    return None


class ProgramPaths:
    """:func:`program_path` for every program setup needs, where those not found are not
    said one at a time (a person would set one, run setup again, and hear of the next):
    :meth:`check` names them all in one error."""

    def __init__(self, root: Path, config: str = "the config") -> None:
        self.root, self.config = root, config
        self.missing: list[str] = []

    def __call__(self, program: str) -> str:
        found = _found(self.root, program)
        if found is None:
            if program not in self.missing:
                self.missing.append(program)
            # a stand-in the sudoers lines take (an absolute path): never installed, as
            # check() refuses the setup before anything is built from it
            return "/nonexistent"
        return found

    def check(self) -> None:
        if self.missing:
            raise not_found(self.root, self.missing, self.config)


def not_found(root: Path, programs: Sequence[str], config: str) -> SetupError:
    """Where ``programs`` were looked for in vain, and where to set their paths."""
    # a tree being installed into is not this machine: its programs are looked for there
    where = "" if root == Path("/") else f" under {root}"
    if len(programs) == 1:
        return SetupError(f"{programs[0]} is in none of {':'.join(SECURE_PATH)}{where}; set "
                          f"programs.{programs[0]} to its absolute path in {config}")
    named = f"{', '.join(programs[:-1])} and {programs[-1]}"
    keys = ", ".join(f"programs.{p}" for p in programs[:-1]) + f" and programs.{programs[-1]}"
    return SetupError(f"{named} are in none of {':'.join(SECURE_PATH)}{where}; set {keys} to "
                      f"their absolute paths in {config}")


def check_sudoers(path: Path, programs: Programs) -> None:
    """visudo's verdict on a drop-in, before it takes the place of the installed one."""
    run([programs.visudo, "-c", "-q", "-f", str(path)], "checking the sudoers drop-in")


def require_sudo(programs: Programs) -> None:
    """Without sudo (Debian installed with a root password has none) the drop-in cannot be
    checked and no fix could run: say so before anything is installed."""
    if shutil.which(programs.visudo) is None:
        raise SetupError(f"{programs.visudo} not found: install sudo (apt-get install sudo, "
                         "dnf install sudo or pacman -S sudo) and run setup again")


def build(layout: Layout, settings: Settings, *, templates: Path, sudoers: str,
          config_text: str, tools: Sequence[str], setpriv: str,
          programs: Programs | None = None, wrapper_marker: str | None = None,
          config_origin: str = "") -> list[Item]:
    """Every item of the install, in the order it is applied; ``setpriv``: its path on the
    target (the daemon's unit drops to its user with it); ``programs``: those apply runs;
    ``wrapper_marker``: what marks a command file `commands install` wrote, which a link
    may replace; ``config_origin``: the file ``config_text`` was read from, if any."""
    tools_run = programs or Programs()
    own = own_dirs(settings, layout.state_dir)
    # the queue's file is the worker's as much as the daemon's
    queue = queue_file(settings)
    worker_own = [str(queue.parent)] if queue is not None and str(queue.parent) in own else []
    words = {"program": unit_word(layout.program), "config": unit_word(layout.config_path),
             "user": unit_word(layout.user), "group": unit_word(layout.group),
             "state_dir": unit_word(layout.state_dir), "setpriv": unit_word(setpriv),
             "read_write_paths": read_write_paths(settings.safety.clean_paths, list(own)),
             "worker_read_write_paths": " ".join(
                 [unit_word(layout.state_dir), *("-" + unit_word(p) for p in worker_own)])}
    units = render_units(templates, layout.name, words)
    items: list[Item] = [
        Group(layout.group),
        User(layout.user, layout.group, layout.state_dir),
        Memberships(layout.user, layout.reader_groups),
        Directory(layout.state_dir, layout.user, layout.group, 0o750,
                  adopt=state_names(settings, layout.state_dir), setting="state_dir"),
        *(Directory(path, layout.user, layout.group, 0o750, adopt=names, setting=key)
          for path, (key, names) in own.items()),
        Directory(layout.config_dir, "root", layout.group, 0o750),
        File(layout.config_path, "root", layout.group, 0o640, config_text, keep_existing=True,
             origin=config_origin),
    ]
    items += [File(f"{layout.unit_dir}/{unit}", "root", "root", 0o644, text)
              for unit, text in units.items()]
    items.append(File(layout.sudoers, "root", "root", 0o440, sudoers, verify=check_sudoers,
                      requires=lambda: require_sudo(tools_run)))
    items += [Link(f"{layout.bin_dir}/{layout.name}-{tool}", layout.program, wrapper_marker)
              for tool in tools]
    return items


def plan(root: Path, items: Sequence[Item]) -> list[Step]:
    """What applying would do, changing nothing."""
    steps = [item.check(root) for item in items]
    if _reload_needed(root, steps):
        steps.append(Step("systemd", "daemon-reload", "update", "new or changed units"))
    return steps


def apply(root: Path, items: Sequence[Item], programs: Programs | None = None) -> list[Step]:
    """Make the target look like the items; returns the steps, as :func:`plan` saw them."""
    tools = programs or Programs()
    steps = plan(root, items)
    for item, step in zip(items, steps, strict=False):
        if step.changes:
            item.apply(root, tools)
    if steps and steps[-1].kind == "systemd":
        run([tools.systemctl, "daemon-reload"], "reloading systemd")
    return steps


def _reload_needed(root: Path, steps: Sequence[Step]) -> bool:
    units = any(s.changes and s.target.endswith(".service") for s in steps)
    return units and systemd_runs(root)


def running(root: Path, units: Sequence[str], programs: Programs | None = None) -> list[str]:
    """Those of ``units`` that systemd runs now: each runs the program and the unit it was
    started with until it is restarted, whatever setup has installed since (an upgrade)."""
    if not units or not systemd_runs(root):
        return []
    tools = programs or Programs()
    try:
        done = subprocess.run([tools.systemctl, "is-active", "--", *units],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []  # not knowing, setup says what it said before: how to start them
    # one state a line, in the order asked; exit 3 where one is not active
    states = done.stdout.split()
    return [unit for unit, now in zip(units, states, strict=False)
            if now in ("active", "activating", "reloading")]


def systemd_runs(root: Path) -> bool:
    """Whether ``root`` is the running system and systemd runs it: an image or a test tree
    has no manager to reload, nor units to stop."""
    return root == Path("/") and Path("/run/systemd/system").is_dir()

