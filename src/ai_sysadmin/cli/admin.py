"""Small operator commands: ``config show``, ``logs``, ``commands install``, ``run``."""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import os
import shlex
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import logs as logfiles
from ..errors import AiSysadminError
from .context import (
    MAX_LINES,
    a_host,
    banner,
    check_startable,
    err,
    load_config,
    out,
    print_json,
    state,
)
from .dispatch import TOOLS

if TYPE_CHECKING:
    from ..config import LoadedSettings, Settings

config_app = typer.Typer(help="Inspect the configuration.")
commands_app = typer.Typer(help="The {name}-<tool> commands.")


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print key -> {value, source} as JSON, values with their types.")] = False,
) -> None:
    """The effective settings, where each value comes from, secrets masked; what `run`
    would refuse of them is said last, on stderr (`config check` exits 2 for it)."""
    loaded = state(ctx).loaded
    _show_settings(loaded, as_json)
    try:
        check_startable(loaded)
    except AiSysadminError as exc:
        # shown all the same: a person who may read the config and not the files of its
        # secrets (the daemon's) reads it to see what it says
        from ..monitor.findings import masked

        err.print(f"warning: `run` would refuse it: {masked(str(exc))}", markup=False,
                  highlight=False, soft_wrap=True)


def _show_settings(loaded: LoadedSettings, as_json: bool) -> None:
    from ..config import effective_rows

    rows = effective_rows(loaded)
    if as_json:
        kinds = _leaves(loaded.settings.model_dump(mode="json"))
        print_json({k: {"value": v if isinstance(kinds.get(k), str) else json.loads(v),
                        "source": s} for k, v, s in rows})
        return
    found = "" if loaded.config_found else " (not present: embedded defaults)"
    banner(loaded.settings, f"configuration from {loaded.config_path}{found}")
    out.print("# file: set in that file; env VAR: set by that variable; unmarked: the default",
              style="dim", markup=False, highlight=False, soft_wrap=True)
    kinds = _leaves(loaded.settings.model_dump(mode="json"))
    # a line a setting, as TOML writes it, not a table: a table's columns are as wide as its
    # widest value (a list of 20 patterns) on every line, 276 columns in a pipe and keys
    # folded in two at 80; a line wraps at the terminal's edge under its own key, and in a
    # pipe stays whole for grep
    width = max(out.width, 20) if out.is_terminal else None  # 20: room past the indent
    for key, value, source in rows:
        shown = json.dumps(value, ensure_ascii=False) if isinstance(kinds.get(key), str) \
            else value
        mark = "" if source == "default" else "  # " + (
            "file" if source.startswith("file ") else source)
        line = f"{key} = {shown}{mark}"
        for part in textwrap.wrap(line, width, subsequent_indent="    ",
                                  break_on_hyphens=False) if width else [line]:
            out.print(part, markup=False, highlight=False, soft_wrap=True)


@config_app.command("check")
def config_check(ctx: typer.Context) -> None:
    """Whether `run` would start on the configuration: exit 0, or 2 with what it refuses.
    Before SIGHUP or a restart of the daemon (the daemon checks it on SIGHUP too)."""
    loaded = state(ctx).loaded
    check_startable(loaded)
    found = "" if loaded.config_found else " (not present: embedded defaults)"
    out.print(f"{loaded.config_path}{found}: ok", markup=False, highlight=False,
              soft_wrap=True)


