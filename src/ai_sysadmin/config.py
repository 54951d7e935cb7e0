"""One settings object, declared once: TOML file + ``AI_SYSADMIN_*`` environment.

Precedence: embedded defaults < config file < environment. Every field carries a description;
``config show`` and the docs are generated from this declaration. A file that cannot be used is
refused with a :class:`ConfigError` naming the file, the dotted key and what is allowed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import posixpath
import re
import socket
import stat
import string
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError, SecretFileError

ENV_PREFIX = "AI_SYSADMIN_"
ENV_CONFIG = "AI_SYSADMIN_CONFIG"
AutonomyLevel = Literal["observe", "suggest", "auto-safe", "auto-full"]
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def short_hostname(fqdn: str | None = None) -> str:
    """``server.example.com`` -> ``server``, lower-cased, safe for command names."""
    name = (fqdn or socket.gethostname()).split(".")[0].lower()
    # ai_name must start with a letter or digit: '_gw' made a default its own rule refused
    name = re.sub(r"[^a-z0-9_-]", "-", name).lstrip("_-").rstrip("-")[:32]
    return name or "sysadmin"


def is_root() -> bool:
    return os.geteuid() == 0


def _xdg_base(variable: str, fallback: str) -> Path:
    """``$variable``, else ``~/fallback``: a relative value is ignored, as the XDG spec says
    (it named a state directory the settings refused as relative, blaming a config file that
    was not there, and a config file under whatever directory the command ran in)."""
    base = Path(os.environ.get(variable) or "")
    return base if base.is_absolute() else Path.home() / fallback


def default_config_path() -> Path:
    if is_root():
        return Path("/etc/ai-sysadmin/config.toml")
    return _xdg_base("XDG_CONFIG_HOME", ".config") / "ai-sysadmin" / "config.toml"


def default_state_dir() -> Path:
    if is_root():
        return Path("/var/lib/ai-sysadmin")
    return _xdg_base("XDG_STATE_HOME", ".local/state") / "ai-sysadmin"


#: a login name as ssh takes it, in a remote system's entry and as ``[ssh] user``: a local
#: account (``deploy``) or a directory's fully qualified one (``jane.doe@corp.example`` of
#: SSSD/AD, often past 32 characters: ssh splits ``user@host`` at its last '@'). Never a word
#: ssh or a shell would read as something else: no leading '-' (an option of ``ssh -l``),
#: '@' (an empty user) or trailing '@', no whitespace, control characters, quotes or ';'
_USER = r"[A-Za-z0-9_.](?:[A-Za-z0-9_.@+-]{0,254}[A-Za-z0-9_.+-])?"
#: what is said of a login name that is not one
USER_RULE = ("must be a login name: 1-256 letters, digits, '.', '_', '+', '-' or '@' (as in "
             "jane.doe@corp.example), starting with a letter, digit, '.' or '_' and not "
             "ending with '@'")
_TARGET = re.compile(rf"^(?:(?P<user>{_USER})@)?(?P<host>\[[^\]]*\]|[^@:\[\]]*)"
                     r"(?::(?P<port>[0-9]+))?$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})$")
#: RFC 1035: a name is at most 253 characters
MAX_HOST_LENGTH = 253


def check_host(host: str) -> str:
    """A host name or address as SSH takes it (an IPv6 literal without its brackets)."""
    if not host or len(host) > MAX_HOST_LENGTH:
        raise ValueError(f"a host name is 1-{MAX_HOST_LENGTH} characters (got {len(host)})")
    if ":" in host:
        if not _is_ipv6(host):
            raise ValueError(f"{host[:80]!r} is not an IPv6 address")
        return str(ipaddress.IPv6Address(host))
    if not all(_HOST_LABEL.match(label) for label in host.removesuffix(".").split(".")):
        raise ValueError(f"{host[:80]!r} is not a host name (labels of 1-63 letters, digits, "
                         "'-' or '_') or an IP address")
    return host


def check_user(user: str) -> str:
    """A login name as :data:`_USER` takes it, for a remote system's entry and ``[ssh] user``
    alike."""
    if not re.fullmatch(_USER, user):
        raise ValueError(USER_RULE)
    return user


def machine_name(host: str) -> str:
    """A host's name as one machine has it: DNS names are case-insensitive and a rooted
    ``web1.`` is ``web1``, so ``WEB1`` and ``web1.`` name the machine ``web1`` does."""
    return host.lower().removesuffix(".")


def machine_of(host: str, port: int | None) -> tuple[str, int]:
    """What makes two targets one machine. The user is only an account on it; DNS names are
    case-insensitive and a rooted ``web1.`` is ``web1``. A target without port is taken for
    22, like ``:22``: ssh's own port, where ~/.ssh/config names no other, so they may well
    reach the same place, and one machine checked twice costs more than a twin refused."""
    return machine_name(host), port or 22


def split_target(entry: str) -> tuple[str | None, str, int | None]:
    """``host``, ``user@host:port``, ``[::1]:2222``, ``admin@[::1]``: (user, host, port).

    The one grammar of a remote system, for the config and for ``systems add`` alike; a bare
    IPv6 address (``::1``) is taken whole, since its colons are not a port. The port is None
    where none is written: ~/.ssh/config may name it, where a written one (``:22`` too) wins.
    The user ends at the last '@', as ssh reads it (``jane.doe@corp.example@web1``).
    """
    text = entry.strip()
    user, at, rest = text.rpartition("@") if "@" in text else (None, "", text)
    if ":" in rest and not rest.startswith("[") and _is_ipv6(rest):
        if user and not re.fullmatch(_USER, user):
            raise ValueError(f"{entry[:80]!r}: its user {USER_RULE}")
        return user or None, str(ipaddress.IPv6Address(rest)), None
    match = _TARGET.match(text)
    if not match:
        raise ValueError(f"{entry[:80]!r} is not 'host', 'user@host', 'user@host:port' or "
                         "'[IPv6]:port'")
    host = match["host"]
    if not host:
        raise ValueError(f"{entry[:80]!r} names no host")
    if host.startswith("[") and ":" not in host:
        raise ValueError(f"{entry[:80]!r}: {host} is not an IPv6 address")
    try:
        host = check_host(host.removeprefix("[").removesuffix("]"))
    except ValueError as exc:
        # a bare host is the entry: what check_host says names it already
        raise ValueError(str(exc) if host == text else f"{entry[:80]!r}: {exc}") from None
    if match["port"] is None:
        return match["user"], host, None
    port = int(match["port"])
    if not 0 < port < 65536:
        raise ValueError(f"{entry[:80]!r}: port {match['port']} is not 1-65535")
    return match["user"], host, port


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def check_server_url(value: str, schemes: tuple[str, ...] = ("http", "https"),
                     kind: str = "an http:// or https:// URL") -> int | None:
    """A server's URL as a setting names it: one of ``schemes``, a host name or address, and a
    port 1-65535 if one is given (returned). What is wrong is said without the URL, which may
    hold a password; a URL that cannot work is refused at load, not by every request later."""
    what = f"must be {kind} with a valid host and port"
    try:
        parts = urlsplit(value)
    except ValueError:  # an unclosed '[' of an IPv6 address
        raise ValueError(f"{what} (it does not parse as a URL)") from None
    if parts.scheme.lower() not in schemes:
        raise ValueError(what)
    if not parts.hostname:
        raise ValueError(f"{what} (it names no host)")
    try:
        check_host(parts.hostname)
    except ValueError as exc:
        raise ValueError(f"{what} ({exc})") from None
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"{what} (its port is not 1-65535)")
    return port


def bracketed(host: str) -> str:
    """A host as it stands before ``:port``: an IPv6 address in brackets (``[::1]``)."""
    return f"[{host}]" if ":" in host else host


def join_target(user: str | None, host: str, port: int | None = None) -> str:
    """The entry :func:`split_target` reads back as (user, host, port): a port written
    (``:22`` too) stays written, as it wins over ~/.ssh/config."""
    return f"{user + '@' if user else ''}{bracketed(host)}{f':{port}' if port is not None else ''}"


_DAY = 86_400.0
_YEAR = 366 * _DAY
#: the seconds of each unit a duration setting is written in
_UNIT_SECONDS = {"seconds": 1.0, "minutes": 60.0, "hours": 3_600.0, "days": _DAY}


def _at_most(longest: float, said: str, unit: str) -> AfterValidator:
    """The ceiling of a duration setting: ``longest`` seconds (``said`` in words), checked in
    the setting's own ``unit``. A finite number past any sensible length passed and broke
    later: a timeout of 1e300 s overflowed the socket's, an approval that expires in 1e300
    hours could not be shown as a date."""
    most = longest / _UNIT_SECONDS[unit]

    def check(value: float) -> float:
        if value > most:
            raise ValueError(f"must be at most {said} ({most:.0f} {unit})")
        return value

    return AfterValidator(check)


#: how long one thing may take or be waited for (a timeout, a lease): a day is no limit already
Timeout = Annotated[float, _at_most(_DAY, "a day", "seconds")]


def _absolute_file(value: Path | None) -> Path | None:
    """A file named in the config: ``~`` is the home of whoever reads the config, as every
    path setting takes it; a relative name (or an empty one, ".") followed the working
    directory of each command: it worked from a shell and failed in the daemon, run from /."""
    if value is None:
        return None
    value = value.expanduser()
    if not value.is_absolute():
        raise ValueError("must be an absolute path (a relative one would follow the working "
                         "directory of each command; the daemon's is /)")
    return value


class _HoldsACredential:
    """Marks a setting whose value names a file that holds a credential: what is refused
    there is never shown, as a token pasted where its file's path goes would be."""


