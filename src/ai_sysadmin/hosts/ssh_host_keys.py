"""Host keys: checked against known_hosts, recorded on first use only when the operator allows
it, refused with a message that names the host and the fingerprint."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import asyncssh
from asyncssh.public_key import get_default_certificate_algs, get_default_public_key_algs

from ..errors import NotStarted
from .ssh_target import DEFAULT_PORT, Hop

log = logging.getLogger("ai_sysadmin.service")


class HostKeyError(NotStarted):
    """The host's key is not the one recorded for it, or is not known and may not be trusted."""


@dataclass(frozen=True)
class TrustedKey:
    """A host key trusted on first use and recorded: a security decision, which whoever
    holds the audit log records (the transport has no store)."""

    #: the managed host whose connection met it
    host: str
    #: the jump host whose key it is; None: the managed host's own
    via: str | None
    key_type: str
    #: SHA256:..., as ssh prints it
    fingerprint: str
    known_hosts: Path


#: the line numbers a warning about a file's skipped lines names; more are counted
_SKIPPED_NAMED = 10


def known_hosts_text(paths: list[Path]) -> tuple[tuple[str, str], ...]:
    """Each file's name and text; an absent file is left out. Bytes that are not UTF-8 (a
    Latin-1 comment) are replaced: ssh reads such a file, and a key is ASCII anyway."""
    texts = []
    for path in paths:
        try:
            texts.append((str(path), path.read_text(encoding="utf-8", errors="replace")))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise NotStarted(
                f"cannot read the known_hosts file {path}: {exc.strerror}"
            ) from exc
    return tuple(texts)


@functools.lru_cache(maxsize=8)
def parsed_known_hosts(files: tuple[tuple[str, str], ...]) -> asyncssh.SSHKnownHosts:
    """Parsed once per content: a fleet's connects share one file of a line per host, and
    parsing it for each host costs O(hosts^2) key decodes. A changed file is new content.

    A line that is no entry (a host name alone, a broken hash) is skipped, as ssh skips it,
    with one warning a file that names the lines: one stray line, maybe in the global file
    nobody here edits, must not leave every host unchecked. The warning never quotes a line."""
    known = asyncssh.SSHKnownHosts()
    for name, text in files:
        skipped = []
        for number, line in enumerate(text.split("\n"), 1):
            try:
                known.load(_names_lowercased(line))
            except ValueError:
                skipped.append(number)
        if skipped:
            named = ", ".join(map(str, skipped[:_SKIPPED_NAMED]))
            more = len(skipped) - _SKIPPED_NAMED
            log.warning("%s: skipped line(s) %s%s: not a known_hosts entry", name, named,
                        f" and {more} more" if more > 0 else "",
                        extra={"event": "known_hosts_skipped"})
    return known


def _names_lowercased(line: str) -> str:
    """A known_hosts line with its host names in lowercase: ssh matches them whatever their
    case (it lowercases both sides), asyncssh only as written, and :func:`known_hosts_name`
    looks up in lowercase. A hashed name (|1|salt|hash) is base64 and stays as it is."""
    fields = line.split(None, 2 if line.lstrip().startswith("@") else 1)
    names = 1 if len(fields) > 1 and fields[0].startswith("@") else 0
    if len(fields) <= names + 1 or fields[0].startswith("#") or fields[names].startswith("|"):
        return line
    fields[names] = fields[names].lower()
    return " ".join(fields)


def known_hosts_name(host: str, port: int, alias: str | None) -> tuple[str, int]:
    """The name and port a host's key is looked up and recorded under, as ssh does it: the
    HostKeyAlias where one is set, without the port; and in lowercase. ssh lowercases the name
    before it reads or writes known_hosts; asyncssh matches it as given, so WEB1 would miss
    the `web1` line ssh wrote, and trust on first use would then take a changed key."""
    if alias:
        return alias.lower(), DEFAULT_PORT
    return host.lower(), port


def host_pattern(host: str, port: int) -> str:
    return host if port == DEFAULT_PORT else f"[{host}]:{port}"


