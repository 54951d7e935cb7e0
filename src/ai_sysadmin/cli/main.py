"""The Typer app and the entry point that turns library errors into one line and exit code 2.

Command modules load when their command runs (``lazy.py``): ``--help`` and ``--version``
import typer and rich, nothing of the library.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from typer._click import exceptions as click_exceptions

from .. import __version__
from .. import logs as logfiles
from ..errors import AiSysadminError
from . import library_warnings
from .context import AppState, err
from .dispatch import PROGRAM, dispatch
from .lazy import COMMANDS, LazyGroup, load

app = typer.Typer(
    cls=LazyGroup,
    name="ai-sysadmin",
    help="A careful autonomous system administrator. Run `check` for a health check now.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    context_settings={"help_option_names": ["-h", "--help"]},
    # plain help: flags without a "<bool>" type, no boxes cut at the terminal's edge
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"ai-sysadmin {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", metavar="FILE", help="Config file (env AI_SYSADMIN_CONFIG).",
            show_default=False,
        ),
    ] = None,
    _version: Annotated[bool, typer.Option(
        "--version", "-V", help="Print the version and exit.", is_eager=True,
        callback=_print_version)] = False,
) -> None:
    if config is not None or not isinstance(ctx.obj, AppState):
        ctx.obj = AppState(config_path=config)
    ctx.obj.command = ctx.invoked_subcommand


@app.command()
def version() -> None:
    """Print the version."""
    sys.stdout.write(f"ai-sysadmin {__version__}\n")


def _usage_error(exc: click_exceptions.ClickException) -> int:
    """A mistyped command line is one line on stderr, exit 2 (never a help screen)."""
    hint = ""
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and ctx.command_path:
        hint = f" (see `{ctx.command_path} --help`)"
    message = exc.format_message().replace("\n", " ")
    err.print(f"error: {message}{hint}", markup=False, highlight=False, soft_wrap=True)
    return exc.exit_code


def _negative_number(exc: click_exceptions.NoSuchOption,
                     args: list[str]) -> click_exceptions.ClickException:
    """click reads ``-1`` as an option; to a command that takes a number (``issues show -1``,
    ``approve discuss -1``) it is that number, refused as the number's own range refuses it,
    not as "No such option". ``args``: the command line click read."""
    ctx = exc.ctx
    if ctx is not None and exc.option_name[1:].isdigit():
        for param in ctx.command.params:
            descriptor = getattr(param, "type_descriptor", None)
            if param.param_type_name == "argument" and getattr(descriptor, "annotation",
                                                               None) is int:
                try:
                    param.process_value(ctx, exc.option_name)
                except click_exceptions.BadParameter as refused:
                    return refused
    # to a command that takes text, any word with a dash may be text (`ask "-cpu at 100%"`)
    return _text_behind_dashes(exc, args)


def _text_behind_dashes(exc: click_exceptions.NoSuchOption,
                        args: list[str]) -> click_exceptions.ClickException:
    """A word that starts with a dash, to a command that takes text (``ask -5 degrees?``),
    may be that text: where it is close to none of the command's options, the error says
    how to give it (after ``--``), as the person typed it: click names only the option it
    read (``-c`` of ``"-cpu at 100%"``)."""
    ctx = exc.ctx
    if ctx is None or exc.possibilities:
        return exc
    text = next((p for p in ctx.command.params if p.param_type_name == "argument" and getattr(
        getattr(p, "type_descriptor", None), "annotation", None) is str), None)
    if text is None:
        return exc
    name = text.metavar or (text.name or "TEXT").upper()
    typed = next((word for word in args[_command_at(args) + 1:]
                  if word.startswith(exc.option_name)), exc.option_name + " ...")
    return click_exceptions.UsageError(
        f"No such option: {exc.option_name}; as {name}, text that starts with a dash goes "
        f"after `--`: {ctx.command_path} -- {shlex.quote(typed)}", ctx)


def _command_at(args: list[str]) -> int:
    """Where the command word is: behind the CLI's own ``-c``/``--config``, its value given
    as the next word or joined to it (``-c/x.toml``, ``--config=/x.toml``)."""
    i = 0
    while i < len(args):
        if args[i] in ("-c", "--config"):
            i += 2
        elif args[i].startswith("--config=") or (args[i].startswith("-c") and len(args[i]) > 2):
            i += 1
        else:
            break
    return i


def list_behind_the_group(args: list[str]) -> list[str]:
    """A group that lists when given no command lists when given only the list's options:
    ``approve --all`` is ``approve list --all``, as ``approve`` is ``approve list``. An
    option the group itself takes (``--help``) stays the group's."""
    i = _command_at(args)
    if i + 1 >= len(args) or args[i] not in COMMANDS or not args[i + 1].startswith("-"):
        return args
    group = load(args[i])
    commands = getattr(group, "commands", {})
    own = {opt for p in getattr(group, "params", ()) for opt in getattr(p, "opts", ())}
    word = args[i + 1].split("=", 1)[0]
    if "list" not in commands or word in own or word in ("--", "-h", "--help"):
        return args
    return [*args[:i + 1], "list", *args[i + 1:]]