def _leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value. The table shows every value as text; JSON gives a number or a
    boolean back its type (a string stays the masked text the table shows)."""
    found: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            found.update(_leaves(value, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = value
    return found


def logs(
    ctx: typer.Context,
    channel: Annotated[
        str, typer.Argument(help=f"One of: {', '.join(logfiles.CHANNELS)}, audit.")
    ] = "orchestrator",
    lines: Annotated[int, typer.Option(
        "-n", "--lines", min=1, max=MAX_LINES, metavar="N", help="How many records (the newest).")
    ] = 50,
    host: Annotated[str | None, typer.Option(
        metavar="HOST", help="Only this host's records: the host's, its incidents' and its "
        "actions'.", callback=a_host)] = None,
    since: Annotated[str | None, typer.Option(
        metavar="WHEN", help="Only records since then: an age (30s, 10m, 2h, 3d, 1w) or a "
        "local time (2026-12-06 21:00).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON.")] = False,
) -> None:
    """The project's own structured logs; `audit`: every decision, from the state database."""
    app_state = state(ctx)
    settings = app_state.settings
    start = None if since is None else since_time(since, time.time())
    if channel == "audit":
        records = [{"ts": r["at"], "level": "audit", "name": settings.ai_name,
                    "msg": f"{r['actor']} {r['action']} {r['subject']}: {r['detail']}"}
                   for r in app_state.store.audit_log(lines, host, start)]
    elif channel in logfiles.CHANNELS:
        of_host = None if host is None else logfiles.OfHost(
            host, *app_state.store.ids_of_host(host))
        records = logfiles.read(settings.log_dir, channel, lines, of_host, start)
    else:
        raise AiSysadminError(f"no log channel {channel!r}; channels: "
                              f"{', '.join(logfiles.CHANNELS)}, audit")
    if as_json:
        print_json(records)
        return
    if not records:
        which = "".join([f" of {host}" if host is not None else "",
                         f" since {_when(start)}" if start is not None else ""])
        out.print(f"no {channel} records{which or ' yet'}", markup=False)
        return
    from ..llm.strict_json import readable
    from ..logs import visible
    from ..monitor.findings import masked

    for r in records:
        when = _when(r.get("ts"))
        extra = {
            k: v for k, v in r.items() if k not in {"ts", "level", "name", "channel", "msg"}
        }
        tail = " ".join(f"{k}={v}" for k, v in extra.items() if v not in (None, {}, []))
        # an audit record holds a person's words as typed (a reason quoting the line they
        # changed), a log file whatever wrote it: masked as --json masks them, and on one
        # line, as the daemon's stderr writes a record (a failed fix's stderr is the host's,
        # and a line break in it posed as a record of ours: "... alice action.approved ...");
        # a lone surrogate (a hand-edited "\ud800") as U+FFFD, which a terminal can be sent
        line = (f"{when} [{r.get('name', settings.ai_name)}] {r.get('level', '?')}: "
                f"{r.get('msg', '')} {tail}")
        out.print(visible(masked(readable(line.rstrip()))), markup=False, highlight=False)


#: the units of an age given to ``--since``, in seconds
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def since_time(text: str, now: float) -> float:
    """``--since``: an age before ``now`` (``10m``) or a local date and time, as a time."""
    given = text.strip()
    # any case but M, which may be read as months
    last = given[-1:]
    unit = _AGE_UNITS.get(last if last == "M" else last.lower())
    if unit is not None:
        try:
            age = float(given[:-1])
        except ValueError:
            age = math.nan
        # an age past any clock (1e308w) means since ever, not since -inf
        if math.isfinite(age) and age >= 0:
            return max(now - age * unit, 0.0) if math.isfinite(age * unit) else 0.0
    else:
        try:
            when = datetime.datetime.fromisoformat(given)
        except ValueError:
            pass
        else:
            try:
                return when.timestamp()
            except (OverflowError, OSError, ValueError) as exc:
                raise AiSysadminError(f"--since {text!r}: no time this machine's clock can "
                                      f"name ({exc})") from exc
    raise AiSysadminError(f"--since {text!r} is neither an age (30s, 10m, 2h, 3d, 1w) nor a "
                          "local date and time (2026-12-06 21:00)")


def _when(ts: object) -> str:
    """A record's time as local time; ``?`` for one that has none a clock can show (nor a
    ``true``, which is no time though Python counts it as 1)."""
    if isinstance(ts, bool):
        return "?"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts)))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


#: the second line of every command ``commands install`` writes: how it knows its own files
MARKER = "# made by `ai-sysadmin commands install`"

_WRAPPER = """#!{python}
{marker}: {name} runs `ai-sysadmin{config_shown} {tool}`
import sys

from ai_sysadmin.cli.main import main

sys.exit(main(sys.argv[1:], argv0=sys.argv[0], config={config!r}))
"""


def executable(found: str, hint: str) -> Path:
    """``found`` as the absolute path of an executable file (units, links and shebangs need
    it from anywhere), or an error that ends with ``hint``: how to name the right one."""
    if "/" in found:
        # `sudo .venv/bin/ai-sysadmin setup`: relative to here, not to where it is run from
        found = os.path.abspath(found)
    if not found.startswith("/") or not os.path.isfile(found) or not os.access(found, os.X_OK):
        raise AiSysadminError(f"{found} is not an executable path: {hint}")
    return Path(found)


def _for_shebang(python: str) -> str:
    """``python``, if a ``#!`` line can name it: the kernel ends the interpreter's path at the
    first blank, and every command would fail to start ("required file not found")."""
    if any(c.isspace() for c in python):
        raise AiSysadminError(f"{python!r} has whitespace in its path, which a #! line cannot "
                              "hold: name the Python by a path without it with --python (a "
                              "symlink to it will do)")
    return python


