"""The operator's configuration repository (``config_repo`` at ``config_branch``): a read-only
copy under ``state_dir/config-repo``, and its text files as chunks with path, lines and commit.

The copy is a bare repository that fetches the one branch by URL: it has no remote to push to
and no working tree anyone could edit, and a fetch overwrites the branch whatever happened
upstream (a force-push included). git runs by argv; for an ``ssh://`` or ``user@host:path`` URL
its ssh checks host keys as the SSH layer does (the configured known_hosts, then the system
file; an unknown key is refused unless trust on first use is on, a changed one always).

Files matching ``config_repo_exclude`` (by default those made of secrets: htpasswd, .pgpass,
keys ...) are never read: git keeps no read permissions, and masking cannot know every format.

Which files changed is git's own answer: each file's blob id is kept with the index, and only
files whose blob differs are chunked again; files gone from the branch leave the index. The
index also says which repository and branch it is of: when ``config_repo`` or ``config_branch``
changes, the next sync drops everything indexed before (a path of the old repository would
otherwise be found as if it were a file of the new one), and until then a search refuses. The
state lives beside the store, not in it, so it names the store too: a store made anew (the old
one moved aside after a corruption, another knowledge.path or knowledge.url) is indexed whole
at the next sync, not left empty for want of changed files.

Every chunk names the repository and branch it is of (:func:`repo_key`, a digest), and a
search, a listing or a removal reads that repository's alone: assistants that share one store
(one knowledge.url or path) with different config_repos found each other's files, overwrote
each other's chunks of an equal path and removed each other's "gone" files. Chunks an earlier
version wrote name none: its index is indexed again whole at the next sync, and a search
refuses until then.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import math
import os
import pwd
import re
import shlex
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..config import BRANCH_NAME, SCP_LIKE, Settings, mask_secret_text
from ..errors import AiSysadminError, KnowledgeError
from ..hosts.ssh_target import DEFAULT_KNOWN_HOSTS, GLOBAL_KNOWN_HOSTS
from ..monitor.findings import strip_control
from ..redact import redact, redact_file

#: a file larger than this is data (a lock file, a dump), not a config worth searching
MAX_FILE_BYTES = 256 * 1024
#: lines per chunk at most; a chunk ends early at a blank line or a closing brace near the end
CHUNK_LINES = 40
CHUNK_CHARS = 2400
#: a line longer than this (a minified JSON, a base64 blob) is cut in its chunk: a search reads
#: its start (the embedding reads a few hundred tokens of a chunk anyway), and a chunk stays
#: within what a record holds
LINE_CHARS = CHUNK_CHARS
#: seconds one git command may take (a first clone of a large repository over a slow link)
GIT_TIMEOUT = 300.0
#: files chunked between two saves of the index state: a crash re-does at most this many
SAVE_EVERY = 50
#: how an index state's chunks number their lines: 1, as git does (:func:`file_lines`); a
#: state without it was numbered by str.splitlines after masking, a private key one line
NUMBERING = 1



class ConfigRepoError(AiSysadminError):
    """The configuration repository cannot be fetched or read. ``detail``: all git said
    (masked), where the message quotes only its telling line."""

    def __init__(self, message: str, detail: str = "", advised: bool = False) -> None:
        super().__init__(message)
        self.detail = detail
        #: the message says what to do: no more advice belongs after it
        self.advised = advised


#: what git adds to every failure to reach a repository, whatever the cause
_GIT_BOILERPLATE = ("fatal: Could not read from remote repository.",
                    "Please make sure you have the correct access rights",
                    "and the repository exists.")


#: git's words for a repository on this host another user owns, which it refuses to read
_DUBIOUS = "detected dubious ownership in repository"


def _ownership_advice(said: str) -> str | None:
    """What to do where git refused config_repo because another user owns it (/etc/nixos,
    root's, read by the daemon's user); None for any other failure. git's own hint (``git
    config --global``) is for a person in a shell: a daemon has a user and home of its own,
    and the setting is read only from the system's, that user's or the command line's
    config, never from the repository's."""
    if _DUBIOUS not in said:
        return None
    found = re.search(r"safe\.directory (\S+)", said) or re.search(
        r"repository at '([^']+)'", said)
    path = strip_control(found.group(1)) if found else "PATH"
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = f"uid {os.geteuid()}"
    home = os.environ.get("HOME") or "~"
    return (f"git reads a repository another user owns only where told to: for every user, "
            f"`git config --system --add safe.directory {path}` (on NixOS, where "
            f"/etc/gitconfig is read-only, programs.git.config.safe.directory); for {user} "
            f"alone, who runs git here, `git config --global --add safe.directory {path}` as "
            f"{user} with HOME={home} (the daemon's HOME is its state directory); or make "
            "config_repo an https:// or ssh:// URL")