def _ssh_file(value: Path | None) -> Path | None:
    """A file SSH reads (a key, known_hosts): absolute, or under ``~``, which is left for SSH
    to expand as the user that connects (a command run with sudo reads the config as root,
    then reaches hosts as the daemon's user, with its ~/.ssh)."""
    if value is None or str(value).startswith("~") or value.is_absolute():
        return value
    raise ValueError("must be an absolute path or one under ~ (a relative one would follow "
                     "the working directory of each command; the daemon's is /)")


#: a file SSH reads: absolute or under ``~`` (:func:`_ssh_file`)
SshFile = Annotated[Path, AfterValidator(_ssh_file)]
#: a file the config names that holds a credential: absolute, ``~`` expanded
CredentialFile = Annotated[Path | None, AfterValidator(_absolute_file), _HoldsACredential()]
#: a window, an interval, an age or a delay, in the unit its key names
Seconds = Annotated[float, _at_most(_YEAR, "a year", "seconds")]
Minutes = Annotated[float, _at_most(_YEAR, "a year", "minutes")]
Hours = Annotated[float, _at_most(_YEAR, "a year", "hours")]
Days = Annotated[float, _at_most(_YEAR, "a year", "days")]


class _Section(BaseModel):
    # inf would let a timeout never end and an interval never come round; nan compares false
    # with every bound, so neither may pass a number's limits
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


class LLMSettings(_Section):
    backend: Literal["ollama", "openai"] = Field(
        "ollama", description="Wire protocol: Ollama native or OpenAI-compatible (llama.cpp, vLLM)."
    )
    url: str = Field("http://127.0.0.1:11434", description="Base URL of the LLM server.")
    model: str = Field("qwen2.5:7b-instruct", description="Model name as the server knows it.")
    api_key_file: CredentialFile = Field(None, description="File holding the API key, if any.")
    timeout: Timeout = Field(120.0, gt=0, description="Seconds to wait for one answer.")
    context_size: int = Field(
        16384, ge=512, description="Context window in tokens (Ollama's num_ctx; for another "
        "server, what it was started with). It must hold agent.max_context_chars of "
        "conversation (logs and process lists run at 2-3 characters a token), the tools' "
        "descriptions (about 2,200 tokens) and the answer.",
    )
    temperature: float = Field(0.1, ge=0, le=2, description="Sampling temperature.")
    connect_timeout: Timeout = Field(5.0, gt=0, description="Seconds to wait for a connection.")
    response_format: Literal["json_schema", "json_object"] = Field(
        "json_schema",
        description="How the OpenAI backend asks for an answer held to a JSON schema (agent "
        "mode 'evidence'): 'json_schema' (OpenAI, vLLM, llama.cpp's llama-server) or "
        "'json_object' with the schema beside it (llama-cpp-python's server).",
    )
    max_tokens: int | None = Field(
        None, ge=1, description="The most tokens one answer may have; unset: the server's own "
        "limit. A small model that rambles until its context is full is cut here.",
    )

    @field_validator("model")
    @classmethod
    def _named_model(cls, value: str) -> str:
        # every request named no model: the server's refusal came at each investigation
        if not value.strip():
            raise ValueError("must name the model, as the server knows it")
        return value

    @field_validator("url")
    @classmethod
    def _server_url(cls, value: str) -> str:
        if "://" in value:
            check_server_url(value)
        # Ollama's convention (OLLAMA_HOST) lets a bare host:port stand for http://host:port;
        # a bare word without a port is more likely a slip than a host name
        elif check_server_url(f"http://{value}") is None:
            raise ValueError("must be an http:// or https:// URL with a valid host and port, "
                             "or a bare host:port (http)")
        return value

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> LLMSettings:
        # the HTTP client sends a URL's user:password as Basic authentication, in place of
        # the key's Bearer header: the key would never reach the server, unsaid
        url = self.url if "://" in self.url else f"http://{self.url}"
        if self.api_key_file is not None and "@" in urlsplit(url).netloc:
            raise ValueError("llm.url carries a user name or password (user:password@host), "
                             "which is sent as HTTP Basic authentication in place of the key "
                             "of llm.api_key_file: set one of them, not both")
        return self


#: the shortest queue.lease_seconds
MIN_LEASE_SECONDS = 1.0
#: the shortest idle time after which the daemon closes the knowledge base (0: never)
MIN_KNOWLEDGE_IDLE_SECONDS = 60.0
#: the least agent.max_context_chars: an incident's evidence and a tool's answer
MIN_CONTEXT_CHARS = 2000


class QueueSettings(_Section):
    url: str = Field(
        "sqlite://",
        description="'sqlite://' (a file in state_dir) or 'redis://host:port/db' to share one "
        "queue between workers on several machines.",
    )
    concurrency: int = Field(1, ge=1, description="LLM requests served at once per backend.")
    lease_seconds: Timeout = Field(
        60, gt=0, description="A request whose worker stops renewing for this long is retried "
        "(with SQLite, one whose `ask` or `chat` process is gone is withdrawn) "
        f"(at least {MIN_LEASE_SECONDS:g} s: the worker renews it every third of it).",
    )
    wait_timeout: Timeout = Field(
        300, gt=0, description="Seconds a client waits for an answer before giving up politely."
    )
    embedded_worker: bool = Field(
        True, description="`run` serves the queue itself; turn off when `worker`s run apart."
    )

    @field_validator("lease_seconds")
    @classmethod
    def _renewable_lease(cls, value: float) -> float:
        if value < MIN_LEASE_SECONDS:
            raise ValueError(
                f"must be at least {MIN_LEASE_SECONDS:g} second: a worker renews its lease "
                "every third of it, a write to the queue each time (a shorter one is a busy "
                "loop of writes), and a worker held up longer than the lease (a busy CPU, a "
                "slow disk) loses its request to another, which asks the LLM again")
        return value

    @field_validator("url")
    @classmethod
    def _queue_url(cls, value: str) -> str:
        allowed = ("'sqlite://' (a file in state_dir), 'sqlite:///path/queue.db' or "
                   "'redis://host:port/db' (or rediss://)")
        scheme = value.partition("://")[0].lower() if "://" in value else ""
        if scheme == "sqlite":
            if urlsplit(value).netloc:
                raise ValueError("a queue file is named by an absolute path, "
                                 "'sqlite:///path/queue.db'; 'sqlite://' alone means "
                                 "state_dir/queue.db")
        elif scheme in ("redis", "rediss"):
            check_server_url(value, ("redis", "rediss"), "a redis:// or rediss:// URL")
            # redis-py silently takes a path that is no number for database 0
            database = urlsplit(value).path.strip("/")
            if database and not database.isdigit():
                raise ValueError("the path of a redis:// URL is the database number, "
                                 "'redis://host:port/0'")
        else:
            raise ValueError(f"must be {allowed}")
        return value


#: how an investigation uses the model: a tool-calling loop, or one schema-held answer
AgentMode = Literal["tools", "evidence"]


class AgentSettings(_Section):
    investigate: bool = Field(
        True, description="Ask the LLM to investigate every new or changed incident."
    )
    max_tool_calls: int = Field(12, ge=1, description="Tool calls per investigation.")
    max_tool_output_chars: int = Field(
        4000, ge=200, description="Longer tool output is truncated, with a handle to read more."
    )
    max_context_chars: int = Field(
        24000, ge=MIN_CONTEXT_CHARS, description="Conversation size before old tool results "
        "are dropped; llm.context_size must hold it (see there). Not set, it is made to fit a "
        "smaller llm.context_size.",
    )
    retry_backoff_seconds: Seconds = Field(
        60, gt=0, description="First retry delay of an investigation the LLM could not finish "
        "(doubled at each retry, to an hour); while investigations wait for an LLM server "
        "that is down, also how often it is asked whether it lists the model again (by an LLM "
        "worker at most once a second)."
    )
    max_investigations: int = Field(
        3, ge=1, description="Investigations of one incident that end without a proposal, or "
        "with an answer of the model that is unusable, before it is escalated to a person "
        "instead of retried (a server that is down is waited out, however long).",
    )
    max_investigations_per_day: int = Field(
        12, ge=1, description="Investigations of one incident that came to a diagnosis in 24 "
        "hours, however it came back; beyond that it waits for a person until the day has room "
        "(a finding that flaps at its threshold would keep the LLM busy all day). A failed one "
        "does not count: an LLM that is down is retried with backoff.",
    )
    mode: AgentMode = Field(
        "tools",
        description="How the model investigates: 'tools' (it calls the tools in a loop) or "
        "'evidence' (the evidence is gathered for it and it answers once, JSON held to a "
        "schema: for small models that cannot call tools).",
    )
    modes: dict[str, AgentMode] = Field(
        default_factory=dict,
        description="The mode per model name (llm.model), over agent.mode: "
        "[agent.modes] \"smollm2:135m\" = \"evidence\".",
    )
    evidence_max_tokens: int = Field(
        1024, ge=64, description="Tokens the model may write for its one answer in evidence mode."
    )

    @field_validator("modes")
    @classmethod
    def _named_models(cls, value: dict[str, str]) -> dict[str, str]:
        if any(not name.strip() for name in value):
            raise ValueError("a model name in agent.modes cannot be empty")
        return value

    def mode_for(self, model: str) -> AgentMode:
        """The mode for ``model``: its entry in ``modes`` (Ollama's ``:latest`` tag optional
        on either side), else ``mode``."""
        if model in self.modes:
            return self.modes[model]
        bare = model.removesuffix(":latest")
        for name, mode in self.modes.items():
            if name.removesuffix(":latest") == bare:
                return mode
        return self.mode


