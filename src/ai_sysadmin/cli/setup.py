"""``ai-sysadmin setup``: install the daemon as systemd services (other distributions than
NixOS, whose module does the same declaratively)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from ..config import (
    ENV_CONFIG,
    Settings,
    load_settings,
    named_config,
    short_hostname,
    validation_message,
)
from ..errors import AiSysadminError, ConfigError
from ..setup_host import (
    Layout,
    ProgramPaths,
    Step,
    apply,
    build,
    find_templates,
    new_config,
    plan,
    removal_plan,
    running,
    sudoers_text,
    uninstall,
)
from ..setup_host.install import SECURE_PATH, Item
from ..setup_host.reach import require_reach
from ..setup_host.steps import under
from ..setup_host.uninstall import earlier_names, renamed_items
from .admin import MARKER, executable, shadowed, shadowing
from .context import err, out, print_json, say_notes, state
from .dispatch import TOOLS


def setup(
    ctx: typer.Context,
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
        metavar="DIR", help="Where the {name}-* links go: an absolute path of the target "
        "system (under --root, if given).")] = "/usr/local/bin",
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
    is kept. A config named with --config (or AI_SYSADMIN_CONFIG) is the one installed and
    planned from; one installed already must then be the same. --uninstall takes it back
    (the config, the state and the account stay)."""
    _refuse_call(dry_run, bin_dir)
    target = root.absolute()
    given = named_config(state(ctx).config_path)
    config = _config_to_uninstall(target, given) if remove else _config(target, given)
    existing = config.settings
    # an existing config's state directory is where the daemon writes: the units, the user's
    # home and the directory made here follow it
    layout = Layout(name=_name(name, config), program=str(_program(program)), user=user,
                    group=user, bin_dir=bin_dir,
                    **({"state_dir": str(existing.state_dir)} if existing else {}))
    items = _items(target, layout, config, find_templates(templates))
    if not remove:
        _refuse_shadowing(target, layout)
        require_reach(target, layout, _settings(layout, config), _where(config))
    steps = _steps(target, layout, items, dry_run, remove)
    runs = [] if remove else running(
        target, [f"{layout.name}-{suffix}.service" for suffix in ("ai", "llm-worker")])
    _report(steps, layout, dry_run, as_json, remove, runs)


def _refuse_call(dry_run: bool, bin_dir: str) -> None:
    if os.geteuid() != 0 and not dry_run:
        raise AiSysadminError("setup creates accounts and system files: run it as root "
                              "(or see what it would do with --dry-run)")
    if not bin_dir.startswith("/"):
        # a path of the target system, not of this shell: ./bin was taken from / (on a
        # merged-usr system, the links went into /usr/bin)
        raise typer.BadParameter(f"{bin_dir!r} is relative: name the directory of the target "
                                 "system by its absolute path (such as /usr/local/bin)",
                                 param_hint="'--bin-dir'")


def _steps(target: Path, layout: Layout, items: list[Item], dry_run: bool,
           remove: bool) -> list[Step]:
    """What setup (or ``remove``: --uninstall) does, done (or, ``dry_run``, planned)."""
    if remove:
        # ai_name changed since the last setup: what the old name left runs the daemon too
        steps = _take_back_earlier(target, layout, dry_run)
        return steps + (removal_plan(target, items, MARKER) if dry_run
                        else uninstall(target, items, MARKER))
    # what setup refuses (another's files, another's account) it refuses before the old
    # name's units below are taken away: a refused setup changes nothing
    plan(target, items)
    # ai_name changed since the last setup: the old name's daemon goes, or two would run
    steps = _take_back_earlier(target, layout, dry_run)
    return steps + (plan(target, items) if dry_run else apply(target, items))


def _refuse_shadowing(target: Path, layout: Layout) -> None:
    """The {name}-* commands may not stand in the way of the target's own programs (ai_name
    "apt": apt-config, which apt's daily jobs run), looked for where sudo looks."""
    links = [under(target, f"{layout.bin_dir}/{layout.name}-{tool}") for tool in TOOLS]
    if found := shadowed(links, [under(target, d) for d in SECURE_PATH]):
        raise shadowing(found, "name the assistant otherwise (ai_name in the config, or "
                        "--name)")


def _take_back_earlier(root: Path, layout: Layout, dry_run: bool) -> list[Step]:
    """Stop and remove the units and commands an earlier setup installed under another
    name than ``layout.name`` (or say so, on a dry run)."""
    steps: list[Step] = []
    for old in earlier_names(root, layout):
        earlier = renamed_items(layout, old, list(TOOLS))
        steps += (removal_plan(root, earlier, MARKER) if dry_run
                  else uninstall(root, earlier, MARKER))
    return steps


@dataclasses.dataclass(frozen=True)
class _Config:
    """The config setup plans from: ``path`` as seen from here, ``settings`` (None: there is
    none yet, setup writes one), ``text``: what to install (None: the installed one or a new
    one)."""

    path: Path
    settings: Settings | None = None
    text: str | None = None


def _config(root: Path, given: Path | None) -> _Config:
    """The config named with --config or AI_SYSADMIN_CONFIG is the one the daemon gets: it is
    installed where the units read it, unless that place holds another one, which setup
    never overwrites. Without one: the installed config, if any."""
    installed = under(root, f"{Layout.config_dir}/config.toml")
    if given is None:
        return _Config(installed, _read(installed) if installed.is_file() else None)
    path = given.absolute()
    settings = _read(path)
    text = path.read_text(encoding="utf-8")
    if installed.is_file() and not (installed.samefile(path)
                                    or installed.read_text(encoding="utf-8") == text):
        raise AiSysadminError(
            f"{installed} is installed and differs from {path}: setup never overwrites an "
            f"installed config; put your changes there (or remove it), then run setup without "
            f"--config or {ENV_CONFIG}")
    return _Config(path, settings, text)