def _python_with_ai_sysadmin(given: Path) -> str:
    """``given`` as a Python the commands can run under: the first thing each does is import
    ai_sysadmin.cli.main, so one that cannot would make every command fail."""
    import subprocess

    python = _for_shebang(str(executable(str(given), "name the Python that has ai-sysadmin "
                                                     "installed with --python")))
    try:
        done = subprocess.run([python, "-c", "import ai_sysadmin.cli.main"], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AiSysadminError(f"{python} cannot be run: {exc}") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise AiSysadminError(f"{python} cannot import ai_sysadmin ({last}): name the Python "
                              "that has ai-sysadmin installed with --python")
    return python


def _shown(path: str) -> str:
    """``path`` for the wrapper's comment line: quoted as a shell would take it, its control
    characters escaped (a newline in it ended the comment, and the rest was Python to run)."""
    from ..logs import visible

    return visible(shlex.quote(path))


def shadowed(paths: list[Path], path: list[Path]) -> list[str]:
    """Of the commands about to be written (``paths``, in one directory), the programs of
    their names found in a directory of ``path`` (a PATH) other than theirs: ai_name "pkg"
    made pkg-config, which /usr/local/bin put ahead of the system's, and builds and apt's
    daily jobs ran ours. A command ``commands install`` or setup made elsewhere is no
    other program."""
    import shutil

    if not paths:
        return []
    home = paths[0].parent
    elsewhere = os.pathsep.join(str(d) for d in path if d.is_absolute() and d.is_dir()
                                and not _same_dir(d, home))
    found = (shutil.which(p.name, path=elsewhere) for p in paths)
    return [where for where in found if where is not None and not _ours(Path(where))]


def _same_dir(one: Path, other: Path) -> bool:
    try:
        return one.samefile(other)
    except OSError:
        return False


def shadowing(found: list[str], instead: str) -> AiSysadminError:
    """The error for commands that would stand in the way of the programs ``found``;
    ``instead``: what to do."""
    return AiSysadminError(f"{', '.join(found)} {'is' if len(found) == 1 else 'are'} already "
                           "on PATH: a command of the same name for this ai_name would run "
                           f"in its place (or never run); {instead}")


def _ours(path: Path) -> bool:
    """Made by ``commands install``: a wrapper with the marker, or the symlink to the
    ai-sysadmin program that earlier versions made."""
    if path.is_symlink():
        return Path(os.readlink(path)).name == "ai-sysadmin"
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return handle.readline().startswith("#!") and handle.readline().startswith(MARKER)
    except OSError:
        return False


def _check_bin_dir(bin_dir: Path) -> None:
    """Refuse a ``--bin-dir`` that is no directory, saying what is there instead."""
    if bin_dir.is_dir():
        return
    # a file where a directory should be (the directory itself or one above it) is no
    # directory mkdir -p could make
    there = next((p for p in (bin_dir, *bin_dir.parents) if p.exists() or p.is_symlink()),
                 None)
    if there is not None and not there.is_dir():
        inside = "" if there == bin_dir else f" (on the way to {bin_dir})"
        raise AiSysadminError(f"{there} is not a directory{inside}: name a directory with "
                              "--bin-dir")
    # a mistyped directory is said, not made: nothing is written on an error
    raise AiSysadminError(f"{bin_dir} is not a directory: create it (mkdir -p "
                          f"{shlex.quote(str(bin_dir))}) or name another with --bin-dir")


@commands_app.command("install")
def commands_install(
    ctx: typer.Context,
    bin_dir: Annotated[Path, typer.Option(
        metavar="DIR", help="Where to put the commands (a directory that exists).")]
    = Path("/usr/local/bin"),
    python: Annotated[Path | None, typer.Option(
        metavar="PATH", help="The Python that has ai-sysadmin installed (default: this one); "
        "it must import ai_sysadmin.", show_default=False)] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace files of these names that something else made; write "
        "commands named as programs elsewhere on PATH.")] = False,
) -> None:
    """Make the {name}-<tool> commands for the configured name, each carrying this config.

    A file of the same name that this command did not make is never replaced, nor a command
    written whose name a program elsewhere on PATH has (ai_name "pkg": pkg-config), without
    --force.
    """
    import sys

    _check_bin_dir(bin_dir)
    interpreter = (_for_shebang(sys.executable) if python is None
                   else _python_with_ai_sysadmin(python))
    loaded = state(ctx).loaded
    name = loaded.settings.ai_name
    paths = {tool: bin_dir / f"{name}-{tool}" for tool in TOOLS}
    foreign = [p for p in paths.values() if (p.exists() or p.is_symlink()) and not _ours(p)]
    folders = [p for p in foreign if p.is_dir() and not p.is_symlink()]
    if folders:
        raise AiSysadminError(f"{folders[0]} is a directory; remove it first")
    if foreign and not force:
        raise AiSysadminError(f"{foreign[0]} exists and was not made by `commands install`; "
                              "remove it, or replace it with --force")
    path = [Path(d) for d in os.environ.get("PATH", os.defpath).split(os.pathsep) if d]
    if not force and (found := shadowed(list(paths.values()), path)):
        raise shadowing(found, "set another ai_name, or write them anyway with --force")
    config = str(loaded.config_path.resolve()) if loaded.config_found else None
    for tool, path in paths.items():
        text = _WRAPPER.format(python=interpreter, marker=MARKER, name=path.name,
                               config_shown=f" --config {_shown(config)}" if config else "",
                               tool=" ".join(TOOLS[tool]), config=config)
        # written beside it and renamed over it: a running command never sees half a file
        temp = path.with_name(f".{path.name}.new")
        temp.write_text(text, encoding="utf-8")
        temp.chmod(0o755)
        temp.replace(path)  # over a symlink too: the link itself is replaced
    banner(loaded.settings, f"{len(paths)} commands in {bin_dir}"
           + (f", with the config {_shown(config)}" if config else ""))
    for path in paths.values():
        out.print(f"  {path.name}")