class Thresholds(_Section):
    disk_warn_percent: float = Field(85, gt=0, le=100, description="Disk use that warns.")
    disk_critical_percent: float = Field(95, gt=0, le=100, description="Disk use that is critical.")
    inode_warn_percent: float = Field(85, gt=0, le=100, description="Inode use that warns.")
    inode_critical_percent: float = Field(95, gt=0, le=100, description="Critical inode use.")
    limit_warn_percent: float = Field(
        85, gt=0, le=100, description="A service's tasks against its TasksMax, or the host's "
        "threads or open file handles against the kernel's limit, that warn: past the limit, "
        "forks and opens fail.")
    limit_critical_percent: float = Field(
        95, gt=0, le=100, description="The share of such a limit that is critical.")
    clear_margin_percent: float = Field(
        2, ge=0, le=50, description="A disk, inode or limit use (disk_space, "
        "inode_exhaustion, tasks_exhausted, host_limits_exhausted) that warned is well again "
        "only this far below its warning level, and one that was critical is a warning again "
        "only this far below its critical level (memory_pressure: available memory this far "
        "above its levels, the memory stalls (PSI) that were found this far below theirs; "
        "runaway_process: a process's CPU share this many points of a core below its level; "
        "load_per_core and swap_thrash: the load per core and the swap rate this share of "
        "their levels below them): one that hovers at a level is one incident that changes "
        "severity once, not one that opens and resolves, or changes, at every check. "
        "(zombie_processes and journal_error_burst, which count, keep what they found at half "
        "their level.)")
    memory_available_warn_percent: float = Field(
        10, ge=0, le=100, description="Warn when available memory falls below this share."
    )
    memory_available_critical_percent: float = Field(
        5, ge=0, le=100, description="Critical when available memory falls below this share."
    )
    memory_psi_some_avg60: float = Field(
        40, ge=0, le=100, description="Memory PSI 'some avg60' that counts as pressure."
    )
    swap_thrash_pages_per_second: float = Field(
        500, gt=0, description="Swap-in plus swap-out pages per second that count as thrashing."
    )
    load_per_core_warn: float = Field(2.0, gt=0, description="15-minute load per core that warns.")
    load_per_core_critical: float = Field(4.0, gt=0, description="Critical 15-min load per core.")
    runaway_cpu_percent: float = Field(
        90, gt=0, description="CPU share of one process (100 = one core) that counts as runaway."
    )
    runaway_min_seconds: Seconds = Field(
        300, ge=0, description="How long a process must burn CPU before it is runaway."
    )
    crash_loop_restarts: int = Field(
        3, ge=1, description="Restarts (NRestarts) of a unit that make a crash loop."
    )
    crash_loop_window_seconds: Seconds = Field(
        3600, gt=0, description="A crash loop stays found while its unit was restarted within "
        "this many seconds: one that runs longer between crashes than the checks are apart is "
        "one incident, not one a crash.")
    oom_kill_window_seconds: Seconds = Field(
        3600, gt=0, description="An OOM kill in a service stays found while the kernel killed "
        "another of its processes within this many seconds: kills an hour apart are one "
        "incident, which resolves after this long without one.")
    clock_sync_grace_seconds: Seconds = Field(
        900, ge=0, description="A time service that has not synchronised the clock since the "
        "host booted, or since the service started, is given this many seconds to do so "
        "before the clock counts as not synchronised (it waits for the network, a server).")
    journal_error_burst: int = Field(
        20, ge=1, description="Journal entries at err or worse in the window that make a burst "
        "(half as many keep one found)."
    )
    journal_burst_window_seconds: Seconds = Field(
        300, gt=0, description="Window of the journal error burst rule."
    )
    certificate_expiry_warn_days: Days = Field(
        14, ge=0, description="A configured certificate that expires within this many days warns."
    )
    certificate_expiry_critical_days: Days = Field(
        0, ge=0, description="Critical within this many days of its end (0: once expired)."
    )
    zombie_processes: int = Field(
        20, ge=1, description="Zombie children of one process that count as accumulating "
        "(it never waits for them)."
    )

    @model_validator(mode="after")
    def _warning_before_critical(self) -> Thresholds:
        # (warning, critical, whether a higher value is worse): a warning past its critical
        # level would never be seen, the incident would open critical at once
        pairs = (("disk_warn_percent", "disk_critical_percent", True),
                 ("inode_warn_percent", "inode_critical_percent", True),
                 ("limit_warn_percent", "limit_critical_percent", True),
                 ("load_per_core_warn", "load_per_core_critical", True),
                 ("certificate_expiry_warn_days", "certificate_expiry_critical_days", False),
                 ("memory_available_warn_percent", "memory_available_critical_percent", False))
        wrong = [f"{warn} ({getattr(self, warn):g}) is "
                 f"{'above' if worse_up else 'below'} {critical} ({getattr(self, critical):g})"
                 for warn, critical, worse_up in pairs
                 if (getattr(self, warn) > getattr(self, critical)) == worse_up
                 and getattr(self, warn) != getattr(self, critical)]
        if wrong:
            raise ValueError("a warning threshold must come before its critical one: "
                             + "; ".join(wrong))
        return self

    @model_validator(mode="after")
    def _levels_a_host_comes_back_from(self) -> Thresholds:
        # a use that warned is well again only clear_margin_percent below its level (stalls,
        # a process's CPU share too), available memory only that far above it: a margin at
        # or past the level, or a level and margin at 100 % of memory, kept every such
        # incident open for ever, and memory_available_warn_percent = 100 warned of every
        # host at every check
        margin = self.clear_margin_percent
        wrong = [f"clear_margin_percent ({margin:g}) is not below {level} "
                 f"({getattr(self, level):g})"
                 for level in ("disk_warn_percent", "inode_warn_percent", "limit_warn_percent",
                               "memory_psi_some_avg60", "runaway_cpu_percent")
                 if margin >= getattr(self, level)]
        if self.memory_available_warn_percent + margin >= 100:
            wrong.append(f"memory_available_warn_percent ({self.memory_available_warn_percent:g})"
                         f" plus clear_margin_percent ({margin:g}) is not below 100")
        if wrong:
            raise ValueError(
                "a finding must be able to end: a use that warned is well again only "
                "clear_margin_percent below its level, available memory only that far above "
                "its level (and never above 100 %): " + "; ".join(wrong))
        return self


