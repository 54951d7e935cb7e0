"""What every command needs: the loaded settings, the store, consoles that honour --json."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

if TYPE_CHECKING:  # every command module imports this one: the heavy layers load on use
    from ..config import LoadedSettings, Settings
    from ..orchestrator.runtime import Runtime
    from ..store import IncidentStore

#: SQLite's largest INTEGER: an id past it is refused at the edge, not by the database
MAX_ID = 2**63 - 1


def id_argument(what: str) -> Any:
    """A positional id (incident, action): a positive integer SQLite can hold."""
    return typer.Argument(min=1, max=MAX_ID, metavar="ID", help=f"The {what}'s id.",
                          show_default=False)


def a_host(value: str | None) -> str | None:
    """A host name given to a command: an empty one (a script's unset variable) is refused,
    where it read as no name at all, every host."""
    if value is not None and not value.strip():
        raise typer.BadParameter("an empty host name names no host; leave it out for every "
                                 "host")
    return value


IncidentId = Annotated[int, id_argument("incident")]
ActionId = Annotated[int, id_argument("action")]

#: the most a ``-n`` asks for (log records, an incident's events, deliveries): more than any
#: log or history keeps, small enough that reading it stays a bounded amount of memory and
#: far below what SQLite's LIMIT can hold
MAX_LINES = 1_000_000

#: the width when writing to a pipe or a file: as wide as a line is, like journalctl, so
#: a table or a log line read by grep or a script is never folded at 80 columns
PIPE_WIDTH = 100_000


def name_order(name: str) -> tuple[list[str | int], str]:
    """A host's place in a list: h2 before h10, web9 before web10, as a person counts a
    fleet (in plain text order h1, h10, h100 and h2 come first)."""
    # re.split with one group alternates text and digits, text first: the same index holds
    # the same kind in every name, so any two keys compare
    parts = re.split(r"(\d+)", name)
    return [int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)], name


def _console(stream: TextIO | None, stderr: bool = False) -> Console:
    # no markup unless a print asks for it (markup=True, each value through esc): what is
    # printed is mostly a host's text, and a process named "x[/b]" must print as it is; no
    # emoji codes either, which rich replaces even without markup (a passwd line's
    # "root:x:0:0" printed as "root❌0:0"). ``stream`` None: Python found that descriptor
    # closed (`2>&-`), and rich writes nowhere
    return Console(stderr=stderr, highlight=False, markup=False, emoji=False,
                   width=None if stream is not None and stream.isatty() else PIPE_WIDTH)


def esc(value: object) -> str:
    """A value as plain text inside a markup print."""
    return escape(str(value))


def cell(text: str, style: str) -> Text:
    """A table cell in a style (tables print their strings as they are)."""
    return Text(text, style=style)


out = _console(sys.stdout)
err = _console(sys.stderr, stderr=True)


#: commands that need root as root (accounts and system files, the fault lab's namespaces,
#: commands in /usr/local/bin); every other one works as the daemon works
AS_ROOT = frozenset({"setup", "drill", "eval", "commands"})


def say_notes(loaded: LoadedSettings) -> None:
    """A note for each setting no release reads any more (an upgrade keeps the last release's
    config), and for a config file that holds a password every user may read: said, never
    refused."""
    for said in (*loaded.retired, *loaded.notes):
        err.print(f"note: {said}", markup=False, highlight=False, soft_wrap=True)


@dataclass
class AppState:
    config_path: Path | None = None
    #: ``hal-check`` when run by that name: what help and errors call the command
    tool: str | None = None
    #: the command being run (the root callback says which)
    command: str | None = None
    _loaded: LoadedSettings | None = field(default=None, repr=False)

    @property
    def loaded(self) -> LoadedSettings:
        if self._loaded is None:
            loaded = load_config(self.config_path)
            say_notes(loaded)
            self._loaded = loaded
            if self.command not in AS_ROOT:
                as_state_owner(loaded.settings.state_dir)
        return self._loaded

    @property
    def settings(self) -> Settings:
        return self.loaded.settings

    @cached_property
    def store(self) -> IncidentStore:
        from ..errors import StoreInUse
        from ..store import Database, IncidentStore

        # the daemon upgrades an older file at its start; a command beside an older daemon
        # leaves it as it is
        try:
            return IncidentStore(Database(self.settings.db_path, service=self.command == "run"))
        except StoreInUse as exc:
            units = " ".join(self.settings.own_units[:2])
            raise exc.naming("ai-sysadmin's services (the daemon and the LLM worker: systemctl "
                             f"restart {units})") from None

    def log_to_files(self) -> bool:
        """A command that acts (approves, rejects, ends incidents) sends the library's records
        to the log files the daemon writes, as the state directory's owner (settings load
        first), so `logs actions` shows what it did. Files it cannot write are said once on
        stderr and cost nothing else: the audit still holds every decision. True: they are
        written."""
        from .. import logs as logfiles
        from ..redact import redact
        from .library_warnings import on_channels

        settings = self.settings
        written = True
        try:
            logfiles.configure(settings.log_dir, settings.ai_name, mask=redact)
        except OSError as exc:
            written = False
            err.print(f"note: not logged in {settings.log_dir}: {exc.strerror or exc}; "
                      "`logs audit` still records it", markup=False, highlight=False,
                      soft_wrap=True)
        # configured or half so, a channel's warnings for the terminal are said (once)
        on_channels()
        return written

    def runtime(self, consumer: str = "check", store: bool = True) -> Runtime:
        """The hosts, checkers, facts and executor, built the one way the daemon builds
        them; ``store=False``: nothing recorded (``check --no-store``)."""
        from ..orchestrator.runtime import Runtime
        from .identity import actor

        # what its transports decide alone (a host key trusted on first use) is the daemon's
        # under `run`, else the decision of the person whose command it is
        who = "daemon" if consumer == "daemon" else actor()
        return Runtime(self.settings, self.store if store else None, consumer=consumer,
                       actor=who)


def as_state_owner(state_dir: Path) -> None:
    """Run as the user the state directory belongs to, where root runs a command on a
    daemon's state (``sudo hal-approve approve 3``): what the command writes there (the
    store's journal files, lessons in the knowledge base, log files) stays the daemon's,
    which could not write them again were they root's, and ``~/.ssh`` is the daemon's own,
    so a host reached from the command line is reached as the daemon reaches it. The config
    is read first, as root; everything after is read as the daemon reads it."""
    import os
    import pwd

    if os.geteuid() != 0:
        return
    from .identity import keep_caller

    keep_caller()  # a decision is root's (or sudo's caller's), not the daemon's account's
    try:
        owner = state_dir.stat().st_uid
    except OSError:
        return  # not there yet: root's command makes it, as a first check without setup does
    if owner == 0:
        return
    try:
        account = pwd.getpwuid(owner)
        os.initgroups(account.pw_name, account.pw_gid)
        os.setgid(account.pw_gid)
    except KeyError:  # an owner with no account: its id alone
        os.setgroups([])
        os.setgid(state_dir.stat().st_gid)
        account = None
    os.setuid(owner)
    if account is not None:
        os.environ["HOME"] = account.pw_dir


def load_config(path: Path | None) -> LoadedSettings:
    """The config at ``path`` (None: where ``AI_SYSADMIN_CONFIG`` or the default says), read
    as every command reads it."""
    from ..config import load_settings

    loaded = load_settings(path)
    _check_safety(loaded)
    return loaded


def check_startable(loaded: LoadedSettings, opening: bool = True) -> None:
    """What ``run`` refuses at its start beyond the settings' own rules, each an error (exit
    2, the unit left stopped): checked by ``config show`` and ``config check``, and by the
    daemon on SIGHUP before it stops to start again on the changed file. The notification
    channels are built (the Apprise URLs file read), and the LLM's key read where the
    daemon's own worker sends it; a knowledge server's token file every user may read is
    warned of, as the other credential files are. ``opening``: the state database and the
    queue are tried too, as the start opens them (a file read-only to the daemon, a Redis
    password the server refuses), nothing made or changed; ``run`` itself opens them right
    after, where a refusal that passes (a full disk) exits 75 for its unit to try again."""
    from ..errors import ConfigError
    from ..llm.backends import check_api_key
    from ..llm.queue import check_opens as queue_opens
    from ..notify.channels import build_channels
    from ..store.db import check_opens as store_opens

    settings = loaded.settings
    if settings.gotify_url and settings.gotify_token_file is None:
        raise ConfigError(loaded.blamed("gotify_url"), [
            "key 'gotify_token_file': gotify_url is set: name the file that holds the Gotify "
            "app token"])
    build_channels(settings)
    if settings.agent.investigate and settings.queue.embedded_worker:
        check_api_key(settings.llm)
    knowledge = settings.knowledge
    if knowledge.enabled and knowledge.url and knowledge.token_file:
        from ..knowledge.store import warn_if_token_readable

        warn_if_token_readable(knowledge.token_file)
    if opening:
        store_opens(settings.db_path)
        if settings.agent.investigate:
            queue_opens(settings)


def _check_safety(loaded: LoadedSettings) -> None:
    """What the config layer cannot judge alone: protected unit names by systemd's rules.

    The executor would fail closed on a bad entry (every unit protected); refusing it at load
    says which entry is wrong before the daemon runs for days doing nothing.
    """
    from ..errors import ConfigError
    from ..safety.protected import configured_problem

    units = loaded.settings.safety.protected_units
    origin = loaded.source_of("safety.protected_units")
    problems = [f"key 'safety.protected_units' ({origin}): entry {i + 1}: {why}"
                for i, entry in enumerate(units) if (why := configured_problem(entry))]
    if problems:
        raise ConfigError("the environment" if origin.startswith("env ")
                          else str(loaded.config_path), problems)


def state(ctx: typer.Context) -> AppState:
    obj = ctx.find_root().obj
    if not isinstance(obj, AppState):
        obj = AppState()
        ctx.find_root().obj = obj
    return obj


def print_json(data: Any) -> None:
    """``--json``'s output, every text in it masked as the tables mask it: it carries host
    text (a command's stderr, a journal line, a unit's status) and the model's, and a
    script's output lands in CI logs and tickets as often as a table does. JSON's escaping
    already keeps control characters off the terminal; the secrets are this one place's
    to mask, so that no command's JSON is left to remember it."""
    from ..redact import redact_values

    sys.stdout.write(json.dumps(redact_values(data), indent=2, default=str) + "\n")


def banner(settings: Settings, what: str, console: Console | None = None) -> None:
    (console or out).print(f"[bold]{esc(settings.ai_name)}[/bold] · {esc(what)}", markup=True)