def run(ctx: typer.Context) -> None:
    """Run the daemon: checks every interval plus a journal follower; stops on SIGTERM."""
    app_state = state(ctx)
    settings = app_state.settings
    from ..orchestrator.daemon import build_daemon
    from ..orchestrator.lock import held_by_this_daemon
    from ..redact import redact

    check_startable(app_state.loaded, opening=False)  # opened below, each refusal said there
    # before anything is opened or recovered: a second daemon, refused, has touched nothing
    with held_by_this_daemon(settings.state_dir):
        logfiles.configure(settings.log_dir, settings.ai_name, console=True, mask=redact)
        daemon = _opened(lambda: build_daemon(app_state.runtime(consumer="daemon"),
                                              follow_config=app_state.loaded.lists_the_fleet),
                         settings)
        # SIGHUP stops it for its unit to start it again on the changed file: only a file
        # that start would take, else the unit stayed stopped (exit 2) and nothing watched
        daemon.config_check = lambda: check_startable(_reread(app_state.loaded))
        asyncio.run(daemon.run())


def _reread(started: LoadedSettings) -> LoadedSettings:
    """The config as it is now where the daemon's start read it: the command has since
    become the state's owner, whose home (a ``~``, the default path) is not the one the
    start had. No file there still: the defaults it started on."""
    path = started.config_path
    if started.config_found or path.exists() or path.is_symlink():
        return load_config(path)
    return started


#: the daemon's exit when its state database cannot be opened for now (sysexits' EX_TEMPFAIL):
#: the units start it again (Restart=on-failure), as they do not after exit 2
EXIT_TRY_AGAIN = 75


def _opened(build: Any, settings: Settings) -> Any:
    """The daemon ``build()`` makes, its state database and its queue (investigations) opened.
    One the machine refuses for now (a full disk, commonly /var: a daemon restarted on it
    cannot make its WAL's files; a backup's lock) ends the daemon so that its unit starts it
    again until it opens: exit 2, an error a person must mend in ai-sysadmin, left it stopped
    after the disk had room."""
    from ..errors import StoreRefused
    from ..llm.queue import QueueError
    from ..orchestrator.store_down import OutageRecord, tell_not_opened
    from ..store.refused import passing, refused_why
    from .context import err

    try:
        return build()
    except (StoreRefused, QueueError) as exc:
        # the queue's file is a database of the same kind, its refusal the queue's error's cause
        refusal = exc if isinstance(exc, StoreRefused) else exc.__cause__
        if not isinstance(refusal, StoreRefused) or not passing(refusal):
            raise
        what = "the state database" if refusal is exc else "its queue"
        # its own checks cannot say the full disk under it: said around the store, once
        told = asyncio.run(tell_not_opened(settings, OutageRecord.of_unit(), what, str(exc),
                                           refused_why(refusal)))
        err.print(f"error: {exc}; exit {EXIT_TRY_AGAIN}: started again by its unit, it "
                  f"watches once {what} opens; {told}", markup=False, highlight=False,
                  soft_wrap=True)
        raise typer.Exit(EXIT_TRY_AGAIN) from None