class RemoteSystem(_Section):
    """A managed remote host, as a table: ``{host = "web1", user = "admin", port = 2222}``."""

    host: str = Field(min_length=1, max_length=253, description="Name or address.")
    name: str | None = Field(None, description="Shown name (default: the host).")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        host, colon, port = value.rpartition(":")
        if colon and port.isdigit() and not _is_ipv6(value.strip("[]")):
            # the string form's 'web1:2222' in a table, where the port has a key of its own
            raise ValueError(f"{value[:80]!r}: a table gives the port apart: "
                             f"{{host = \"{host.strip('[]')}\", port = {port}}}")
        return check_host(value.removeprefix("[").removesuffix("]"))

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        # what the string form's user@ takes, and [ssh] user
        return None if value is None else check_user(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        # the host's key everywhere (store, `systems NAME`, a notification's title): what
        # `systems add --name` takes, no more
        return None if value is None else check_host(value)

    user: str | None = Field(None, description="SSH user (default: ~/.ssh/config or root).")
    port: int | None = Field(None, ge=1, le=65535, description=(
        "SSH port, which wins over ~/.ssh/config's (22 too); unset: ~/.ssh/config's, else 22."))
    key_file: SshFile | None = Field(None, description="Private key for this host.")
    sudo: bool = Field(False, description=(
        "Run fixes as `sudo -n --` on the host (the login user needs exactly the rules of "
        "`policy sudoers --user USER`); checks and the model's reads run as the login user, "
        "never under sudo."))


class SshSettings(_Section):
    known_hosts: SshFile | None = Field(
        None, description="known_hosts file (default: ~/.ssh/known_hosts)."
    )
    trust_on_first_use: bool = Field(
        False, description="Accept and record an unknown host key once. Off: unknown refused."
    )
    use_ssh_config: bool = Field(
        True, description="Read ~/.ssh/config: users, keys, ports and jump hosts."
    )
    discover_ssh_config: bool = Field(
        False, description="Offer ~/.ssh/config Host entries as discovered systems."
    )
    key_files: list[SshFile] = Field(
        default_factory=list, description="Default private keys.")
    user: str | None = Field(
        None, description="Default SSH user: of a host whose entry names none, and of "
        "config_repo's ssh URL where it names none (git@ of git@github.com:... wins).",
    )

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        # what a remote system's user takes: a host's own user and this default are one kind
        # of name (ssh -l of config_repo's ssh took a leading '-' as well)
        return None if value is None else check_user(value)

    concurrency: int = Field(
        4, ge=1, le=8, description="Commands at once per host (at most 8: the check's shell "
        "and the journal follower take two more sessions of the connection, and OpenSSH allows "
        "10, MaxSessions).")
    connect_timeout: Timeout = Field(10, gt=0, description="Seconds to connect to a host.")
    ciphers: str = Field(
        "^aes256-gcm@openssh.com,aes128-gcm@openssh.com",
        description="Cipher preference, OpenSSH syntax ('^' = put first). AES-GCM first: the "
        "CPU's AES instructions make it the cheapest for many hosts. Overrides ~/.ssh/config's "
        "Ciphers; empty: that file's, else asyncssh's order.",
    )


def _executable(value: str) -> str:
    """A program as argv[0] takes it: found on PATH by its bare name, or by absolute path.
    "sudo ps" (no program has that name), "" and "bin/ps" (relative to whichever directory
    the daemon runs in) passed, and failed only when run: a fix a person had approved."""
    if (not value or any(c.isspace() or not c.isprintable() for c in value)
            or ("/" in value and not value.startswith("/")) or value.endswith("/")):
        raise ValueError("must be one program, a name found on PATH ('ps') or an absolute "
                         "path ('/usr/bin/ps'): no spaces, no arguments, not empty")
    return value


#: an executable setting: ``programs.*``, ``safety.sudo``
Executable = Annotated[str, AfterValidator(_executable)]


_GROUP_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

#: the assistant's own units, as packaging names them ({name}: ai_name)
OWN_UNIT_TEMPLATES = ("{name}-ai.service", "{name}-llm-worker.service", "ai-sysadmin.service",
                      "ai-sysadmin-llm-worker.service")

#: directories whose old files are the system itself, never a cache
_SYSTEM_ROOTS = frozenset({
    "", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/nix",
    "/nix/store", "/nix/var", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/usr",
    "/var", "/var/lib", "/var/log", "/var/spool", "/var/mail",
})


class SafetySettings(_Section):
    protected_units: list[str] = Field(
        default_factory=list,
        description="More units that automation never stops, masks, disables or kills.",
    )
    clean_paths: list[str] = Field(
        default_factory=lambda: ["/var/cache", "/var/tmp", "/tmp"],
        description="The only directories clean_directory may delete old files in.",
    )
    approval_ttl_hours: Hours = Field(24, gt=0, description="A pending approval expires then.")
    flapping_max: int = Field(3, ge=1, description="The same fix on the same subject at most ...")
    flapping_window_minutes: Minutes = Field(60, gt=0, description="... times in this window.")
    verify_timeout: Timeout = Field(
        60, gt=0, description="Seconds a fix has to make its finding disappear."
    )
    verify_settle_seconds: Timeout = Field(
        5, ge=0, description="A fix counts only if its finding stays gone this long."
    )
    command_timeout: Timeout = Field(300, gt=0, description="Seconds one remediation may run.")
    sudo: Executable = Field("sudo", description="Prefix of remediation commands when not root.")
    reader_user: str = Field(
        "nobody", pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
        description="Who the model's reads (files, diagnostics) run as on a host reached as "
        "root: what this user cannot read, the model never sees.",
    )
    reader_groups: list[str] = Field(
        default_factory=lambda: ["adm", "systemd-journal"],
        description="The only groups of the reading identity (those that exist on the host).",
    )

    @model_validator(mode="after")
    def _settles_before_the_timeout(self) -> SafetySettings:
        # a fix counts once its finding stayed gone verify_settle_seconds; a timeout that
        # comes first ends every verification "not verified": each fix that worked failed
        if self.verify_settle_seconds >= self.verify_timeout:
            raise ValueError(
                f"verify_settle_seconds ({self.verify_settle_seconds:g}) is not below "
                f"verify_timeout ({self.verify_timeout:g}): no fix could ever be verified")
        return self

    @field_validator("reader_groups")
    @classmethod
    def _group_names(cls, groups: list[str]) -> list[str]:
        for group in groups:
            if not _GROUP_RE.match(group):
                raise ValueError(f"{group!r} is not a group name")
        return groups

    @field_validator("clean_paths")
    @classmethod
    def _cache_like_paths(cls, paths: list[str]) -> list[str]:
        # clean_directory deletes every old file below these: a system root here would let
        # one approved fix empty /etc or /var
        for path in paths:
            bare = path.rstrip("/")
            if not path.startswith("/") or "//" in path or posixpath.normpath(path) != (
                    bare or "/"):
                raise ValueError(f"{path!r} must be a plain absolute path (no '..', no '//')")
            if any(c.isspace() for c in path):
                raise ValueError(f"{path!r} holds whitespace; clean_directory's sudo rule "
                                 "pins the directories as words")
            if bare in _SYSTEM_ROOTS:
                raise ValueError(f"{path!r} is a system directory; name a cache or tmp "
                                 "directory below it (e.g. /var/cache/myapp)")
        return paths


class Programs(_Section):
    """Every external program is configurable (Nix store paths, test doubles)."""

    systemctl: Executable = Field("systemctl", description="systemctl executable.")
    journalctl: Executable = Field("journalctl", description="journalctl executable.")
    ps: Executable = Field("ps", description="ps executable (procps).")
    df: Executable = Field("df", description="df executable (coreutils).")
    cat: Executable = Field("cat", description="cat executable (coreutils).")
    readlink: Executable = Field("readlink", description="readlink executable (coreutils).")
    openssl: Executable = Field(
        "openssl", description="openssl executable, to read certificates.")
    coredumpctl: Executable = Field(
        "coredumpctl", description="coredumpctl (systemd-coredump), if any.")
    systemd_delta: Executable = Field(
        "systemd-delta", description="systemd-delta, to tell which unit file a link hides.")
    git: Executable = Field("git", description="git executable, here, to fetch config_repo.")
    setpriv: Executable = Field("setpriv", description="setpriv executable (util-linux).")
    getent: Executable = Field("getent", description="getent executable (libc).")
    kill: Executable = Field(
        "kill", description="kill executable (procps or util-linux), for fixes.")
    sh: Executable = Field(
        "sh", description="POSIX sh, for clean_directory's script and the checks' reads of "
        "files a glob finds (services' counters, file systems' errors, ZFS pools).")
    nix_collect_garbage: Executable = Field("nix-collect-garbage", description="For nix_gc.")
    nixos_rebuild: Executable = Field(
        "nixos-rebuild", description="For NixOS rebuilds and rollbacks.")
    nix_env: Executable = Field("nix-env", description="nix-env executable.")
    stat: Executable = Field(
        "stat", description="stat executable (coreutils), to read when systemd-timesyncd last "
        "synchronised the clock.")
    find: Executable = Field(
        "find", description="find executable (GNU findutils), to read the NixOS generations a "
        "rollback would switch between.")
    apt_get: Executable = Field(
        "apt-get", description="For update_packages on a host that has it (Debian, Ubuntu).")
    dnf: Executable = Field(
        "dnf", description="For update_packages on a host that has it (Fedora, RHEL 8 and "
        "later).")
    yum: Executable = Field(
        "yum", description="For update_packages on a host that has it and no dnf (RHEL and "
        "CentOS 7, Amazon Linux 2).")
    rpm_ostree: Executable = Field(
        "rpm-ostree", description="For update_packages on a host that booted an ostree "
        "deployment (Fedora CoreOS, Silverblue, RHEL for Edge).")
    pacman: Executable = Field("pacman", description="For update_packages on a host that has "
                               "it (Arch).")
    zypper: Executable = Field("zypper", description="For update_packages on a host that has it "
                               "(openSUSE, SLES).")
    transactional_update: Executable = Field(
        "transactional-update", description="For update_packages on a transactional system "
        "that has it (openSUSE MicroOS, SLE Micro), whose read-only root zypper cannot "
        "change.")

    def resolve(self, program: str) -> str:
        """The configured executable for a program the policy named by its bare name."""
        value = getattr(self, program.replace("-", "_"), None)
        return value if isinstance(value, str) else program


_DEFAULT_PROGRAMS = Programs()


class ExecutorSettings(_Section):
    dry_run: bool = Field(
        False, description="Decide every action as usual but run none: what would run is "
        "recorded (and `approve approve` prints it) instead.",
    )


_EMBEDDING_RE = re.compile(r"^(minilm|ollama:[A-Za-z0-9][A-Za-z0-9._:/-]{0,127})$")


class KnowledgeSettings(_Section):
    """The knowledge base (ChromaDB): embedded under state_dir, or a server."""

    enabled: bool = Field(
        True, description="false: no knowledge base. ChromaDB is never opened nor its files "
        "made; investigations start from the evidence alone and nothing is learned; the "
        "`knowledge` commands and `configs` searches say it is off. config_repo's recent "
        "changes still reach investigations.",
    )
    url: str | None = Field(
        None, description="A ChromaDB server (`chroma run`), http(s)://host:port; unset: an "
        "embedded store in `path`.",
    )
    token_file: CredentialFile = Field(
        None, description="File holding the ChromaDB server's token (sent as a Bearer token). "
        "The server's own file (CHROMA_SERVER_AUTHN_CREDENTIALS_FILE) must hold it without a "
        "trailing newline: chromadb 0.6 reads that line as it is.",
    )
    path: Path | None = Field(
        None, description="Directory of the embedded store (default: state_dir/knowledge).",
    )
    embedding: str = Field(
        "minilm", description="'minilm' (all-MiniLM-L6-v2 int8, offline, shipped) or "
        "'ollama:<model>' (Ollama's /api/embed at ollama_url). A store keeps the model it was "
        "made with: changing it needs an export and an import.",
    )
    ollama_url: str | None = Field(
        None, description="Ollama server for 'ollama:<model>' embeddings (default: llm.url).",
    )
    top_k: int = Field(5, ge=1, le=100, description="Results a search returns.")
    max_distance: float = Field(
        0.8, gt=0, le=2, description="Cosine distance (0 same meaning .. 2) past which a "
        "result is not relevant enough to show the model.",
    )
    timeout: Timeout = Field(10, gt=0, description="Seconds to wait for the ChromaDB server, "
                           "or for a lock another process holds on the embedded store.")
    seed: bool = Field(
        True, description="Load the shipped seed knowledge into an empty store.",
    )
    close_after_seconds: Seconds = Field(
        900, ge=0, description="The daemon closes the knowledge base once nothing used it "
        "this long (a config_repo sync and host profiles are no use), and gives its memory "
        "back (ChromaDB and the embedding model, some 350 MB); the next investigation opens "
        "it again, in a few seconds. 0: kept open; else at least 60.",
    )

    @field_validator("close_after_seconds")
    @classmethod
    def _idle_long_enough(cls, value: float) -> float:
        if 0 < value < MIN_KNOWLEDGE_IDLE_SECONDS:
            raise ValueError(
                f"must be 0 (kept open) or at least {MIN_KNOWLEDGE_IDLE_SECONDS:g} seconds: "
                "opening the knowledge base again costs seconds of CPU and some 350 MB, and "
                "between two steps of one investigation it sits unused for a while")
        return value

    @field_validator("embedding")
    @classmethod
    def _embedding(cls, value: str) -> str:
        if not _EMBEDDING_RE.match(value):
            raise ValueError("must be 'minilm' or 'ollama:<model>'")
        return value

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: Path | None) -> Path | None:
        if value is None:
            return value
        value = value.expanduser()
        if not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @field_validator("url", "ollama_url")
    @classmethod
    def _server_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        check_server_url(value)
        parts = urlsplit(value)
        if parts.username or parts.password or parts.query:
            raise ValueError("must carry no credentials or query: the token goes in "
                             "knowledge.token_file")
        return value