def json_behind_the_command(args: list[str]) -> list[str]:
    """``--json`` is one way to ask for JSON, anywhere on the line: before the command words
    (or after a positional of a command that stops parsing options there, as ``policy check``
    does) it moves to just behind them. Nothing after ``--`` is touched."""
    end = args.index("--") if "--" in args else len(args)
    if "--json" not in args[:end]:
        return args
    head = [a for a in args[:end] if a != "--json"]
    i = _command_at(head)
    if i < len(head) and head[i] in COMMANDS:
        i += 1
        group = load(head[i - 1])
        commands = getattr(group, "commands", {})
        if i < len(head) and head[i] in commands:
            i += 1
        elif "list" in commands and not any("--json" in getattr(p, "opts", ())
                                            for p in getattr(group, "params", ())):
            # a group that lists when given no command (`issues`): `issues --json` is
            # `issues list --json`
            head.insert(i, "list")
            i += 1
    return [*head[:i], "--json", *head[i:], *args[end:]]


#: what else ends a command as Ctrl-C does: a stop (kill, a service manager, `timeout`) and
#: a terminal that closed. Ended so, what the command holds is given back as Ctrl-C gives it
#: back (an approval that ran nothing waits for a person again), never left to a dead process
STOPS = (signal.SIGTERM, signal.SIGHUP)
#: the stops that came to the command running now (its ``came``)
_came_now: list[int] = []


def stop_came() -> signal.Signals | None:
    """The stop (SIGTERM, SIGHUP) that came to the command running now, if one did. The
    KeyboardInterrupt it made ends the command, where a person's Ctrl-C may end only what
    they waited on (a chat withdraws its question and goes on)."""
    return signal.Signals(_came_now[0]) if _came_now else None


@contextlib.contextmanager
def _stopped_as_ctrl_c(came: list[int]) -> Iterator[None]:
    """While the command runs, SIGTERM and SIGHUP do what SIGINT does; ``came``: the signals
    that came (:func:`stop_came` says the first). One ignored where it was inherited
    (``nohup``) stays ignored."""
    global _came_now

    def stop(signum: int, _frame: FrameType | None) -> None:
        came.append(signum)
        if signal.getsignal(signal.SIGINT) not in (signal.SIG_IGN, signal.SIG_DFL, None):
            # SIGINT's handler now: asyncio.run's cancels its task, so the work's own cleanup
            # runs; a daemon's stops it; Python's raises KeyboardInterrupt
            signal.raise_signal(signal.SIGINT)
            return
        # SIGINT ignored (a script's background job): what asyncio.run's would have done.
        # asyncio is a command's import, not the CLI's: where none ran, no loop is running
        asyncio = sys.modules.get("asyncio")
        loop = None
        if asyncio is not None:
            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_running_loop()
        if loop is None:
            raise KeyboardInterrupt
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.call_soon_threadsafe(lambda: None)  # a loop asleep in select() wakes to it

    before: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOPS:
            if signal.getsignal(sig) is signal.SIG_DFL:
                before[sig] = signal.signal(sig, stop)
    outer, _came_now = _came_now, came
    try:
        yield
    finally:
        _came_now = outer
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _interrupted(came: list[int]) -> int:
    """Said once, if the terminal is still there; the exit code a shell gives the signal.

    A stop, its work given back, ends the process by that very signal, as it would have
    without the handler: a service manager counts a SIGTERM death as a clean stop and an exit
    143 as a failure (a daemon stopped before its own handlers are set), and a parent shell
    sees what it always saw."""
    sig = came[0] if came else signal.SIGINT
    with contextlib.suppress(OSError):  # a terminal that hung up takes no message
        err.print("interrupted" if sig == signal.SIGINT
                  else f"stopped by {signal.Signals(sig).name}")
        sys.stderr.flush()
    if sig != signal.SIGINT:
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    return 128 + sig


def _ended_so(app_state: AppState, exc: BaseException, came: list[int]) -> int | None:
    """The exit code of a command that ``exc`` ended, where it is one of those said so;
    None for any other, which goes on."""
    if isinstance(exc, SystemExit) and isinstance(exc.__context__, OSError) \
            and exc.__context__.errno == errno.EPIPE:
        return _broken_pipe()  # typer's exit 1, which is "findings" to `check`
    # SIGTERM or SIGHUP cancelled asyncio.run's work (asyncio is loaded if it ran)
    asyncio = sys.modules.get("asyncio")
    if came and asyncio is not None and isinstance(exc, asyncio.CancelledError):
        return _interrupted(came)
    if (said := _store_unreadable(app_state, exc)) is not None:
        return _error(said)
    return None