def record_host_key(path: Path, host: str, port: int, key: asyncssh.SSHKey) -> str:
    """Append ``key`` for ``host:port`` to a known_hosts file; returns the line written."""
    alg, b64 = key.export_public_key("openssh").decode("ascii").split()[:2]
    line = f"{host_pattern(host, port)} {alg} {b64}\n"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        needs_newline = False
        if size:
            handle.seek(size - 1)
            needs_newline = handle.read(1) != b"\n"
        handle.write((("\n" if needs_newline else "") + line).encode("ascii"))
    return line.strip()


class VerifyingClient(asyncssh.SSHClient):
    """Sees the key a server offers when it is not already trusted; notices a lost connection."""

    def __init__(self, hop: Hop, known: asyncssh.SSHKnownHosts, aliased: bool = False) -> None:
        self.hop = hop
        self.known = known
        #: the name checked is a HostKeyAlias, recorded without the port as ssh records it
        self.aliased = aliased
        self.offered: asyncssh.SSHKey | None = None
        self.host_known = False
        self.recorded: str | None = None
        #: the key recorded on first use (:attr:`recorded` its line)
        self.trusted: asyncssh.SSHKey | None = None
        self.lost = False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        # asyncssh calls this only for a key that known_hosts does not already trust; ``host``
        # is the name of known_hosts_name, handed to it as the host key alias
        self.offered = key
        lookup_port = None if port == DEFAULT_PORT else port
        trusted_keys, trusted_cas, *_ = asyncssh.match_known_hosts(
            self.known, host, addr, lookup_port
        )
        self.host_known = bool(trusted_keys or trusted_cas)
        if self.host_known or not self.hop.target.trust_on_first_use:
            return False
        path = self.hop.target.known_hosts_path
        try:
            self.recorded = record_host_key(path, host, DEFAULT_PORT if self.aliased else port,
                                            key)
        except OSError as exc:
            log.error("%s: cannot record the host key in %s: %s", self.hop.label, path, exc,
                      extra={"event": "host_key_not_recorded"})
            return False
        self.trusted = key
        log.warning(
            "%s: trusted the host key %s on first use; recorded in %s",
            self.hop.label, key.get_fingerprint("sha256"), path,
            extra={"event": "host_key_trusted"},
        )
        return True


def host_key_algs(known: asyncssh.SSHKnownHosts, host: str, port: int) -> list[str] | None:
    """Key types recorded for the host first, then every other type.

    asyncssh offers only the recorded types when the host is known, and a server that has none
    of them just hangs up: a changed key type would read "connection reset". Offering the rest
    after them keeps the recorded key in use whenever the server still has it, and otherwise
    gets the server's key to the check, which then refuses it by name and fingerprint.
    """
    keys = asyncssh.match_known_hosts(known, host, "", None if port == DEFAULT_PORT else port)[0]
    if not keys:
        return None
    recorded = [alg for key in keys for alg in key.sig_algorithms]
    defaults = get_default_certificate_algs() + get_default_public_key_algs()
    return [a.decode("ascii") for a in dict.fromkeys([*recorded, *defaults])]


def host_key_message(hop: Hop, client: VerifyingClient, pattern: str) -> str:
    """Why the key was refused; ``pattern``: the known_hosts entry it was checked against."""
    path = hop.target.known_hosts_path
    files = " and ".join(str(p) for p in hop.target.known_hosts_files)
    if client.offered is None:
        return f"{hop.label}: the host key of {pattern} could not be verified; refusing to connect"
    key = client.offered
    offered = f"{key.get_algorithm()} key {key.get_fingerprint('sha256')}"
    if client.host_known:
        # what to run comes before the evidence: every command bounds the line it shows, and
        # one cut before the command left a person with the warning and no way out
        return (
            f"{hop.label}: HOST KEY MISMATCH for {pattern}, refusing to connect. Only if the "
            f"host was reinstalled (check the new fingerprint on it: ssh-keygen -lf "
            f"/etc/ssh/ssh_host_*_key.pub), remove the old entry with "
            f"`ssh-keygen -R '{pattern}' -f {path}` and add the new key; else someone may be "
            f"intercepting the connection: the server offered the {offered}, but {files} "
            f"hold a different key for it."
        )
    return (
        f"{hop.label}: unknown host key for {pattern}: the server offered the {offered}, which "
        f"is not in {files}; refusing to connect. Check that fingerprint on the host "
        f"(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) and add the key to "
        f"{'that file' if files == str(path) else path}, or set `trust_on_first_use = true` "
        f"under [ssh] in the config to record it on the next connection."
    )
