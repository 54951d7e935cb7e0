"""The library's exception tree.

The library raises these; only the CLI and the daemon turn them into a one-line message and an
exit code.
"""

from __future__ import annotations


class AiSysadminError(Exception):
    """Base of every error the library raises on purpose."""


class ConfigError(AiSysadminError):
    """A configuration file or environment variable that cannot be used."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class SecretFileError(AiSysadminError):
    """A file that should hold a credential cannot be used (the message never quotes it)."""


class TransportError(AiSysadminError):
    """A command could not be started on a host, or it timed out."""


class NotStarted(TransportError):
    """Nothing of the command ran on the host: it was never sent (no connection to the host,
    no session on it, a host that is no longer managed, an argv no transport sends, a process
    this machine could not start), or the host would not start it (:class:`ProgramMissing`,
    :class:`CommandRefused`). Any other :class:`TransportError` of a command came once it was
    sent, or may have (past its time, its connection lost once it went out, more output than
    is read): it ran, or may have, and how it ended is not known."""


class CommandTimeout(TransportError):
    """A command (or a check script) ran past its time and was stopped: it ran, or may have
    (a host that never opened its session is told from one whose command hung only by the
    time it took), so it is no :class:`NotStarted`."""


class NoAnswer(CommandTimeout):
    """The host sent nothing back in the time, not even the first line of a check script, or
    nothing more once part of its reply came (nor its sshd an answer on the connection), or
    not the opening of a session: not a step that runs long, nor a stuck shell, but a host
    that stopped answering (frozen, or cut off by a partition that sends no reset, before
    its reply or in the middle of it). Its connection is dropped, so
    the next command connects afresh; a check reports the host unreachable, and sends it
    nothing more."""


class ProgramMissing(NotStarted):
    """The program a command names is not on the host (not installed, not on its PATH): no
    process started. A fact of the host, told by the system itself (ENOENT here; a shell's
    or timeout's "not found" and exit 127 there), never by words a host could print. A
    program that is there but could not start now (this machine out of processes or memory,
    no permission to run it) raises a plain :class:`NotStarted`, which says nothing of what
    the host has.

    ``program``: the program as the command named it."""

    def __init__(self, message: str, program: str = "") -> None:
        super().__init__(message)
        self.program = program


class LocalLimit(NotStarted):
    """This machine, not the host, lacked what a command needs (this process's open files ran
    out: a fleet larger than its limit): the host was not asked, and is neither reached nor
    unreachable. A check says so and judges nothing of the host."""


class CommandRefused(NotStarted):
    """The host answered and took the login, but would not run what it was sent: the account's
    login shell is no shell (nologin, /bin/false), or sudo wants a password for a fix. Not a
    host that cannot be reached: its words say what to change there.

    ``status`` is the exit status it ended with; ``said``, its own words (one line, bounded:
    host text).
    """

    def __init__(self, message: str, status: int | None = None, said: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.said = said


class SudoRefused(CommandRefused):
    """sudo itself refused to run a fix (a password it may not ask for, no rule that allows
    it, a tty it wants): nothing of the command ran. Not a command that ran and failed, whose
    exit status and stderr are its own result."""


class StoreError(AiSysadminError):
    """The state database cannot be opened or migrated."""


class StoreInUse(StoreError):
    """A command refused to upgrade a file of an older schema that another process (an older
    daemon, its worker) has open. ``said`` holds :data:`SERVICES` where the services to
    restart are named, which a caller that knows their units names (:meth:`naming`)."""

    SERVICES = "ai-sysadmin's services (the daemon and the LLM worker)"

    def __init__(self, said: str) -> None:
        super().__init__(said)
        self.said = said

    def naming(self, services: str) -> StoreInUse:
        return StoreInUse(self.said.replace(self.SERVICES, services))


class StoreRefused(StoreError):
    """The machine refused the state database a write or an open (a read-only file system, a
    full disk, a lock held past the busy timeout, a failing disk): not ours to mend, and it
    lasts until a person mends it, unlike the store's other errors (an action decided
    meanwhile, an incident resolved meanwhile)."""


class LabError(AiSysadminError):
    """The fault lab could not be started, driven or stopped."""


class NotFoundError(AiSysadminError):
    """A named object (incident, scenario, log channel) does not exist."""


class KnowledgeError(AiSysadminError):
    """The knowledge base cannot be opened or used: a ChromaDB server that is down or refuses
    the token, a corrupt directory, an embedding model that fails its checksum."""


class KnowledgeOff(KnowledgeError):
    """``knowledge.enabled = false``: there is no knowledge base to open."""

    def __init__(self) -> None:
        super().__init__("the knowledge base is off (knowledge.enabled = false in the config)")


class EmbeddingError(KnowledgeError):
    """The embedding model cannot be loaded or run (missing file, wrong checksum, Ollama down)."""


class AlreadyRunning(AiSysadminError):
    """Another daemon holds the state directory: two would notify twice and take over each
    other's investigations and fixes."""