def _telling_line(said: str) -> str:
    """What went wrong, in one line of git's (and ssh's) own words: the last two lines that
    say something of this failure (ssh's cause and its verdict: "Host key for ... has
    changed ...", "Host key verification failed."), not git's "Could not read from remote
    repository" after them, a hint, a warning or a banner of '@'."""
    lines = [line.strip() for line in strip_control(said).splitlines() if line.strip()]
    for line in lines:
        if _DUBIOUS in line:
            # the cause; the two lines after it are git's advice, which does not fit here
            # (:func:`_ownership_advice`)
            return line.removeprefix("fatal: ")[:300]
    telling = [line.removeprefix("fatal: ").removeprefix("error: ") for line in lines
               if line not in _GIT_BOILERPLATE and not line.startswith(("hint:", "warning:", "@"))]
    if not telling and lines and lines[0] in _GIT_BOILERPLATE:
        # ssh said nothing (a proxy command that died): git's own first words, not its
        # last half-sentence ("and the repository exists.")
        telling = [lines[0].removeprefix("fatal: ")]
    return " ".join(telling[-2:] or lines[-1:])[:300]


class NotText(ConfigRepoError):
    """A file of the repository is not UTF-8 text (binary, or another encoding)."""


@dataclass(frozen=True)
class Chunk:
    """Lines ``start``..``end`` (1-based, inclusive) of ``path`` at ``commit``, masked, of
    the repository ``repo`` (:func:`repo_key`)."""

    path: str
    start: int
    end: int
    text: str
    commit: str
    blob: str
    repo: str = ""


def repo_key(url_key: str, branch: str) -> str:
    """Which repository and branch a chunk is of, as a store keeps it: a digest of the
    URL's digest and the branch (the URL may hold a token)."""
    return "r" + hashlib.sha256(f"{url_key}\n{branch}".encode()).hexdigest()[:24]


