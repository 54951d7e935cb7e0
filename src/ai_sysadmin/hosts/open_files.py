"""This process's open files: room for a fleet's connections, and telling this machine's
shortage from a host's failure.

Each managed host holds an SSH connection (one a hop through a jump host) for as long as the
daemon runs, its journal follower a channel on it. A service starts with systemd's soft limit
of 1024 open files (its hard limit is far higher): a fleet of about 900 hosts (450 behind jump
hosts) beside the store's connections used it up, and every host connected after that failed
with "Too many open files" and was reported unreachable, a critical page for each, though
none had been asked (measured: 200 hosts hold 232 files).
"""

from __future__ import annotations

import errno
import logging
import os
import resource
from dataclasses import dataclass

from ..errors import LocalLimit

log = logging.getLogger("ai_sysadmin.service")

#: what the process holds besides its hosts' connections: the state and queue databases (a
#: connection, its WAL and shared memory files, a thread each), the knowledge store, the log
#: files, the LLM server's and the notification services' HTTP connections, subprocess pipes
BASE_FILES = 256
#: a host's connections (a hop each: a jump host is one more) and a fix's subprocess pipes
FILES_PER_HOST = 4
#: the errors of a process (ENFILE: the whole machine) that has run out of open files
_OUT_OF_FILES = (errno.EMFILE, errno.ENFILE)


@dataclass(frozen=True)
class Room:
    """The open files limit before and after :func:`make_room`, and what the fleet needs."""

    needed: int
    before: int
    now: int
    hard: int

    @property
    def enough(self) -> bool:
        return self.now >= self.needed


def needed_for(hosts: int) -> int:
    """The open files a process managing ``hosts`` remote hosts may hold at once."""
    return BASE_FILES + FILES_PER_HOST * max(hosts, 0)


def make_room(hosts: int) -> Room:
    """Raise this process's soft limit of open files to what ``hosts`` remote hosts need, up
    to its hard limit (which only root may raise): never lowered, and left as it is where it
    is enough (every program this process starts inherits it). Where the hard limit is too low,
    logged once per call, with what to raise."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = needed_for(hosts)
    now = soft
    if soft != resource.RLIM_INFINITY and soft < needed:
        now = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (now, hard))
        except (OSError, ValueError) as exc:  # a container's seccomp, a hard limit lowered
            log.warning("the open files limit stays %d: raising it to %d for %d hosts failed "
                        "(%s)", soft, now, hosts, exc, extra={"event": "open_files_limit"})
            now = soft
        else:
            log.info("open files limit raised from %d to %d for %d managed hosts", soft, now,
                     hosts, extra={"event": "open_files_limit"})
    room = Room(needed, soft, now, hard)
    if not room.enough:
        log.warning("%d managed hosts may need %d open files, and this process may have %d "
                    "(its hard limit): hosts beyond it go unchecked; raise the limit "
                    "(LimitNOFILE= in the service, `ulimit -Hn` as root)", hosts, needed, now,
                    extra={"event": "open_files_limit"})
    return room


def local_limit(exc: BaseException, host: str) -> LocalLimit | None:
    """The error to raise where ``exc`` is, or was caused by, this machine running out of
    open files (a socket, a pipe, the known_hosts file or a key read as a host is connected),
    not the host's failure; None for any other error."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, LocalLimit):
            return cause
        if isinstance(cause, OSError) and cause.errno in _OUT_OF_FILES:
            whose = ("this machine" if cause.errno == errno.ENFILE
                     else f"this process (limit {open_files_limit()})")
            return LocalLimit(f"{host}: not asked: {whose} is out of open files "
                              f"({cause.strerror or os.strerror(cause.errno)})")
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def open_files_limit() -> int:
    """This process's soft limit of open files (RLIM_INFINITY: none)."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def at_limit() -> bool:
    """Whether this process holds as many open files as its soft limit allows (near enough:
    an open that failed just now may have been the one over it)."""
    soft = open_files_limit()
    try:
        held = len(os.listdir("/proc/self/fd"))
    except OSError as exc:  # no file left to list them with; or no /proc: not known
        return exc.errno in _OUT_OF_FILES
    return soft != resource.RLIM_INFINITY and held + 2 >= soft