Severity = Literal["info", "warning", "critical"]


class NotifySettings(_Section):
    """What is sent where, and how often. Gotify is configured by the top-level
    ``gotify_url`` and ``gotify_token_file``."""

    apprise_urls_file: CredentialFile = Field(
        None, description="File with Apprise URLs, one a line, '#' comments (ntfy://, "
        "matrix://, mailto://, slack://, ...): they carry credentials, so they live in a file "
        "of their own, never in this config.",
    )
    min_severity: Severity = Field(
        "critical", description="An incident this severe or worse sends a message when it "
        "opens (or gets this severe); approvals, fixes, failures and escalations always do.",
    )
    repeat_window_minutes: Minutes = Field(
        30, ge=0, description="The same message about the same incident is not repeated "
        "within this window; when it ends, the latest one goes out once if still true.",
    )
    digest_threshold: int = Field(
        5, ge=1, description="More incidents than this opening within digest_window_seconds "
        "go out as one digest instead of one message each.",
    )
    digest_window_seconds: Seconds = Field(
        120, gt=0, description="The window of digest_threshold; at most one digest per window.",
    )
    llm_down_after_seconds: Seconds = Field(
        600, gt=0, description="Investigations that failed this long because the LLM server "
        "does not answer (down, busy, a proxy's 5xx), or because no worker takes their "
        "requests from the queue, while incidents wait for one, send one message; one more "
        "when it answers again.",
    )
    timeout: Timeout = Field(
        10, gt=0, description="Seconds one delivery may take before it counts as failed.",
    )
    retry_backoff_seconds: Seconds = Field(
        10, gt=0, description="Wait before retrying a channel that failed; doubles with each "
        "failure, up to an hour.",
    )
    max_attempts: int = Field(
        12, ge=1, description="A delivery is given up (failed, shown by `notify status`) after "
        "this many attempts, once a later message goes through (it was this message the "
        "service could not take); while the channel takes none after it (it is down), it "
        "waits on, first in line.",
    )


#: a branch name git accepts as config_branch: never an option ('-'), no '..', '//', trailing
#: '/' or '.lock' (git check-ref-format), in characters no shell or URL reads otherwise
BRANCH_NAME = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<!\.lock)(?<!/)$")
#: git's scp-like ssh address, ``user@host:path`` (a colon before any slash)
SCP_LIKE = re.compile(r"^(?:[^@/\s]+@)?(?:\[[^\]/\s]+\]|[^/:\s]+):(?!//)")
#: the URL schemes ConfigRepo lets git fetch config_repo by (protocol.allow: https, ssh, file)
_REPO_SCHEMES = ("https", "ssh", "git+ssh", "ssh+git")
_REPO_FORMS = ("an https:// or ssh:// URL (git+ssh:// and file:// too), an scp-like "
               "user@host:path or an absolute path")


def check_config_repo(value: str) -> None:
    """config_repo as git fetches it under ConfigRepo's protocol rules; refused at load where
    it was git's error at the first sync, and "--upload-pack=..." was an option to git."""
    if not value or value.startswith("-") or not value.isprintable():
        raise ValueError(f"must be {_REPO_FORMS}, not starting with '-' (git reads an option)")
    if "://" in value:
        scheme = value.partition("://")[0].lower()
        if scheme == "file":
            # file://localhost/srv/fleet.git is file:///srv/fleet.git, as git reads it
            where = value[len("file://"):]
            if not where.removeprefix("localhost").startswith("/"):
                raise ValueError("a file:// URL names an absolute path, 'file:///srv/fleet.git'")
            return
        if scheme not in _REPO_SCHEMES:
            raise ValueError(f"must be {_REPO_FORMS}: git fetches config_repo by https, ssh "
                             "or a local path only")
        check_server_url(value, _REPO_SCHEMES, "an https:// or ssh:// URL")
    elif "::" in re.sub(r"\[[^\]]*\]", "", value.partition("/")[0]):  # [::1] is an address
        raise ValueError(f"must be {_REPO_FORMS}: git runs a remote helper for "
                         "'transport::address', which config_repo never uses")
    elif not (value.startswith("/") or SCP_LIKE.match(value)):
        raise ValueError(f"must be {_REPO_FORMS} (a relative path would follow the working "
                         "directory of each command)")


#: the most characters of conversation a token holds (host output, logs and process lists,
#: runs at 2-3): agent.max_context_chars needs at least a third as many tokens of context
CHARS_PER_TOKEN_AT_MOST = 3
#: the tools' descriptions as the model is sent them, in tokens (measured by
#: tests/realmodel/test_context_budget.py): every request that offers the tools carries them
TOOLS_TOKENS = 2200


#: config_repo_exclude's default: files whose whole point is a secret
CONFIG_REPO_EXCLUDE = (
    "*htpasswd*", "*pgpass*", "*msmtprc*", "*netrc*", "*.env", "*secret*", "*credential*",
    "*.key", "*.pem", "*.p12", "*.pfx", "*.jks", "*.keytab", "*id_rsa*", "*id_ecdsa*",
    "*id_ed25519*", "*shadow*",
)


