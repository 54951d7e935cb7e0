"""``ai-sysadmin setup``: install the daemon as systemd services (other distributions than
NixOS, whose module does the same declaratively)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..config import Settings, load_settings, short_hostname
from ..errors import AiSysadminError
from ..setup_host import (
    Layout,
    Step,
    apply,
    build,
    find_templates,
    new_config,
    plan,
    program_path,
    removal_plan,
    sudoers_text,
    uninstall,
)
from ..setup_host.steps import under
from ..setup_host.uninstall import earlier_names, renamed_items
from .admin import MARKER
from .context import out, print_json
from .dispatch import TOOLS


def setup(
    name: Annotated[str | None, typer.Option(
        metavar="NAME", help="The assistant's name (default: ai_name of an existing config, "
        "else the short hostname).", show_default=False)] = None,
    root: Annotated[Path, typer.Option(
        metavar="DIR", help="Install into this directory tree instead of the running system.")
    ] = Path("/"),
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print what would change; change nothing.")] = False,
    program: Annotated[Path | None, typer.Option(
        metavar="PATH", help="The ai-sysadmin executable the units run (default: this one).",
        show_default=False)] = None,
    user: Annotated[str, typer.Option(
        metavar="USER", help="The account the daemon runs as.")] = "ai-sysadmin",
    bin_dir: Annotated[str, typer.Option(
        metavar="DIR", help="Where the {name}-* links go.")] = "/usr/local/bin",
    templates: Annotated[Path | None, typer.Option(
        metavar="DIR",
        help="Directory of the unit templates (default: installed, else packaging/systemd).",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    remove: Annotated[bool, typer.Option(
        "--uninstall", help="Take back what setup installed: stop and remove the units, the "
        "sudoers drop-in and the commands; keep the config, the state and the account.")
    ] = False,
) -> None:
    """Install the daemon (run as root): the ai-sysadmin user (in adm and systemd-journal,
    where each exists), /var/lib/ai-sysadmin, /etc/ai-sysadmin/config.toml with every key,
    the {name}-ai and {name}-llm-worker units, the sudoers drop-in for the fixes (checked by
    visudo) and the {name}-* commands. Running it again changes nothing; an existing config
    is kept. --uninstall takes it back (the config, the state and the account stay)."""
    if os.geteuid() != 0 and not dry_run:
        raise AiSysadminError("setup creates accounts and system files: run it as root "
                              "(or see what it would do with --dry-run)")
    target = root.absolute()
    existing = _existing_settings(target)
    # an existing config's state directory is where the daemon writes: the units, the user's
    # home and the directory made here follow it
    layout = Layout(name=_name(name, existing), program=str(_program(program)), user=user,
                    group=user, bin_dir=bin_dir,
                    **({"state_dir": str(existing.state_dir)} if existing else {}))
    config_text = new_config(layout)
    settings = existing or Settings.model_validate(
        {"ai_name": layout.name, "state_dir": layout.state_dir})
    sudoers = sudoers_text(settings, layout.user, lambda p: program_path(target, p),
                           "written by `ai-sysadmin setup`")
    items = build(layout, settings, templates=find_templates(templates), sudoers=sudoers,
                  config_text=config_text, tools=list(TOOLS),
                  setpriv=program_path(target, settings.programs.setpriv),
                  wrapper_marker=MARKER)
    if remove:
        steps = (removal_plan(target, items, MARKER) if dry_run
                 else uninstall(target, items, MARKER))
    else:
        # ai_name changed since the last setup: the old name's daemon goes, or two would run
        steps = []
        for old in earlier_names(target, layout):
            earlier = renamed_items(layout, old, list(TOOLS))
            steps += (removal_plan(target, earlier, MARKER) if dry_run
                      else uninstall(target, earlier, MARKER))
        steps += plan(target, items) if dry_run else apply(target, items)
    _report(steps, layout, dry_run, as_json, remove)


def _existing_settings(root: Path) -> Settings | None:
    # the file the daemon will read, as it will read it: no AI_SYSADMIN_* of this shell
    path = under(root, f"{Layout.config_dir}/config.toml")
    return load_settings(path, environ={}).settings if path.is_file() else None


def _name(given: str | None, existing: Settings | None) -> str:
    if existing is not None:
        if given and given != existing.ai_name:
            raise AiSysadminError(f"the existing config names the assistant "
                                  f"{existing.ai_name!r}: change ai_name there, or drop --name")
        return existing.ai_name
    chosen = given or short_hostname()
    Settings(ai_name=chosen, state_dir=Path("/"))  # refuses a name commands cannot carry
    return chosen


def _program(given: Path | None) -> Path:
    if given is not None:
        found = str(given)
    elif Path(sys.argv[0]).name == "ai-sysadmin":
        found = sys.argv[0]
    else:
        found = shutil.which("ai-sysadmin") or "ai-sysadmin"
    if "/" in found:
        # `sudo .venv/bin/ai-sysadmin setup`: the units and links need it from anywhere
        found = os.path.abspath(found)
    if not found.startswith("/") or not os.access(found, os.X_OK):
        raise AiSysadminError(f"{found} is not an executable path: name the ai-sysadmin "
                              "program with --program")
    return Path(found)


def _report(steps: list[Step], layout: Layout, dry_run: bool, as_json: bool,
            removed: bool = False) -> None:
    if as_json:
        print_json([{**dataclasses.asdict(s), "changes": s.changes} for s in steps])
        return
    changes = [s for s in steps if s.changes]
    for step in steps:
        verb = f"would {step.action}" if dry_run and step.changes else step.action
        out.print(f"  {verb:<14} {step.kind:<9} {step.target}  {step.detail}".rstrip(),
                  markup=False, highlight=False, soft_wrap=True)
    if not changes:
        out.print("nothing to change", highlight=False)
    elif dry_run:
        out.print(f"{len(changes)} changes; nothing done (--dry-run)", highlight=False)
    elif removed:
        out.print(f"{len(changes)} changes. Kept: {layout.config_path}, {layout.state_dir} "
                  f"and the account {layout.user}", markup=False, highlight=False)
    else:
        out.print(f"{len(changes)} changes. Start it: systemctl enable --now "
                  f"{layout.name}-ai.service", markup=False, highlight=False)
