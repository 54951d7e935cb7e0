"""Reads for the model run as an unprivileged identity: what it cannot read, the model never sees.

A deny-list of secret paths always misses one (an agenix secret under a new name, a backup of
the shadow file, a credential in a format nobody listed). So the investigation tools do not read
as root: on a host reached as root (locally, over SSH as root, in the fault lab)
every read runs under ``setpriv`` as ``nobody`` with only the log-reading groups (``adm``,
``systemd-journal``), no capabilities and no way to gain any; where the transport already runs as
an ordinary user, that user reads. Files that identity may not open stay closed by the
operating system's permissions, whatever their name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ..errors import ProgramMissing, TransportError
from ..redact import redact_cut
from .transport import CommandResult, Transport, after_marker, new_marker

#: uid/gid of nobody/nogroup on Debian, NixOS, Fedora and Arch, when the names do not resolve
NOBODY = 65534


class ReaderTransport(Transport):
    """``inner``, with every command run as the reading identity."""

    def __init__(self, inner: Transport, user: str = "nobody",
                 groups: Sequence[str] = ("adm", "systemd-journal"),
                 setpriv: str = "setpriv", getent: str = "getent") -> None:
        self.inner = inner
        self.host = inner.host
        self.user = user
        self.groups = tuple(groups)
        self.setpriv = setpriv
        self.getent = getent
        self.runs_as_root = False
        self._prefix: tuple[str, ...] | None = None
        self._lock = asyncio.Lock()

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        return self.inner.wrap((*(self._prefix or ()), *argv))

    async def connect_tcp(self, address: str, port: int, timeout: float) -> None:
        await self.inner.connect_tcp(address, port, timeout)

    def pinger(self) -> Transport:
        return self.inner.pinger()

    async def _as_root(self, timeout: float) -> bool:
        if self.inner.runs_as_root is not None:
            return self.inner.runs_as_root
        marker = new_marker()
        done = await self.inner.run(["sh", "-c", f"echo {marker}; id -u"], timeout)
        uid = after_marker(done.stdout, marker) if done.ok else None
        if uid is None or not uid.isdigit():
            # fails closed: a uid not read is never taken for an ordinary user's, whose
            # reads would then go unreduced
            said = redact_cut(" ".join((done.stdout + " " + done.stderr).split()), 200,
                              tail=True)
            raise TransportError(f"{self.host}: cannot tell which user reads there (`id -u` "
                                 f"exited {done.returncode}: {said!r}); not reading")
        return uid == "0"

    async def _ids(self, timeout: float) -> tuple[str, str, list[str]]:
        """uid, gid and the gids of the reading groups that exist on this host."""
        uid = gid = str(NOBODY)
        user = await self.inner.run([self.getent, "passwd", self.user], timeout)
        fields = user.stdout.strip().split(":")
        if user.ok and len(fields) >= 4 and fields[2].isdigit() and fields[3].isdigit():
            uid, gid = fields[2], fields[3]
        gids: list[str] = []
        if self.groups:
            found = await self.inner.run([self.getent, "group", *self.groups], timeout)
            for line in found.stdout.splitlines():
                parts = line.split(":")
                if len(parts) >= 3 and parts[2].isdigit():
                    gids.append(parts[2])
        if uid == "0" or gid == "0" or "0" in gids:
            raise TransportError(f"{self.host}: the reading identity {self.user!r} would be "
                                 "root; refusing to read with it")
        return uid, gid, gids

    async def prefix(self, timeout: float = 20.0) -> tuple[str, ...]:
        """The argv that drops to the reading identity here (empty where the transport runs
        as an ordinary user already)."""
        async with self._lock:
            if self._prefix is None:
                if not await self._as_root(timeout):
                    self._prefix = ()
                else:
                    uid, gid, gids = await self._ids(timeout)
                    groups = f"--groups={','.join(gids)}" if gids else "--clear-groups"
                    self._prefix = (self.setpriv, f"--reuid={uid}", f"--regid={gid}", groups,
                                    "--inh-caps=-all", "--bounding-set=-all",
                                    "--no-new-privs", "--")
            return self._prefix

    async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
        prefix = await self.prefix(timeout)
        try:
            done = await self.inner.run([*prefix, *argv], timeout)
        except ProgramMissing as exc:
            if not prefix:
                raise
            # setpriv's absence here, not the program's: nothing known of what the host has
            raise TransportError(str(exc)) from exc
        if prefix and done.returncode in (126, 127) and self.setpriv in done.stderr and \
                "failed to execute" not in done.stderr:
            # never fall back to reading as root: the read fails with the reason
            said = redact_cut(done.stderr.strip(), 200)
            raise TransportError(f"{self.host}: cannot drop privileges to read ({said}); "
                                 "install util-linux's setpriv or connect as an unprivileged user")
        return CommandResult(tuple(argv), done.returncode, done.stdout, done.stderr,
                             done.duration)

    async def read_file(self, path: str, timeout: float = 20.0) -> str | None:
        done = await self.run(["cat", "--", path], timeout)
        return done.stdout if done.ok else None

    async def run_script(self, script: str, done: str, timeout: float,
                         answer_within: float | None = None) -> CommandResult:
        return await self.run(["sh", "-c", script], timeout)