class Settings(_Section):
    ai_name: str = Field(
        default_factory=short_hostname,
        description="The assistant's name: commands are {name}-check, {name}-chat, ...",
    )
    autonomy_level: AutonomyLevel = Field(
        "suggest", description="observe | suggest | auto-safe | auto-full."
    )
    check_interval: Seconds = Field(300, ge=1, description="Seconds between two full checks.")
    journal_wake_gap: Seconds = Field(
        15, ge=0, description="Seconds a host's journal must wait for each check it wakes "
        "beyond three in a row (errors that keep coming wake one check per gap; 0: no limit).",
    )
    check_concurrency: int = Field(
        64, ge=1, description="Hosts collected at once (SSH handshakes and remote scripts in "
        "flight), like Ansible's forks; the others wait their turn. A host that has not "
        "answered within 3 s gives its turn back, and one that did not the last time takes "
        "none (at most four times as many such hosts at once).",
    )
    state_dir: Path = Field(
        default_factory=default_state_dir, description="Database, logs and journal cursors."
    )
    journal_follow: bool = Field(
        True, description="Follow the journal so a failing unit is seen within seconds."
    )
    journal_first_lines: int = Field(
        200, ge=0, description="Journal entries read on the very first check of a host."
    )
    command_timeout: Timeout = Field(20, gt=0, description="Seconds one collector command may run.")
    unit_files_every: Seconds = Field(
        3600, ge=0, description="Seconds between two readings of the unit files by the "
        "daemon's checks (systemctl list-unit-files costs systemd about 2 ms of CPU a unit "
        "file); those in between keep the last reading, unless it shows a file systemd cannot "
        "parse. A fix's verification reads them once after the fix, and at each look for an "
        "incident of the unit files; CLI checks always. 0: every check.",
    )
    llm: LLMSettings = Field(default_factory=LLMSettings, description="LLM server.")
    queue: QueueSettings = Field(default_factory=QueueSettings, description="LLM request queue.")
    agent: AgentSettings = Field(default_factory=AgentSettings, description="Investigations.")
    gotify_url: str | None = Field(None, description="Gotify server for notifications.")
    gotify_token_file: CredentialFile = Field(
        None, description="File holding the Gotify app token.")
    notify: NotifySettings = Field(
        default_factory=NotifySettings, description="Notifications: channels, storm control."
    )
    remote_systems: list[str | RemoteSystem] = Field(
        default_factory=list,
        description="Remote hosts: 'host', 'user@host:port', or a table with options.",
    )
    ssh: SshSettings = Field(default_factory=SshSettings, description="SSH to remote hosts.")
    certificates: list[str] = Field(
        default_factory=list,
        description="Certificate files (PEM) whose expiry is watched, on every host checked: "
        "each is read there with `openssl crl2pkcs7` (every certificate in the file); one "
        "missing or unreadable is reported.",
    )
    config_repo: str | None = Field(None, description="Git repository of the hosts' configs.")
    config_branch: str = Field("main", description="Branch of config_repo.")
    config_repo_exclude: list[str] = Field(
        default_factory=lambda: list(CONFIG_REPO_EXCLUDE),
        description="Files of config_repo never indexed nor shown to the model (their "
        "commits are named, not their diffs): shell-style globs matched against the path in "
        "the repository, case ignored, '*' crossing '/'. The default leaves out files made of "
        "secrets (htpasswd, .pgpass, msmtprc, .netrc, .env, anything named secret or "
        "credential, keys, certificates, keystores, shadow files); git keeps no read "
        "permissions, so this and masking are all that guard them. [] indexes every text "
        "file.",
    )
    thresholds: Thresholds = Field(default_factory=Thresholds, description="Rule thresholds.")
    safety: SafetySettings = Field(
        default_factory=SafetySettings, description="Protected units, approvals, limits."
    )
    programs: Programs = Field(default_factory=Programs, description="External programs.")
    executor: ExecutorSettings = Field(
        default_factory=ExecutorSettings, description="How fixes run."
    )
    knowledge: KnowledgeSettings = Field(
        default_factory=KnowledgeSettings, description="Knowledge base (ChromaDB)."
    )

    @field_validator("gotify_url")
    @classmethod
    def _gotify_base(cls, value: str | None) -> str | None:
        if value is None:
            return value
        check_server_url(value)
        parts = urlsplit(value)
        if parts.query or parts.fragment:
            # Gotify accepts ?token=: a token in a URL ends up in logs and proxies
            raise ValueError("must be the server's base URL without a query: the app token "
                             "goes in gotify_token_file")
        return value

    @field_validator("remote_systems")
    @classmethod
    def _targets(cls, entries: list[str | RemoteSystem]) -> list[str | RemoteSystem]:
        # a host is known by its name (commands, incidents, the store): two entries of one
        # name would be one host, and the other never watched
        # (LOCALHOST and localhost. are localhost: one SSH host, every incident tripled)
        from .here import this_machine_at  # it reads names of this module

        local = machine_name(short_hostname())
        seen: dict[str, str] = {}
        machines: dict[tuple[str, int], str] = {}
        for index, entry in enumerate(entries):
            if isinstance(entry, str):
                _, host, port = split_target(entry)
                name, shown = machine_name(host), repr(entry)
            else:
                host, port = entry.host, entry.port
                name = machine_name(entry.name or entry.host)
                shown = "{" + ", ".join(f"{key} = {value!r}" for key, value in (
                    ("host", entry.host), ("port", port), ("name", entry.name))
                    if value is not None) + "}"
            if (why := this_machine_at(host, port)) is not None:
                # checked twice, under two names, and two fixes could race on it
                raise ValueError(
                    f"{shown} is this machine ({why}), which every check watches already: "
                    "remove it; an sshd of this machine at another port (a container, a VM "
                    "behind a forward) is written with its port, best with a name of its "
                    "own: {host = ..., port = ..., name = ...}")
            if name == local:
                raise ValueError(f"{shown} is named {name!r}, the name of this machine; give "
                                 "it another: {host = ..., name = ...}")
            if name in seen:
                raise ValueError(f"{seen[name]} and {shown} are both named {name!r} (a name's "
                                 "case and a trailing dot make no other host); give one "
                                 "another: {host = ..., port = ..., name = ...}")
            seen[name] = shown
            # the same machine under two names (or users) was checked twice: two SSH
            # sessions, every incident twice, and two fixes could race on it
            shown = f"remote_systems[{index}] {shown}"
            if (machine := machine_of(host, port)) in machines:
                raise ValueError(f"{machines[machine]} and {shown} are one machine "
                                 f"({join_target(None, *machine)}: a host's case, a trailing "
                                 "dot, its user and a port of 22 written or not make no "
                                 "other); list it once")
            machines[machine] = shown
        return entries

    @field_validator("config_repo")
    @classmethod
    def _config_repo(cls, value: str | None) -> str | None:
        if value is not None:
            check_config_repo(value)
        return value

    @field_validator("config_branch")
    @classmethod
    def _config_branch(cls, value: str) -> str:
        if not BRANCH_NAME.match(value):
            raise ValueError("must be a branch name git accepts: 1-200 letters, digits, '.', "
                             "'_', '-' or '/', not starting with '-', without '..' or '//', not "
                             "ending with '/' or '.lock'")
        return value

    @field_validator("certificates")
    @classmethod
    def _certificate_paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not path.startswith("/") or "\x00" in path or "\n" in path:
                raise ValueError(f"{path[:80]!r} must be an absolute path (it is read on each "
                                 "host, from no particular directory)")
        return paths

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # relative to what? the working directory of whoever runs a command: the daemon and
        # `check` would write two databases. Refused, so the file says what it means.
        value = value.expanduser()
        if not value.is_absolute():
            raise ValueError("must be an absolute path (a relative one would follow the "
                             "working directory of each command)")
        return value

    @field_validator("ai_name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                "must be 1-32 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _context_holds_the_conversation(self) -> Settings:
        # a request past the context is cut by the server (Ollama drops its beginning: the
        # system prompt and the incident) or refused, at the first long investigation
        conversation, beside, said = self._context_parts()
        if self.llm.context_size < conversation + beside \
                and "max_context_chars" not in self.agent.model_fields_set:
            # a context set for a smaller model (8192) with the conversation's size left to
            # its default: the conversation is made to fit, as its description says it must
            # be; refused only where a person set both, or no conversation fits at all
            fits = (self.llm.context_size - beside) * CHARS_PER_TOKEN_AT_MOST
            if fits >= MIN_CONTEXT_CHARS:
                self.agent.max_context_chars = fits
                self.agent.model_fields_set.discard("max_context_chars")
                conversation, beside, said = self._context_parts()
        if self.llm.context_size < conversation + beside:
            raise ValueError(self._context_too_small(conversation, beside, said))
        return self

    def _context_too_small(self, conversation: int, beside: int, said: str) -> str:
        """Why the context cannot hold the conversation, and only the ways out that help: a
        smaller conversation only where the least one fits, a shorter answer where it is
        set (an old config's context_size = 2048 was told to lower a key it never set, to
        a size that still did not fit)."""
        size = self.llm.context_size
        least = -(-MIN_CONTEXT_CHARS // CHARS_PER_TOKEN_AT_MOST)
        if "max_context_chars" in self.agent.model_fields_set:
            needs = (f"agent.max_context_chars ({self.agent.max_context_chars} characters of "
                     f"conversation: at least {conversation} tokens at "
                     f"{CHARS_PER_TOKEN_AT_MOST} characters a token) and {said}: at least "
                     f"{conversation + beside} tokens")
        else:
            needs = (f"{said} and the least conversation (agent.max_context_chars "
                     f"{MIN_CONTEXT_CHARS}: {least} tokens): at least {beside + least} tokens")
        ways = ["raise llm.context_size (and the server's own context)"]
        if "max_context_chars" in self.agent.model_fields_set and size >= beside + least:
            ways.append(f"lower agent.max_context_chars (to "
                        f"{(size - beside) * CHARS_PER_TOKEN_AT_MOST} at most)")
        if "the answer in evidence mode" in said:
            ways.append("lower agent.evidence_max_tokens")
        elif self.llm.max_tokens:
            ways.append("lower llm.max_tokens")
        return f"llm.context_size ({size}) must hold {needs}; {' or '.join(ways)}"

    def _context_parts(self) -> tuple[int, int, str]:
        """What one request holds at the least, in tokens: the conversation, and beside it
        the tools' descriptions and the answer, or in evidence mode the answer alone where
        that is more (said in words)."""
        conversation = -(-self.agent.max_context_chars // CHARS_PER_TOKEN_AT_MOST)
        with_tools = TOOLS_TOKENS + (self.llm.max_tokens or 0)
        said = f"the tools' descriptions (about {TOOLS_TOKENS} tokens)"
        if self.llm.max_tokens:
            said += f" and the answer (llm.max_tokens, {self.llm.max_tokens})"
        evidence = self.agent.evidence_max_tokens
        if self.agent.mode_for(self.llm.model) == "evidence" and evidence > with_tools:
            return (conversation, evidence,
                    f"the answer in evidence mode (agent.evidence_max_tokens, {evidence})")
        return conversation, with_tools, said

    #: files that hold a credential inline (the config file, when a URL in it has a password)
    _credential_files: tuple[Path, ...] = PrivateAttr(default=())

    @property
    def secret_files(self) -> tuple[Path, ...]:
        """Every file that holds one of the assistant's own secrets: never read for the model,
        whatever name or link it is reached by."""
        named = (self.llm.api_key_file, self.gotify_token_file, self.notify.apprise_urls_file,
                 self.knowledge.token_file)
        return tuple(p for p in (*named, *self._credential_files) if p)

    def on_host(self, local_programs: bool) -> Settings:
        """These settings for one host: ``programs.*`` name executables on this machine, so a
        remote host gets the programs' bare names (a NixOS daemon's store paths do not exist
        on a Debian host it manages)."""
        if local_programs or self.programs == _DEFAULT_PROGRAMS:
            return self
        return self.model_copy(update={"programs": _DEFAULT_PROGRAMS})

    @property
    def own_units(self) -> tuple[str, ...]:
        """The unit names the assistant's packaging uses (NixOS module, systemd units): never
        stopped, restarted or killed by automation, whatever their prefix."""
        return tuple(t.format(name=self.ai_name) for t in OWN_UNIT_TEMPLATES)

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def knowledge_dir(self) -> Path:
        return self.knowledge.path or self.state_dir / "knowledge"


@dataclass
class LoadedSettings:
    """The settings plus where each leaf value came from (``default``, the file, or an env var)."""

    settings: Settings
    config_path: Path
    config_found: bool
    sources: dict[str, str] = field(default_factory=dict)
    #: what the config set that no release uses any more (:data:`RETIRED_KEYS`), each said
    #: with where it was set: passed over, not refused, so an upgrade starts
    retired: list[str] = field(default_factory=list)
    #: what is said of the config file itself, not refused (it holds a password and every
    #: user may read it)
    notes: list[str] = field(default_factory=list)

    def source_of(self, dotted: str) -> str:
        return self.sources.get(dotted, "default")

    def blamed(self, *dotted: str) -> str:
        """What an error about the keys ``dotted`` names: the environment where variables
        alone set them, else the config file."""
        origins = [self.source_of(key) for key in dotted]
        if origins and all(origin.startswith("env ") for origin in origins):
            return "the environment"
        return str(self.config_path)

    @property
    def lists_the_fleet(self) -> bool:
        """Whether something given says which remote hosts there are: a config file, or
        ``remote_systems`` from the environment (a start on defaults alone, the file
        missing, must not take every host it listed before for dropped)."""
        return self.config_found or any(key == "remote_systems" or
                                        key.startswith("remote_systems.")
                                        for key in self.sources)


def _leaves(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_leaves(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for var, raw in sorted(environ.items()):
        if not var.startswith(ENV_PREFIX) or var == ENV_CONFIG:
            continue
        path = var[len(ENV_PREFIX) :].lower().split("__")
        if not all(path):
            # AI_SYSADMIN_=y, AI_SYSADMIN_LLM__=y: pydantic would blame a key of the file
            raise ConfigError("the environment", [
                f"{var} holds an empty key name (the form is AI_SYSADMIN_<KEY> or "
                "AI_SYSADMIN_<TABLE>__<KEY>); unset it or name the key"])
        value: Any = raw
        # a list or a table is written as JSON: AI_SYSADMIN_REMOTE_SYSTEMS='["web1"]',
        # AI_SYSADMIN_AGENT__MODES='{"smollm2:135m": "evidence"}'
        if raw.strip().startswith(("[", "{")):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
        node = data
        for depth, part in enumerate(path[:-1], 1):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                # AI_SYSADMIN_LLM=x beside AI_SYSADMIN_LLM__MODEL=y: a value and a table
                raise ConfigError("the environment", [
                    f"{sources['.'.join(path[:depth])].removeprefix('env ')} sets "
                    f"'{'.'.join(path[:depth])}' to a value and {var} sets a key inside it; "
                    "unset one of them"])
        if isinstance(node.get(path[-1]), dict):
            raise ConfigError("the environment", [
                f"{var} sets '{'.'.join(path)}' to a value and other variables set keys "
                "inside it; unset one of them"])
        node[path[-1]] = value
        dotted = ".".join(path)
        sources[dotted] = f"env {var}"
        if isinstance(value, dict):  # `config show` names the variable of each key it set
            sources.update(dict.fromkeys(_leaves(value, f"{dotted}."), f"env {var}"))
    return data, sources


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _plain(err: Mapping[str, Any]) -> tuple[tuple[Any, ...], type[BaseModel] | None] | None:
    """An error's location without pydantic's union tags (``remote_systems.0.RemoteSystem.x``
    is ``remote_systems.0.x``), and the table whose key it names; None for what a union
    member the value is not said of it (a table judged as the ``str`` member): noise."""
    model: type[BaseModel] = Settings
    annotation: Any = None
    table: type[BaseModel] | None = Settings
    kept: list[Any] = []
    for part in err["loc"]:
        members = get_args(annotation)
        if isinstance(part, int):
            annotation = members[0] if members else None  # list[X]: an item is an X
            kept.append(part)
            continue
        tagged = next((m for m in members if getattr(m, "__name__", None) == part), None)
        if tagged is not None:  # the member of a union pydantic tried
            is_table = isinstance(tagged, type) and issubclass(tagged, BaseModel)
            given_table = isinstance(err.get("input"), Mapping)
            if not is_table and given_table:
                return None  # "should be a valid string (got a table)"
            if is_table and err.get("type") in ("model_type", "dict_type") and not given_table:
                return None  # "should be a table (got a string)"
            annotation = tagged
            if is_table:
                model = table = tagged
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = table = annotation
        info = model.model_fields.get(str(part))
        annotation = info.annotation if info else None
        kept.append(part)
    return tuple(kept), table


def _origins(dotted: str, sources: Mapping[str, str]) -> list[str]:
    """Where the value at ``dotted`` came from: its own source, and the sources of the keys
    set inside it (a table judged as a whole, as the thresholds are; a variable such as
    AI_SYSADMIN_REMOTE_SYSTEMS__0__HOST, which makes the file's list a table: the error
    blamed the file alone and never named the variable)."""
    own = [sources[dotted]] if dotted in sources else []
    return own + sorted({s for key, s in sources.items()
                         if key.startswith(f"{dotted}.")} - set(own))


def _blamed(origins: list[str]) -> tuple[str, bool]:
    """What a problem says of the variables among ``origins`` (where what it is about was
    set), and whether they alone set it (then the file is not to blame)."""
    variables = [o.removeprefix("env ") for o in origins if o.startswith("env ")]
    where = f" (from env {', '.join(variables)})" if variables else ""
    return where, bool(origins) and len(variables) == len(origins)


def _describe(err: Mapping[str, Any], sources: Mapping[str, str]) -> tuple[str, bool] | None:
    """The error as one problem, and whether only environment variables gave what it is
    about (then the file is not to blame)."""
    plain = _plain(err)
    if plain is None:
        return None
    loc, table = plain
    if not loc and err["type"] == "value_error":
        # a rule across tables (Settings' own): it names its keys, each said where it was set
        said = validation_message(err)
        where, from_env = _blamed(sorted({s for key, s in sources.items() if key in said}))
        return f"{said}{where}", from_env
    dotted = ".".join(str(p) for p in loc if not isinstance(p, int)) or "(top level)"
    # which entry of a list (remote_systems[3].port): a fleet of fifty had to be searched
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") \
        or dotted
    where, from_env = _blamed(_origins(dotted, sources))
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(table.model_fields)) if table else ""
        said = f"unknown key '{key}'{where}; allowed keys here: {allowed}"
        if table is not Settings and not from_env and str(loc[-1]) in Settings.model_fields:
            # a line appended to a file that ends inside a table (setup's sample ends in
            # [knowledge]): TOML puts every key after a [table] line into that table
            said += f"; {loc[-1]} is a top-level key: put it above the first [table]"
        return said, from_env
    got = err.get("input")
    if _names_a_credential_file(table, loc):
        # a token typed where its file's path goes would be printed whole, and the daemon's
        # error goes to the journal
        return (f"key '{key}'{where}: {validation_message(err)} (the value is not shown: it "
                "may be a credential)"), from_env
    if isinstance(got, str):
        # a refused URL may carry a token or password (under any key): never echo it
        got = _url_shown(got) if dotted in _URL_KEYS else mask_secret_text(got)
    shown = repr(got) if not isinstance(got, Mapping) else "a table"
    # pydantic names the class where a file has a table: "[llm]" is what a reader writes
    said = (f"should be a table of settings ([{dotted}])"
            if err["type"] == "model_type" else validation_message(err))
    if from_env and isinstance(got, str) and err["type"] in ("list_type", "dict_type"):
        said += f"; {_as_json(err['type'], got, origins=_origins(dotted, sources))}"
    if err["type"] == "value_error" and isinstance(got, Mapping):
        # a rule across a table's keys names them: "(got a table)" says nothing more
        return f"key '{key}'{where}: {said}", from_env
    return f"key '{key}'{where}: {said} (got {shown})", from_env


def _names_a_credential_file(table: type[BaseModel] | None, loc: tuple[Any, ...]) -> bool:
    """Whether the key at ``loc`` of ``table`` names a credential's file (its type says so)."""
    info = table.model_fields.get(str(loc[-1])) if table and loc else None
    return info is not None and any(isinstance(m, _HoldsACredential) for m in info.metadata)


def _as_json(kind: str, got: str, origins: list[str]) -> str:
    """How a variable gives a list or a table: as JSON, shown with what it held (split at
    its commas: a form to copy, never a reading of the variable)."""
    var = origins[0].removeprefix("env ") if origins else "AI_SYSADMIN_..."
    if got.strip().startswith(("[", "{")):
        return f"{var} holds no valid JSON"
    if kind == "dict_type":
        return f"a table is given as JSON: {var}='{{\"key\": \"value\"}}'"
    items = [item.strip() for item in got.split(",") if item.strip()] or ["..."]
    return f"a list is given as JSON: {var}='{json.dumps(items)}'"


def _config_file(path: Path, explicit: bool) -> bool:
    """Whether there is a config file to read at ``path``. Something there that is no file
    (a directory a container's bind mount of a missing file made, a link to nothing) is an
    error, named or not: passed over, the daemon ran on the defaults with none of the file's
    settings."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            # a secret manager's target not there yet, a file moved away: taken for no
            # file, the defaults ran silently, none of the settings meant for this machine
            raise ConfigError(str(path), [
                f"is a link to {os.path.realpath(path)}, which does not exist"]) from None
        if explicit:
            raise ConfigError(str(path), ["file does not exist"]) from None
        return False
    except OSError as exc:  # a directory that is not ours to enter (/etc/ai-sysadmin is 0750)
        raise ConfigError(str(path), [f"cannot read: {exc.strerror or exc}"]) from exc
    if stat.S_ISDIR(mode):
        raise ConfigError(str(path), ["is a directory, not a config file"])
    if not stat.S_ISREG(mode):
        raise ConfigError(str(path), ["is not a regular file (a FIFO, a device, a socket?)"])
    return True


def named_config(path: str | os.PathLike[str] | None = None,
                 environ: Mapping[str, str] | None = None) -> Path | None:
    """The config file a person named: ``path`` (--config), else :data:`ENV_CONFIG`; None
    where neither does. A ``~`` in it is expanded here: a shell expands one only at the start
    of a word (``-c~/x.toml`` and ``--config=~/x.toml`` come as typed, and were "file does
    not exist"), and a unit's Environment= or a wrapper's quoted word never."""
    env = os.environ if environ is None else environ
    named = path if path is not None else env.get(ENV_CONFIG)
    return Path(named).expanduser() if named else None


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> LoadedSettings:
    """Read the config file (if any) and the environment; validate everything at once.

    An explicitly named file that does not exist is an error; the default file may be absent, in
    which case the embedded defaults apply. Nothing is written.
    """
    env = os.environ if environ is None else environ
    named = named_config(path, env)
    config_path = named or default_config_path()
    file_data: dict[str, Any] = {}
    found = _config_file(config_path, named is not None)
    if found:
        try:
            # a BOM (Notepad, PowerShell's UTF-8) is no TOML: "Invalid statement (at line 1,
            # column 1)" named nothing the person could see there
            raw = config_path.read_bytes().removeprefix(b"\xef\xbb\xbf")
            file_data = tomllib.loads(raw.decode("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(config_path), [f"TOML syntax error: {exc}"]) from exc
        except UnicodeDecodeError as exc:
            line = raw[:exc.start].count(b"\n") + 1
            raise ConfigError(str(config_path), [
                f"line {line} is not UTF-8 (byte {raw[exc.start]:#04x}): save the file as "
                "UTF-8"]) from exc
        except OSError as exc:
            raise ConfigError(str(config_path), [f"cannot read: {exc}"]) from exc
    file_sources = {k: f"file {config_path}" for k in _leaves(file_data)}
    env_data, env_sources = _env_overrides(env)
    set_by = [*file_sources.items(), *env_sources.items()]
    retired = [f"{key} ({_set_by(set_by, key)}) is no longer used: {why}; it can go"
               for key, why in RETIRED_KEYS.items()
               if _drop(file_data, key) | _drop(env_data, key)]
    sources = {**file_sources, **env_sources}
    try:
        settings = Settings.model_validate(_merge(file_data, env_data))
    except ValidationError as exc:
        said = [d for e in exc.errors() if (d := _describe(e, sources)) is not None]
        problems = [text for text, _ in said] or ["invalid value (pydantic gave no more)"]
        # the file is named only where it gave something wrong: a bad variable alone, with
        # the file fine or absent, is the environment's, each problem naming its variable
        only_env = bool(said) and all(from_env for _, from_env in said)
        raise ConfigError("the environment" if only_env else str(config_path),
                          problems) from exc
    # a URL written in the file with what a URL's reader hides (a password, a user name a
    # token often stands as, query values) makes the file itself a secret of ours
    held = [key for key in _URL_KEYS if sources.get(key, "").startswith("file ")
            and (url := str(getattr_dotted(settings, key))) != _masked_value(key, url)]
    notes = []
    if held:
        settings._credential_files = (config_path,)
        # said as for llm.api_key_file and the channels' files, not refused; not of a file
        # in the Nix store, which no chmod changes and of which the NixOS build warned
        if (_readable_by_all(config_path)
                and not os.path.realpath(config_path).startswith("/nix/store/")):
            notes.append(f"{config_path} holds a credential (in {', '.join(held)}) and is "
                         "readable by every user: chmod o-r it")
    return LoadedSettings(settings, config_path, found, sources, retired, notes)


#: settings an earlier release had, which a config may still set: dotted key -> why it went
RETIRED_KEYS = {
    "programs.grep": "the checks read the kernel's counter files with sh's builtins",
    "programs.env": "a rollback's generations are read with find, their times in UTC as it "
                    "prints them",
}


def _set_by(sources: Iterable[tuple[str, str]], dotted: str) -> str:
    """Where ``dotted``, or anything under it (a table where a value was), was set (of
    ``sources``, each key with where it was set): each file and variable once."""
    where = dict.fromkeys(source for key, source in sources
                          if key == dotted or key.startswith(f"{dotted}."))
    return " and ".join(where) or "the config"


def _drop(data: dict[str, Any], dotted: str) -> bool:
    """Remove ``dotted`` from nested ``data``; whether it was there."""
    *tables, key = dotted.split(".")
    for table in tables:
        data = data.get(table)  # type: ignore[assignment]
        if not isinstance(data, dict):
            return False
    return data.pop(key, _ABSENT) is not _ABSENT


_ABSENT = object()


_URL_KEYS = ("queue.url", "llm.url", "gotify_url", "knowledge.url", "knowledge.ollama_url",
             "config_repo")


def _url_shown(url: str) -> str:
    masked = mask_url(url)
    try:
        parts = urlsplit(masked)
    except ValueError:
        return masked
    return urlunsplit(parts._replace(query="****" if parts.query else "", fragment=""))


def getattr_dotted(obj: object, dotted: str) -> object:
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
    return obj


#: what an HTTP header carries: one word of visible ASCII
_VISIBLE_ASCII = re.compile(r"[!-~]+")


def read_header_secret(path: Path, key: str) -> str:
    """The credential in ``path`` (a token or API key that goes into an HTTP header), or
    :class:`SecretFileError` naming ``key``, the path and why, never the credential.

    Only a regular file is opened: a FIFO would block until a writer came, a device such as
    /dev/zero would never end. It must be one word of visible ASCII: a second line (a comment)
    made the HTTP library's error quote the header, credential and all, and a character outside
    ASCII failed every request. A BOM (Notepad, PowerShell's UTF-8) is dropped."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise SecretFileError(f"{key} {path}: is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise SecretFileError(f"{key} {path}: not a regular file")
        secret = path.read_text(encoding="utf-8-sig").strip()
    except OSError as exc:
        raise SecretFileError(f"{key} {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise SecretFileError(f"{key} {path}: not UTF-8 text") from None
    if not secret:
        raise SecretFileError(f"{key} {path}: empty")
    if any(c in string.whitespace for c in secret):
        raise SecretFileError(f"{key} {path}: holds more than the token (a second line or "
                              "a space): the file must hold the token alone")
    if not _VISIBLE_ASCII.fullmatch(secret):
        raise SecretFileError(f"{key} {path}: holds a character that is not visible ASCII "
                              "(a token is letters, digits and punctuation)")
    return secret


def readable_note(path: Path, key: str) -> str | None:
    """What to say of a credential file every user can read (None: nothing; what is no file
    is said as that, by what reads it): the LLM's key and the notification channels'."""
    if not _readable_by_all(path):
        return None
    return f"{key} ({path}) is readable by every user: chmod o-r it"


def _readable_by_all(path: Path) -> bool:
    """Whether ``path`` is a regular file every user may read."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) and bool(mode & stat.S_IROTH)


def validation_message(err: Mapping[str, Any]) -> str:
    """What one of pydantic's errors says, without the "Value error, " it puts before our own
    validators' words, which says nothing to a reader."""
    return str(err["msg"]).removeprefix("Value error, ")


def validation_problem(err: Mapping[str, Any], whole: str) -> str:
    """One of pydantic's errors as ``where: what`` (``whole`` where it is about the whole
    object)."""
    return f"{'.'.join(str(p) for p in err['loc']) or whole}: {validation_message(err)}"


def mask_secret_text(text: str) -> str:
    """A URL as it may be shown: its password hidden (``https://user:****@host``), a user
    name without one too (a token often stands there: ``https://****@github.com``), and the
    values of its query (``?api_key=****``), also where it does not parse as a URL (an
    unclosed ``[``): a refused URL is shown in the error. Text that is no URL is returned as
    it is."""
    # a password with '/', '?' or '#' in it (base64's), which urlsplit takes for the start of
    # the path: the URL read as having no user, nothing was hidden
    text = _PASSWORD_RE.sub(r"\g<scheme>\g<user>:****@", text)
    try:
        parts = urlsplit(text)
    except ValueError:
        return _mask_unparsed(text)
    if not (parts.scheme and parts.netloc):
        return _mask_unparsed(text)
    netloc, query = parts.netloc, parts.query
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        name, colon, _ = user.partition(":")
        netloc = f"{name}:****@{host}" if colon else f"****@{host}"
    if query:
        query = "&".join(f"{pair.partition('=')[0]}=****" for pair in query.split("&"))
    return urlunsplit(parts._replace(netloc=netloc, query=query))


#: ``scheme://user:password@``, the password up to the last '@' of the word, whatever it holds
_PASSWORD_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/?#@:]*):\S*@")
#: ``scheme://userinfo@``, up to the last '@' before the path, as urlsplit reads a netloc
_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/?#\s]*)@")


def _mask_unparsed(text: str) -> str:
    """What :func:`mask_secret_text` hides, in text urlsplit refused or found no URL in."""
    if "://" not in text:
        return text

    def userinfo(match: re.Match[str]) -> str:
        name, colon, _ = match["user"].partition(":")
        return f"{match['scheme']}{name}:****@" if colon else f"{match['scheme']}****@"

    masked = _USERINFO_RE.sub(userinfo, text)
    head, question, rest = masked.partition("?")
    if not question:
        return masked
    query, hash_, fragment = rest.partition("#")
    query = "&".join(f"{pair.partition('=')[0]}=****" for pair in query.split("&"))
    return f"{head}?{query}{hash_}{fragment}"


def mask_url(url: str) -> str:
    """A URL setting as every text shows it (:func:`mask_secret_text`), Ollama's bare
    ``host:port`` (``llm.url``) included."""
    if "://" in url:
        return mask_secret_text(url)
    return mask_secret_text(f"http://{url}").removeprefix("http://")


def _masked_value(dotted: str, value: str) -> str:
    # only llm.url may be a bare host:port; config_repo's scp-like 'git@host:repo' is no
    # user name to hide
    return mask_url(value) if dotted == "llm.url" else mask_secret_text(value)


def effective_rows(loaded: LoadedSettings) -> list[tuple[str, str, str]]:
    """(dotted key, value, source) for every leaf, secrets masked: what ``config show`` prints."""
    rows = []
    for dotted, value in _leaves(loaded.settings.model_dump(mode="json")).items():
        shown = _masked_value(dotted, value) if isinstance(value, str) else json.dumps(value)
        rows.append((dotted, shown, loaded.source_of(dotted)))
    return rows