def _config_to_uninstall(root: Path, given: Path | None) -> _Config:
    """:func:`_config`, or, where it cannot be loaded, none: --uninstall is wanted most when
    the daemon refuses its config, and then takes back what setup installs by default and
    the units (and their commands) an earlier setup wrote under any other name."""
    try:
        return _config(root, given)
    except ConfigError as exc:
        err.print(f"note: {exc.source} cannot be loaded ({exc.problems[0]}"
                  f"{f'; {len(exc.problems) - 1} more' if len(exc.problems) > 1 else ''}): "
                  "taking back what setup installs by default and the units it wrote under "
                  "any name", markup=False, highlight=False, soft_wrap=True)
        return _Config(given.absolute() if given
                       else under(root, f"{Layout.config_dir}/config.toml"))


def _settings(layout: Layout, config: _Config) -> Settings:
    """What the daemon will read: the config's, or (there is none yet) what setup writes."""
    return config.settings or Settings.model_validate(
        {"ai_name": layout.name, "state_dir": layout.state_dir})


def _where(config: _Config) -> str:
    """Where a setting is set: the config planned from, or one to name with -c."""
    return (str(config.path) if config.settings
            else "a config file named with `ai-sysadmin -c FILE setup`")


def _items(root: Path, layout: Layout, config: _Config, templates: Path) -> list[Item]:
    settings = _settings(layout, config)
    # every program looked for first: those not found are named in one error, not one a run
    paths = ProgramPaths(root, _where(config))
    sudoers = sudoers_text(settings, layout.user, paths, "written by `ai-sysadmin setup`")
    setpriv = paths(settings.programs.setpriv)
    paths.check()
    return build(layout, settings, templates=templates, sudoers=sudoers,
                 config_text=config.text or new_config(layout), tools=list(TOOLS),
                 setpriv=setpriv,
                 wrapper_marker=MARKER, config_origin=str(config.path) if config.text else "")


def _read(path: Path) -> Settings:
    # the file the daemon will read, as it will read it: no AI_SYSADMIN_* of this shell
    loaded = load_settings(path, environ={})
    say_notes(loaded)
    return loaded.settings


def _name(given: str | None, config: _Config) -> str:
    if given is not None:
        try:
            Settings(ai_name=given, state_dir=Path("/"))
        except ValidationError as exc:  # a name commands and units cannot carry
            why = validation_message(exc.errors()[0])
            raise typer.BadParameter(f"{given!r}: {why}", param_hint="'--name'") from None
    if config.settings is not None:
        if given and given != config.settings.ai_name:
            if "ai_name" not in config.settings.model_fields_set:
                raise AiSysadminError(f"{config.path} sets no ai_name, so the assistant is "
                                      f"named after this host ({config.settings.ai_name!r}): "
                                      f'set ai_name = "{given}" there, or drop --name')
            raise AiSysadminError(f"{config.path} names the assistant "
                                  f"{config.settings.ai_name!r}: change ai_name there, or "
                                  "drop --name")
        return config.settings.ai_name
    return given or short_hostname()


def _program(given: Path | None) -> Path:
    if given is not None:
        found = str(given)
    elif Path(sys.argv[0]).name == "ai-sysadmin":
        found = sys.argv[0]
    else:
        found = shutil.which("ai-sysadmin") or "ai-sysadmin"
    return executable(found, "name the ai-sysadmin program with --program")


def _report(steps: list[Step], layout: Layout, dry_run: bool, as_json: bool,
            removed: bool = False, runs: Sequence[str] = ()) -> None:
    """``runs``: the units running now, which run what they started with until restarted:
    an upgrade's setup that said "start it" left the old program running, and a unit
    already running is not started again by `enable --now`."""
    if as_json:
        print_json([{**dataclasses.asdict(s), "changes": s.changes} for s in steps])
        return
    changes = [s for s in steps if s.changes]
    for step in steps:
        verb = f"would {step.action}" if dry_run and step.changes else step.action
        out.print(f"  {verb:<14} {step.kind:<9} {step.target}  {step.detail}".rstrip(),
                  markup=False, highlight=False, soft_wrap=True)
    restart = (f"{' and '.join(runs)} still run{'s' if len(runs) == 1 else ''} what "
               f"{'it' if len(runs) == 1 else 'they'} started with: restart to run what is "
               f"installed now: systemctl restart {' '.join(runs)}")
    if not changes:
        out.print("nothing to change" + (f"; {restart}" if runs else ""), highlight=False,
                  markup=False)
    elif dry_run:
        out.print(f"{len(changes)} changes; nothing done (--dry-run)", highlight=False)
    elif removed:
        out.print(f"{len(changes)} changes. Kept: {layout.config_path}, {layout.state_dir} "
                  f"and the account {layout.user}", markup=False, highlight=False)
    elif runs:
        out.print(f"{len(changes)} changes. {restart}", markup=False, highlight=False)
    else:
        out.print(f"{len(changes)} changes. Start it: systemctl enable --now "
                  f"{layout.name}-ai.service", markup=False, highlight=False)