def _broken_pipe() -> int:
    """The reader of the output went (``check --json | head -c1``): the exit code a shell
    gives a death by SIGPIPE, as coreutils die, with nothing said (the reader wanted no
    more). Typer exits 1, which is "findings" to ``check``, and said nothing either."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        # what Python flushes at its exit would fail again, with a traceback on stderr
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 128 + signal.SIGPIPE


def _not_utf8(args: list[str]) -> str | None:
    """The first argument that is not UTF-8, its bytes escaped as a shell's ``$'...'`` writes
    them; None when every one is. Python hands such bytes over as lone surrogates, which no
    database, file or terminal takes: refused here once, not wherever one is first written."""
    for arg in args:
        try:
            arg.encode()
        except UnicodeEncodeError:
            try:
                return repr(os.fsencode(arg))[1:]
            except UnicodeEncodeError:  # a surrogate that stands for no byte (in-process)
                return ascii(arg)
    return None


def _store_unreadable(app_state: AppState, exc: BaseException) -> str | None:
    """What the machine refused a read of the state database (a damaged file, a failing
    disk), naming the file and what to do, as its opening and its writes say theirs
    (StoreRefused); None for anything else. Its reads meet SQLite's own error, a traceback
    here before; the queue and the knowledge base say theirs in their own errors, so one
    that reaches here after the command opened the state database is that file's."""
    sqlite3 = sys.modules.get("sqlite3")  # loaded if any database was opened
    store = app_state.__dict__.get("store")  # AppState.store, if the command opened it
    if sqlite3 is None or store is None or not isinstance(exc, sqlite3.Error):
        return None
    return store.db.unreadable(exc)


def _error(text: str) -> int:
    """``text`` said as the command's error, on stderr: exit 2."""
    err.print(f"error: {text}", markup=False, highlight=False, soft_wrap=True)
    return 2


def _installed_config_gone(prog: str, args: list[str], config: str | None) -> str | None:
    """The config a ``{name}-<tool>`` command was installed with, moved or removed since,
    where the command uses it: what to do is to install the commands again, which "file does
    not exist" alone does not say."""
    if config is None or args[:2] != ["--config", config] or os.path.lexists(config):
        return None
    return (f"{config}: file does not exist; {prog} was made by `ai-sysadmin commands "
            "install` with this config: run `ai-sysadmin --config FILE commands install` "
            "again, naming the config where it is now")


def _refused_start(given: list[str]) -> str | None:
    """Why the command cannot start as it was started, if it cannot."""
    if sys.stdout is None:
        # started with descriptor 1 closed (`check >&-`): what the command prints has nowhere
        # to go, and the next file it opened (the store, a log) would be descriptor 1
        return ("standard output is closed: give the command one (>/dev/null to discard "
                "what it prints)")
    if (shown := _not_utf8(given)) is not None:
        return f"argument {shown} is not UTF-8"
    return None


def main(argv: list[str] | None = None, argv0: str | None = None,
         config: str | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 findings, 2 error). ``config``: the config
    file a ``{name}-<tool>`` command was installed with (``commands install``)."""
    given = list(sys.argv[1:] if argv is None else argv)
    if (refused := _refused_start(given)) is not None:
        return _error(refused)
    prog, args = dispatch(argv0 or sys.argv[0], given, config)
    if (moved := _installed_config_gone(prog, args, config)) is not None:
        return _error(moved)
    args = json_behind_the_command(list_behind_the_group(args))
    tool = prog if prog != PROGRAM else None
    came: list[int] = []
    at = _command_at(args)
    app_state = AppState(tool=tool)
    try:
        # the log files a command opens are closed when it ends, in-process too; of the
        # library's records, the terminal shows only the few `library_warnings` says
        with logfiles.kept(), library_warnings.shown(args[at] if at < len(args) else None), \
                _stopped_as_ctrl_c(came):
            code = app(args=args, prog_name="" if tool else prog, standalone_mode=False,
                       obj=app_state)
    except click_exceptions.NoArgsIsHelpError as exc:
        exc.show()
        return exc.exit_code
    except click_exceptions.NoSuchOption as exc:
        return _usage_error(_negative_number(exc, args))
    except click_exceptions.ClickException as exc:
        return _usage_error(exc)
    except (typer.Abort, KeyboardInterrupt):
        return _interrupted(came)
    except AiSysadminError as exc:
        # what failed may quote a host's words or a server's (a check that raised, a refusal):
        # masked as --json masks them, whichever command it ended
        from ..monitor.findings import masked

        return _error(masked(str(exc)))
    except BrokenPipeError:  # raised past typer (which makes it exit 1)
        return _broken_pipe()
    except OSError as exc:
        # what the machine refused (a file that cannot be read or written, a full disk) is
        # the user's to mend: one line, with the file, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        return _error(f"{where}{exc.strerror or exc}")
    except BaseException as exc:
        if (code := _ended_so(app_state, exc, came)) is not None:
            return code
        raise
    # typer ends a KeyboardInterrupt so (silently), whichever signal made it; a command that
    # stops on its own at a signal (the daemon, the worker) returns: ended by the signal all
    # the same, so SIGHUP is no clean exit 0, which Restart=on-failure would leave stopped
    # (the units restart a death by SIGHUP: RestartForceExitStatus)
    if code == 130 or came:
        return _interrupted(came)
    return code if isinstance(code, int) else 0


def entrypoint() -> None:
    sys.exit(main())
