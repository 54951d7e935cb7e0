"""The library's warnings that a person at the command line must see, said on stderr.

The library logs to its channels: the daemon's records go to its files and its journal, and
a command sends none to the terminal (``main``), because a command says what matters in its
own words. But some warnings are about the operator's own setup, met by whichever command
touches it first, and no command's words carry them: a known_hosts line skipped, a host key
trusted on first use (ssh says that too), a setting that is not used, a credential file every
user can read, a knowledge base that would not open. Those, named by their ``event``, are
said here: ``warning: ...`` once per text, masked, on one line of visible characters (they
quote paths, git's and the host's words). A command that says one itself (``notify``: a
readable credential) is left to say it alone, and a runtime warning (a retry, a lease lost)
stays in the log: the command reports what came of it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from .context import err

#: the events a person running a command is told of, whatever the command
TOLD = frozenset({
    "known_hosts_skipped",    # a line of known_hosts checks no host
    "host_key_trusted",       # trust_on_first_use recorded a host's key: from now on it is
                              # the key that host must show
    "host_key_not_recorded",  # ... or could not: the host is refused
    "config_repo_unusable",   # config_repo is set, and not used
    "config_repo_failed",     # config_repo could not be fetched: what is read of it is old
    "config_file_failed",     # a file of config_repo was not indexed
    "knowledge_unavailable",  # the knowledge base did not open: nothing is recalled
    "knowledge_unreadable",   # records this version cannot read were left out
    "learn_failed",           # a fix that worked taught nothing
    "credential_readable",    # a credential file every user can read
    "notify_misconfigured",   # notifications wait in the outbox until a setting is mended
    "worker_gone",            # the LLM worker a conversation relied on stopped: it answers
                              # its own requests from then on
    "withdraw_failed",        # a question given up (Ctrl-C, a timeout) could not be taken
                              # out of an unreachable queue: it may be answered for nobody
})

#: what a command says itself, in its own words (or, for ``eval``, its table: the records
#: are those of the daemons its harness runs)
SAID_BY: dict[str, frozenset[str]] = {
    "notify": frozenset({"credential_readable", "notify_misconfigured"}),
    "knowledge": frozenset({"knowledge_unreadable"}),
    "configs": frozenset({"config_file_failed", "config_repo_failed"}),
    "eval": TOLD,
}

#: the most characters of one warning (a path, git's words and a host's fill a line or two)
LIMIT = 500
#: the most warnings of one event a command says (a knowledge base a newer version wrote
#: into has a record left out a line each); the rest are counted at its end
PER_EVENT = 3


class TerminalWarnings(logging.Handler):
    """Says each warning of :data:`TOLD` once; ``command``: the command running."""

    def __init__(self, command: str | None) -> None:
        super().__init__(logging.WARNING)
        self.skipped = SAID_BY.get(command or "", frozenset())
        self.said: set[str] = set()
        #: per event: how many were said, how many more were not
        self.count: dict[str, int] = {}
        self.more: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        if event not in TOLD or event in self.skipped:
            return
        try:
            text = _one_line(record.getMessage())
        except Exception:  # a record that cannot be formatted: logging's own report
            self.handleError(record)
            return
        if text in self.said:
            return
        self.said.add(text)
        if self.count.get(event, 0) >= PER_EVENT:
            self.more[event] = self.more.get(event, 0) + 1
            return
        self.count[event] = self.count.get(event, 0) + 1
        _say(text)

    def said_more(self) -> None:
        """How many warnings like those said were left unsaid."""
        for event, more in self.more.items():
            _say(f"{more} more like these ({event}) not shown")
        self.more.clear()


def _say(text: str) -> None:
    with contextlib.suppress(OSError):  # a closed terminal takes no warning
        err.print(f"warning: {text}", markup=False, highlight=False, soft_wrap=True)


def _one_line(text: str) -> str:
    from ..logs import visible
    from ..redact import redact

    shown = visible(redact(text))
    return shown if len(shown) <= LIMIT else shown[:LIMIT - 1] + "…"


_active: list[TerminalWarnings] = []


@contextlib.contextmanager
def shown(command: str | None) -> Iterator[None]:
    """While a command runs, the library's warnings it must show reach the terminal."""
    library = logging.getLogger("ai_sysadmin")
    if not library.handlers:
        # the library's records go to the log files (`run` sets them up), never to the
        # terminal by logging's last resort (after the command too, in-process): a command
        # says what matters itself, once, and this handler the few it leaves to it
        library.addHandler(logging.NullHandler())
    handler = TerminalWarnings(command)
    library.addHandler(handler)
    _active.append(handler)
    try:
        yield
    finally:
        handler.said_more()
        _active.remove(handler)
        library.removeHandler(handler)
        for channel in _channels():
            channel.removeHandler(handler)


def on_channels() -> None:
    """The channels' records, once sent to the log files (which stops them at the channel,
    ``logs.configure``), reach the terminal too."""
    for handler in _active[-1:]:
        for channel in _channels():
            if handler not in channel.handlers:
                channel.addHandler(handler)


def _channels() -> list[logging.Logger]:
    from ..logs import CHANNELS, channel_logger

    return [channel_logger(name) for name in CHANNELS]