@dataclass
class SyncReport:
    commit: str
    files: int
    indexed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    #: files of the branch left out by config_repo_exclude
    excluded: list[str] = field(default_factory=list)
    #: path -> why it could not be indexed; the others were, and it is tried again next time
    failed: dict[str, str] = field(default_factory=dict)
    #: changed files over MAX_FILE_BYTES (a dump, a lock file): never read, not indexed
    too_large: list[str] = field(default_factory=list)
    #: changed files that are not UTF-8 text (binary, Latin-1, UTF-16): not indexed
    not_text: list[str] = field(default_factory=list)
    #: what the index was of when config_repo or config_branch changed since the last sync
    #: (e.g. "another repository"); all its files are then in ``removed``
    previous: str | None = None
    #: the index was an earlier version's, whose chunks named no repository: indexed whole
    earlier_version: bool = False

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class ChunkSink:
    """What the index writes to (the knowledge base's config collection). ``repo``: a
    :func:`repo_key`, "" for the chunks an earlier version wrote, which name none."""

    def add_chunks(self, chunks: Sequence[Chunk]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def remove_path(self, path: str, repo: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def paths(self, repo: str) -> set[str]:  # pragma: no cover - interface
        """Every path the sink holds chunks of, of the repository ``repo``."""
        raise NotImplementedError

    def identity(self) -> str:  # pragma: no cover - interface
        """Which index this is: another one holds nothing indexed into this one."""
        raise NotImplementedError


def is_ssh_url(url: str) -> bool:
    return url.startswith("ssh://") or url.startswith("git+ssh://") or (
        "://" not in url and not url.startswith(("/", ".")) and bool(SCP_LIKE.match(url)))


def url_user(url: str) -> str | None:
    """The user an ssh URL names (``git`` of ``git@host:repo`` or ``ssh://git@host/repo``)."""
    if "://" in url:
        try:
            return urllib.parse.urlsplit(url).username or None
        except ValueError:
            return None
    user, at, _ = url.partition("@")
    return user if at and SCP_LIKE.match(url) else None


def ssh_command(settings: Settings) -> str:
    """``GIT_SSH_COMMAND`` with the SSH layer's host key rules. git runs it through sh, so
    every word is quoted; options on the command line win over any ssh_config file. ssh.user
    logs in only where the URL names no user: ssh's -l would win over git@ of a forge's URL,
    as a host entry's user wins over ssh.user in the fleet."""
    ssh = settings.ssh
    known = Path(os.fspath(ssh.known_hosts or DEFAULT_KNOWN_HOSTS)).expanduser()
    argv = ["ssh", "-o", "BatchMode=yes",
            "-o", f"StrictHostKeyChecking={'accept-new' if ssh.trust_on_first_use else 'yes'}",
            "-o", f"UserKnownHostsFile={known}",
            "-o", f"GlobalKnownHostsFile={GLOBAL_KNOWN_HOSTS}",
            # rounded up: ssh takes whole seconds, and 0 (from 0.5) is no timeout at all
            "-o", f"ConnectTimeout={math.ceil(ssh.connect_timeout)}"]
    if not ssh.use_ssh_config:
        argv += ["-F", "none"]
    for key in ssh.key_files:
        argv += ["-i", str(Path(key).expanduser())]
    if ssh.user and not url_user(settings.config_repo or ""):
        argv += ["-l", ssh.user]
    return shlex.join(argv)


def looks_like_text(data: bytes) -> bool:
    """A config is text: no NUL in its start and valid UTF-8 (decided from the bytes, not
    from the name: a ``.conf`` may be binary and a file without suffix may be a config)."""
    if len(data) > MAX_FILE_BYTES or b"\x00" in data[:8192]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def file_lines(text: str) -> list[str]:
    """The lines of a file's ``text`` as git numbers them (`git grep -n`, a diff): split at
    "\\n" alone, a "\\r" before it dropped. str.splitlines also splits at a form feed,
    U+2028 or a lone "\\r": every chunk after one was said to be lines further down."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the file's last line break ends a line, it starts none
    return [line.removesuffix("\r") for line in lines]


def chunk_lines(lines: Sequence[str], size: int = CHUNK_LINES,
                max_chars: int = CHUNK_CHARS) -> Iterator[tuple[int, int]]:
    """(start, end) line ranges, 1-based and inclusive, that cover ``lines``. A chunk ends at
    a blank line or a closing brace in its last third when there is one, so a Nix attribute
    set or a config section tends to stay whole.

    A chunk of nothing but punctuation (the ``}`` of a file's end, the ``{`` before a long
    line) is its neighbour's: alone, it is embedded as little more than the file's path, the
    nearest hit for any search of that file, showing a brace. Joined, the two stay within
    half as much again as a chunk: a banner of ``#-=-=-`` lines is no chunk of its own and
    swallows none (a chunk of no words is never indexed)."""
    merged: list[list[int]] = []
    for start, end in _line_ranges(lines, size, max_chars):
        if merged and not (_has_words(lines[start - 1:end])
                           and _has_words(lines[merged[-1][0] - 1:merged[-1][1]])) \
                and end - merged[-1][0] < size * 3 // 2 \
                and _weight(lines[merged[-1][0] - 1:end], max_chars) <= max_chars * 3 // 2:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    for start, end in merged:
        yield start, end


def _has_words(lines: Sequence[str]) -> bool:
    return any(char.isalnum() for line in lines for char in line)


def _weight(lines: Sequence[str], max_chars: int) -> int:
    """What ``lines`` count against a chunk's ``max_chars``: a long line (cut, in its chunk,
    at LINE_CHARS) counts as half a chunk, so it stays with the lines around it, which say
    what it is the value of."""
    return sum(min(len(line) + 1, max_chars // 2) for line in lines)


def _line_ranges(lines: Sequence[str], size: int, max_chars: int) -> Iterator[tuple[int, int]]:
    start = 0
    while start < len(lines):
        end = min(start + size, len(lines))
        chars = 0
        for index in range(start, end):
            chars += _weight(lines[index:index + 1], max_chars)
            if chars > max_chars and index > start:
                end = index
                break
        if end < len(lines):
            floor = start + max(1, (end - start) * 2 // 3)
            for cut in range(end, floor, -1):
                text = lines[cut - 1].strip()
                if not text or text in ("}", "};", "];", ")", "]"):
                    end = cut
                    break
        yield start + 1, end
        start = end


def _why(exc: Exception) -> str:
    """One line of why a file was not indexed."""
    if isinstance(exc, ValidationError):
        text = "; ".join(f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                         for error in exc.errors())
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(strip_control(text).split())[:300]


def _cut(line: str) -> str:
    if len(line) <= LINE_CHARS:
        return line
    return f"{line[:LINE_CHARS]} [line cut: {len(line) - LINE_CHARS} more characters]"


class ConfigRepo:
    """The local copy of ``config_repo``: fetch, list its files by blob, read them, index."""

    def __init__(self, settings: Settings, directory: Path | None = None) -> None:
        if not settings.config_repo:
            raise ConfigRepoError("no config_repo is configured (set config_repo and "
                                  "config_branch in the config file)")
        if not BRANCH_NAME.match(settings.config_branch):
            raise ConfigRepoError(f"config_branch {settings.config_branch!r} is not a branch "
                                  "name git accepts")
        self.settings = settings
        self.url = settings.config_repo
        self.branch = settings.config_branch
        self.dir = directory or settings.state_dir / "config-repo"
        self.state_path = self.dir.parent / "config-repo-index.json"
        self.lock_path = self.dir.parent / "config-repo.lock"
        self.exclude = [glob.lower() for glob in settings.config_repo_exclude]
        #: the identity of the sink being synced, saved with the state
        self._sink_id: str | None = None
        #: the state's files are not all numbered as :data:`NUMBERING` says yet (a sync
        #: under way renumbers them): its saves leave the state saying so
        self._renumbering = False

    @property
    def ref(self) -> str:
        return f"refs/heads/{self.branch}"

    @contextlib.contextmanager
    def syncing(self, on_wait: Callable[[str], None] | None = None,
                seconds: float = GIT_TIMEOUT) -> Iterator[None]:
        """This process's alone while the block runs: the fetch and the index of the copy
        (its ref, its state file, the index's chunks). Another process's sync (the daemon's
        at its start, a person's `configs --sync`) is waited for, ``seconds`` at most, and
        ``on_wait`` is told once: two at once fought over git's ref lock, and one that
        fetched first could save its older index over the other's (a file deleted upstream
        found again). An ``flock``: the kernel lets go of it when its holder dies."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline, told = time.monotonic() + seconds, False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                    who = f"pid {holder}" if holder.isdigit() else "another process"
                    if time.monotonic() > deadline:
                        raise ConfigRepoError(
                            f"config_repo is being synced by {who} (the daemon, or another "
                            f"`configs --sync`) for over {seconds:g} s; try again later"
                        ) from None
                    if not told and on_wait is not None:
                        told = True
                        on_wait(f"config_repo is being synced by {who} (the daemon, or "
                                f"another `configs --sync`); waiting for it to end")
                    # a lock held by another process: polled, the time limit kept
                    time.sleep(0.1)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    # -- git ------------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # never a prompt: a daemon has nobody to answer it; a failure is an error instead
        env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", SSH_ASKPASS="true",
                   LC_ALL="C")
        if is_ssh_url(self.url):
            env["GIT_SSH_COMMAND"] = ssh_command(self.settings)
            env.pop("GIT_SSH", None)
        return env

    def git(self, *args: str, timeout: float = GIT_TIMEOUT, check: bool = True) -> str:
        argv = [self.settings.programs.git, "--git-dir", str(self.dir),
                # only these ways to reach a repository: no ext:: helpers, no plain git://
                "-c", "protocol.allow=never", "-c", "protocol.file.allow=always",
                "-c", "protocol.ssh.allow=always", "-c", "protocol.https.allow=always",
                "-c", "core.hooksPath=/dev/null", *args]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=timeout, env=self._env(),
                                  stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError as exc:
            raise ConfigRepoError(f"{argv[0]} is not installed (programs.git; it fetches "
                                  f"config_repo)") from exc
        except subprocess.TimeoutExpired as exc:
            raise ConfigRepoError(f"git {args[0]} took longer than {timeout:g} s") from exc
        if check and done.returncode != 0:
            said = self._unsecret(redact(done.stderr.decode("utf-8", "replace").strip()))
            why = _telling_line(said) or f"exit status {done.returncode}, nothing said"
            if advice := _ownership_advice(said):
                raise ConfigRepoError(f"git {args[0]} of {self.shown_url} failed: {why}: "
                                      f"{advice}", detail=said[-4000:], advised=True)
            raise ConfigRepoError(f"git {args[0]} of {self.shown_url} failed: {why}",
                                  detail=said[-4000:])
        return done.stdout.decode("utf-8", "replace")

    @property
    def shown_url(self) -> str:
        """The URL as messages show it: its user (a token may stand there), password and
        query values (``?private_token=``) masked as ``config show`` masks them."""
        return mask_secret_text(self.url)

    def _unsecret(self, text: str) -> str:
        """git's own words with the URL's secrets masked: it quotes the URL it could not
        reach, query and all."""
        parts = urllib.parse.urlsplit(self.url)
        text = text.replace(self.url, self.shown_url)
        if parts.username:
            text = text.replace(f"{parts.username}@", "****@")
        for _, value in urllib.parse.parse_qsl(parts.query):
            if value:
                text = text.replace(f"={value}", "=****")
        return text

    def fetch(self) -> str:
        """Bring the branch up to date (clone on first use); returns its commit."""
        if not (self.dir / "HEAD").is_file():
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.git("init", "--bare", "--quiet")
        try:
            self.git("fetch", "--quiet", "--no-tags", "--force", "--", self.url,
                     f"+{self.ref}:{self.ref}")
        except ConfigRepoError as exc:
            if "couldn't find remote ref" in exc.detail:
                raise ConfigRepoError(f"{self.shown_url} has no branch {self.branch!r} "
                                      "(config_branch)") from None
            raise
        # HEAD names the branch, so `git --git-dir ... log` reads what was indexed
        self.git("symbolic-ref", "HEAD", self.ref)
        self._source.write_text(f"{self._url_key} {self.branch}\n", encoding="utf-8")
        return self.head()

    @property
    def _source(self) -> Path:
        """Which repository and branch the copy was last fetched from (a digest of the URL)."""
        return self.dir / "ai-sysadmin-source"

    def copy_is_ours(self) -> bool:
        """Whether the copy was last fetched from config_repo at config_branch as configured
        now: until a fetch after a change of either, it is another repository's history."""
        try:
            return self._source.read_text(encoding="utf-8").split() == [self._url_key,
                                                                         self.branch]
        except OSError:
            return False

    def head(self) -> str:
        return self.git("rev-parse", "--verify", "--quiet", f"{self.ref}^{{commit}}").strip()

    @property
    def fetched(self) -> bool:
        return (self.dir / "HEAD").is_file() and bool(
            self.git("rev-parse", "--verify", "--quiet", f"{self.ref}^{{commit}}",
                     check=False).strip())

    def files(self, commit: str) -> dict[str, str]:
        """path -> blob id of every file in ``commit`` (symlinks and submodules left out)."""
        return {path: blob for path, (blob, _) in self.listing(commit).items()}

    def listing(self, commit: str) -> dict[str, tuple[str, int]]:
        """path -> (blob id, size in bytes) of every file in ``commit``: the size is known
        before a byte of the file is read, so a dump committed by mistake never is."""
        out = self.git("ls-tree", "-r", "-l", "-z", "--full-tree", commit)
        found: dict[str, tuple[str, int]] = {}
        for entry in out.split("\0"):
            if not entry:
                continue
            meta, path = entry.split("\t", 1)
            mode, kind, blob, size = meta.split()
            if kind == "blob" and mode in ("100644", "100755"):
                found[path] = (blob, int(size))
        return found

    def excluded(self, path: str) -> bool:
        """Whether ``path`` is one of config_repo_exclude's: never indexed nor its diff shown."""
        lower = path.lower()
        return any(fnmatch.fnmatchcase(lower, glob) for glob in self.exclude)

    def read_blob(self, blob: str) -> bytes:
        argv = [self.settings.programs.git, "--git-dir", str(self.dir), "cat-file", "blob", blob]
        done = subprocess.run(argv, capture_output=True, timeout=GIT_TIMEOUT, check=False,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise ConfigRepoError(f"git cat-file of {blob} failed")
        return done.stdout

    def chunks(self, path: str, blob: str, commit: str) -> list[Chunk]:
        """The chunks of ``path``; :class:`NotText` where it is not UTF-8 text."""
        data = self.read_blob(blob)
        if not looks_like_text(data):
            raise NotText(path)
        # a config repository holds secrets often enough (hashed passwords, tokens): masked
        # before they are embedded, stored, searched or shown
        lines = [_cut(line) for line in file_lines(
            redact_file(data.decode("utf-8"), path, keep_lines=True))]
        # a file of punctuation alone ("{}") has nothing a search could be for
        return [Chunk(path, a, b, "\n".join(lines[a - 1:b]), commit, blob, self.key)
                for a, b in chunk_lines(lines) if _has_words(lines[a - 1:b])]

    # -- the index ------------------------------------------------------------------------------
    def _stored(self) -> dict[str, Any]:
        """The saved index state as it is, of whichever repository and branch; {} for none."""
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _is_ours(self, stored: dict[str, Any]) -> bool:
        return stored.get("url") == self._url_key and stored.get("branch") == self.branch

    @staticmethod
    def _files_of(stored: dict[str, Any]) -> dict[str, str]:
        files = stored.get("files")
        return dict(files) if isinstance(files, dict) else {}

    def _state(self) -> dict[str, str]:
        stored = self._stored()
        return self._files_of(stored) if self._is_ours(stored) else {}

    def other_source(self) -> str | None:
        """What the index is of when it is not ``config_repo`` at ``config_branch`` as
        configured now (either changed since the last sync), in words; None when it is of
        them, or when nothing was indexed."""
        stored = self._stored()
        if not stored or self._is_ours(stored):
            return None
        branch = str(stored.get("branch"))
        if stored.get("url") == self._url_key:
            return f"branch {branch!r} of config_repo"
        # only a digest of the old URL is kept (a token may stand in it): it cannot be named
        return "another repository" + ("" if branch == self.branch else f" (branch {branch!r})")

    @property
    def _url_key(self) -> str:
        """Which repository the index is of, without the URL: a token in it would be left in
        a file no policy guards."""
        return "sha256:" + hashlib.sha256(self.url.encode()).hexdigest()

    @property
    def key(self) -> str:
        """Which repository and branch this index's chunks are of, in the store."""
        return repo_key(self._url_key, self.branch)

    def earlier_index(self) -> bool:
        """Whether the index of config_repo at config_branch was made by an earlier version,
        whose chunks do not say which repository they are of: none of them is searched, and
        the next sync indexes it whole."""
        stored = self._stored()
        return self._is_ours(stored) and not stored.get("repo_key")

    def indexed_paths(self) -> dict[str, str]:
        """path -> blob of what the index holds now."""
        return self._state()

    def _save(self, files: dict[str, str], commit: str) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": self._url_key, "branch": self.branch, "commit": commit,
                                   "store": self._sink_id, "repo_key": self.key,
                                   "files": files,
                                   "numbering": 0 if self._renumbering else NUMBERING}),
                       encoding="utf-8")
        os.replace(tmp, self.state_path)

    def sync(self, sink: ChunkSink, fetch: bool = True,
             on_file: Callable[[str], None] | None = None) -> SyncReport:
        """Fetch (unless ``fetch`` is False), then re-index the files whose blob changed and
        drop the files that are gone. The state is saved before each batch with the batch's
        files left out and after it with them in, so a crash between the two re-does that
        batch instead of trusting a half-written index."""
        started = time.monotonic()
        commit = self.fetch() if fetch else self.head()
        if not commit:
            raise ConfigRepoError(f"{self.shown_url} has no branch {self.branch!r}")
        # after the fetch: a store that is down leaves the recent changes fresh
        self._sink_id = sink.identity()
        self._renumbering = self._stored().get("numbering", 0) != NUMBERING
        listing = self.listing(commit)
        now = {path: blob for path, (blob, _) in listing.items()}
        report = SyncReport(commit, len(now), previous=self.other_source(),
                            excluded=sorted(p for p in now if self.excluded(p)))
        # an excluded file indexed before (the setting was narrower) goes as a removed one
        for path in report.excluded:
            del now[path]
        state = self._drop_gone(sink, now, commit, report)
        changed = sorted(p for p, blob in now.items() if state.get(p) != blob or (
            self._renumbering and p in state and listing[p][1] <= MAX_FILE_BYTES
            and self._numbered_otherwise(p, blob)))
        for offset in range(0, len(changed), SAVE_EVERY):
            batch = changed[offset:offset + SAVE_EVERY]
            for path in batch:
                state.pop(path, None)
            self._save(state, commit)
            for path in batch:
                if listing[path][1] > MAX_FILE_BYTES:
                    # read whole, a 400 MB dump cost 800 MB of memory at each sync it changed
                    sink.remove_path(path, self.key)
                    report.too_large.append(path)
                    continue
                if on_file is not None:
                    on_file(path)
                try:
                    chunks = self.chunks(path, now[path], commit)
                    sink.remove_path(path, self.key)
                    if chunks:
                        sink.add_chunks(chunks)
                except NotText:
                    # said once, like a file too large: read again when its blob changes
                    sink.remove_path(path, self.key)
                    report.not_text.append(path)
                    continue
                except KnowledgeError:
                    raise  # the store, not this file: every other one would fail alike
                except Exception as exc:  # one file's failure leaves the others indexed
                    report.failed[path] = _why(exc)
                    continue
                report.chunks += len(chunks)
                report.indexed.append(path)
            state.update({p: now[p] for p in batch if p not in report.failed})
            self._save(state, commit)
        self._renumbering = False
        self._save(state, commit)
        report.seconds = time.monotonic() - started
        return report

    def _numbered_otherwise(self, path: str, blob: str) -> bool:
        """Whether the chunks of ``path`` an earlier version indexed give other lines than
        the file's (a private key or a form feed above them): indexed again, the file
        unchanged."""
        try:
            data = self.read_blob(blob)
            if not looks_like_text(data):
                return False
            text = data.decode("utf-8")
        except (ConfigRepoError, UnicodeDecodeError, OSError, subprocess.SubprocessError):
            return False
        return redact_file(text, path).splitlines() != \
            file_lines(redact_file(text, path, keep_lines=True))

    def _same_sink(self, stored: dict[str, Any], sink: ChunkSink) -> bool:
        """Whether the saved state was written for the store being synced. A state from
        before stores were named is if the store holds any file it lists."""
        if stored.get("store") is not None:
            return stored.get("store") == self._sink_id
        files = self._files_of(stored)
        return not files or bool(sink.paths(self.key) & set(files))

    def _drop_gone(self, sink: ChunkSink, now: dict[str, str], commit: str,
                   report: SyncReport) -> dict[str, str]:
        """Remove from the index what is not in ``now``; returns the state left. An index of
        another repository or branch goes whole, whatever its paths, with what the sink holds
        of it beyond the saved state (a batch cut short by a crash): its state names this
        source only once all of it is gone, so a crash meanwhile drops the rest at the next
        sync. Another repository's chunks in a shared store are never touched."""
        stored = self._stored()
        #: the key the saved state's chunks carry; "" for an earlier version's, which had none
        old_key = str(stored.get("repo_key") or "")
        ours = self._is_ours(stored)
        if ours and old_key and self._same_sink(stored, sink):
            state = self._files_of(stored)
            for path in sorted(set(state) - set(now)):
                del state[path]
                self._save(state, commit)
                sink.remove_path(path, self.key)
                report.removed.append(path)
            return state
        if not ours and stored:
            # another repository or branch: all of its chunks go
            for path in sorted(set(self._files_of(stored)) | sink.paths(old_key)):
                sink.remove_path(path, old_key)
                report.removed.append(path)
        elif ours and not old_key:
            # an earlier version's index of this very repository: its chunks name none, so
            # none is found; they go (not listed: each comes back, named) and all is indexed
            report.earlier_version = True
            for path in sorted(sink.paths("")):
                sink.remove_path(path, "")
        # indexed whole (another store, another source, or none known): what the store
        # holds of this repository's files no longer in the branch goes too
        for path in sorted(sink.paths(self.key) - set(now)):
            sink.remove_path(path, self.key)
            if path not in report.removed:
                report.removed.append(path)
        self._save({}, commit)
        return {}
