"""One sweep of 50 SSH hosts: this project vs Ansible at its best vs the bare asyncssh floor.

    sudo .venv/bin/python bench/fleet_sweep.py [--hosts 50] [--rounds 3] [--no-ansible]
        [--systemd]
    (needs sshd; the Ansible rows need `pip install -c constraints.txt -e '.[bench]'`)

50 real sshd processes listen on 127.0.1.1-50 (loopback only), one host key each; the bench
writes the known_hosts file and host keys are verified everywhere (Ansible: OpenSSH with that
file and StrictHostKeyChecking=yes). Every round measures every row side by side; the table
gives each row's median over the rounds and its range, each ratio likewise (a ratio is taken
within a round). Rows:

cold (fresh connections)
- floor: bare asyncssh, one `true` per host (key and known_hosts loaded once, the project's
  ciphers), the ratio target's baseline;
- the same commands, bare: asyncssh, fresh connections, the check's commands as one plain sh
  line, each once (no framing, parsing, rules or store): what the commands themselves add;
- this project: a full sweep (one remote script per host, parse, all rules, store);
- Ansible, defaults: `ansible all -m command -a 'cat /proc/loadavg'`, ssh_args as shipped
  (ControlMaster=auto, ControlPersist=60s), no control master running yet;
- Ansible, best: the same with pipelining = True (and the settings in ANSIBLE_BEST);
- the same sweep done host after host (sequential).
warm (connections already open)
- floor: the same commands written bare into an open `sh -s` per host (what a second sweep
  does, with nothing around it), the reply only watched for its last line, in asyncssh's own
  callback (the cold row of the same commands reads it alike);
- this project: the second (and later) sweeps over the reused connections and shells;
- both Ansible rows again: the cold run left a control master per host (ControlPersist), the
  next run is measured;
- Ansible `-m raw` with the best settings, warm: no module, no Python on the host; shown for
  what it is, not the baseline (a raw command is Ansible's bootstrap escape hatch, not how it
  runs commands).
split cpus (machines with two cores or more): the floors and this project again, cold and
warm, with the fleet (every sshd, shell and command) on one half of the cores and the bench
process on the other, as on a real fleet, where the hosts' CPUs are not the sweeper's: on
the shared cores every millisecond the sweeper spends parsing is taken from the hosts.
The Ansible baseline of a ratio is the best `-m command` row of the round, cold or warm; it
reads one file per host where this project's sweep runs the whole check (df, ps, /proc, ...).
Each host has a PID namespace of its own, so its `ps` lists its own sshd, sessions and shells
as on a real host (--shared-pids: one table, each `ps` lists all 50 hosts' processes). All
hosts share this machine's 2 cores: every row's sshd, shells and commands compete for them,
work that a real fleet spreads over 50 machines. "cpu" is the whole machine's CPU seconds
during the row (other users of the machine included); "hosts" is the fleet's own share of it
(every sshd, shell and command, from a cgroup of their own; not with --systemd, whose labs keep
the cgroups their systemd made): what the sweep costs the managed hosts, and the ratio rows
compare it, apart from the sweeper's CPU, which on a real fleet is another machine's.
"sweeper" is this process's own CPU (its threads; rows it runs itself) and "idle" the cores'
idle time during the row: on shared cores a row's wall time is about the sum of the three over
the cores, and the warm rows' difference from their floor is given part by part.
Targets (issue 9): a cold sweep >= 10x faster than the best Ansible and <= 1.3x the floor; the
second sweep <= 1.1x its floor.

--systemd: each host is a fault lab (ai_sysadmin.lab: systemd 252 and journald as PID 1, its
own process table, /run and cgroup, a copy-on-write view of this machine's root) with its
sshd in the lab's namespaces on 127.0.2.N, so a check runs every command it runs on a real
host (systemctl list-units, list-unit-files, show, coredumpctl, journalctl, ...), where the
default fleet has no systemd and skips 7 of the check's 10 sources. The floors run the same
commands bare, each host's journal read from where its checker stored it had got to, as a
second check reads it. No Ansible rows there (it reads /proc/loadavg on any host). 10 hosts
by default: each check costs a lab's systemd ~0.6 s of CPU for list-unit-files alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncssh

from ai_sysadmin.config import Settings, SshSettings
from ai_sysadmin.hosts.ssh import SshTarget, SshTransport
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.sections import JournalQuery
from ai_sysadmin.orchestrator.checker import HostChecker, fleet_checkers
from ai_sysadmin.store import Database, IncidentStore

PORT = 2222
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
ANSIBLE = Path(sys.executable).parent / "ansible"
COMMAND = ["-m", "command", "-a", "cat /proc/loadavg"]
#: Ansible as a user who tunes it for speed runs it: forks for every host, pipelining (one
#: ssh per task, no file copies), OpenSSH control masters (ssh_args as shipped), no fact
#: gathering, the interpreter named (no discovery). Also tried on this bench, none faster
#: beyond the noise (8.1-8.8 s warm): strategy = free (one task: nothing to overtake),
#: ssh_args without -C, PreferredAuthentications=publickey, module_compression = ZIP_STORED.
ANSIBLE_BEST = {"defaults": {"gathering": "explicit"},
                "ssh_connection": {"pipelining": "True"}}
T = TypeVar("T")
#: --systemd: a lab's `systemctl list-unit-files` alone costs its systemd ~0.6 s of CPU (220
#: unit files); fifty labs on two cores do not finish one check within its 20 s
LAB_HOSTS = 10
#: row names
FLOOR, SAME, OURS, SEQUENTIAL = "floor", "same commands", "this project", "sequential"
FLOOR_WARM, OURS_WARM = "floor, warm", "this project, warm"
ALONE, ALONE_WARM = "transport alone", "transport alone, warm"
BEST = "best ansible"
SPLIT = ", split cpus"


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@dataclass
class Fleet:
    """The hosts a sweep checks, and how to reach them."""

    addrs: list[str]
    key: Path
    known: Path
    #: the processes the hosts are made of (each with all under it): pinned to their cores
    pids: list[int]
    #: each host's root directory as seen from here
    roots: list[Path]
    described: str

    def transports(self) -> list[SshTransport]:
        return transports(self.addrs, self.key, self.known)

    def lines(self, settings: Settings, journals: list[JournalQuery | None]) -> list[str]:
        """Each host's bare line, its journal read from where ``journals`` say."""
        ts = self.transports()
        return [bare_line(t, settings, root, journal)
                for t, root, journal in zip(ts, self.roots, journals, strict=True)]


def _client_key(tmp: Path) -> tuple[Path, Path]:
    """The bench's SSH key, and the authorized_keys file every host's sshd reads."""
    client_key = tmp / "client"
    keygen(client_key)
    authorized = tmp / "authorized_keys"
    authorized.write_text((tmp / "client.pub").read_text())
    return client_key, authorized


def _sshd(tmp: Path, n: int, addr: str, authorized: Path, pid_file: str) -> tuple[Path, str]:
    """Host ``n``'s host key and sshd_config; returns the config and its known_hosts line."""
    hostkey = tmp / f"host{n}"
    keygen(hostkey)
    config = tmp / f"sshd{n}.conf"
    config.write_text(
        f"ListenAddress {addr}:{PORT}\nHostKey {hostkey}\nPidFile {pid_file}\n"
        f"AuthorizedKeysFile {authorized}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nMaxStartups 200:30:400\nMaxSessions 50\nLogLevel ERROR\n")
    key = (tmp / f"host{n}.pub").read_text().split()
    return config, f"[{addr}]:{PORT} {key[0]} {key[1]}"


def _listening(tmp: Path, addrs: list[str], known_lines: list[str]) -> Path:
    """Once every host accepts connections: the known_hosts file of them all."""
    known = tmp / "known_hosts"
    known.write_text("\n".join(known_lines) + "\n")
    deadline = time.monotonic() + 30
    for addr in addrs:
        while True:
            try:
                socket.create_connection((addr, PORT), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    return known


def start_fleet(tmp: Path, count: int, own_pids: bool = True
                ) -> tuple[Fleet, list[subprocess.Popen]]:
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    client_key, authorized = _client_key(tmp)
    known_lines, procs, addrs = [], [], []
    # This machine's /root/.bashrc runs `pyenv init` (~0.1 s of CPU) for every SSH command.
    # A managed host would not: the sshds run in a mount namespace where that file is empty,
    # so every row (the floor and Ansible included) measures SSH, not this machine's rc file.
    # The bind mount is made by a shell that already runs in the new namespace: it can never
    # land on this machine's own /root/.bashrc. No pipes of ours: a holder that outlived the
    # bench must not keep a `| sed` waiting.
    empty = tmp / "empty-rc"
    empty.write_text("")
    rc_file = Path("/root/.bashrc")
    hide = f"mount --bind {shlex.quote(str(empty))} /root/.bashrc && " if rc_file.exists() else ""
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f"{hide}touch {shlex.quote(str(tmp / 'ns-ready'))} && exec sleep infinity"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(holder)
    deadline = time.monotonic() + 10
    while not (tmp / "ns-ready").exists():
        assert holder.poll() is None and time.monotonic() < deadline, "unshare did not start"
        time.sleep(0.01)
    assert os.readlink(f"/proc/{holder.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    quiet_shell = ["nsenter", "-t", str(holder.pid), "-m", "--"]
    if own_pids:
        # each host its own process table, as a real host has: its `ps` lists its own
        # sshd, sessions and shells, not those of the 49 others (/proc remounted for it)
        quiet_shell += ["unshare", "--pid", "--fork", "--mount", "--propagation", "private",
                        "--mount-proc", "--kill-child"]
    for n in range(1, count + 1):
        addr = f"127.0.1.{n}"
        config, known_line = _sshd(tmp, n, addr, authorized, f"{tmp}/sshd{n}.pid")
        procs.append(subprocess.Popen([*quiet_shell, SSHD, "-D", "-e", "-f", str(config)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        known_lines.append(known_line)
        addrs.append(addr)
    known = _listening(tmp, addrs, known_lines)
    return Fleet(addrs, client_key, known, [p.pid for p in procs], [Path("/")] * count,
                 f"{count} sshd hosts on 127.0.1.1-{count}, no systemd"), procs


def start_lab_fleet(tmp: Path, count: int, labs: contextlib.ExitStack
                    ) -> tuple[Fleet, list[subprocess.Popen]]:
    """Each host a fault lab (:mod:`ai_sysadmin.lab`): systemd and journald as its PID 1,
    its own process table, hostname, /run and cgroup, on a copy-on-write view of this
    machine's root; its sshd runs in the lab's namespaces but on this machine's network
    (127.0.2.N), so that every command of a check (systemctl, journalctl, coredumpctl, ...)
    runs, as on a real host. ``labs`` stops the labs."""
    # a lab's systemd and journald hold 4 inotify instances, all of them root's: the default
    # limit of 128 is 32 labs (set back when the labs are stopped)
    limit = Path("/proc/sys/fs/inotify/max_user_instances")
    was, needed = int(limit.read_text()), 8 * count + 64
    if was < needed:
        limit.write_text(str(needed))
        labs.callback(limit.write_text, str(was))
        print(f"fs.inotify.max_user_instances: {was} -> {needed} while the labs run")
    client_key, authorized = _client_key(tmp)
    known_lines, procs, addrs, roots, pid1s = [], [], [], [], []
    for n in range(1, count + 1):
        # the lab sees the bench's directory (its own /tmp is private), read-only
        lab = labs.enter_context(Sandbox(hostname=f"bench{n}", binds=[str(tmp)]))
        lab.write_file("/root/.bashrc", "")  # see start_fleet; lands on the lab's overlay
        lab.exec(["mkdir", "-p", "/run/sshd"], check=True)
        addr = f"127.0.2.{n}"
        config, known_line = _sshd(tmp, n, addr, authorized, "none")
        # every namespace of the lab but its network (Sandbox.nsenter_argv enters them all)
        procs.append(subprocess.Popen(
            ["nsenter", "-t", str(lab.pid1), "-m", "-u", "-i", "-p", "-C", "-r", "-w", "--",
             SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        known_lines.append(known_line)
        addrs.append(addr)
        # where the floor's guards look (read, never written); an absolute link in the lab
        # would answer as this machine's file does, as a guard on the host would not
        roots.append(Path(f"/proc/{lab.pid1}/root"))
        pid1s.append(lab.pid1)
    known = _listening(tmp, addrs, known_lines)
    return Fleet(addrs, client_key, known, [p.pid for p in procs] + pid1s, roots,
                 f"{count} fault labs (systemd as PID 1), sshd on 127.0.2.1-{count}"), procs


def stop(procs: list[subprocess.Popen]) -> None:
    """End the fleet. `unshare --fork` ignores SIGTERM: its child (sshd, the PID namespace's
    init, whose end ends every process of the host) gets it instead."""
    for proc in procs:
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            children = []
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGTERM)
        proc.terminate()
    for proc in procs:
        proc.wait(10)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it (a host's sshd, its sessions, shells, commands)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(p for child in children for p in descendants(int(child)))]


def split_cpus() -> tuple[set[int], set[int]] | None:
    """The cores for the fleet and for this process: halves of ours; None on one core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    half = len(cores) // 2
    return set(cores[half:]), set(cores[:half])


def own_threads() -> list[int]:
    """The ids of this process's threads: the event loop's, and the default executor's that
    write the store (the recorder) and load keys, made by the rows before."""
    return [int(tid) for tid in os.listdir("/proc/self/task")]


@contextlib.contextmanager
def pinned(roots: list[int], fleet: set[int], own: set[int]) -> Iterator[None]:
    """The fleet's processes (``roots`` and all under them; those started later inherit it)
    on ``fleet``, every thread of this process on ``own`` (pid 0 would be the calling thread
    alone; a thread started later inherits its starter's cores); every core for all of them
    again afterwards, threads started meanwhile included."""
    every = os.sched_getaffinity(0)

    def pin(fleet_cpus: set[int], own_cpus: set[int]) -> None:
        for root in roots:
            for pid in descendants(root):
                with contextlib.suppress(OSError):  # a command that ended meanwhile
                    os.sched_setaffinity(pid, fleet_cpus)
        for tid in own_threads():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(tid, own_cpus)

    pin(fleet, own)
    try:
        yield
    finally:
        pin(every, every)


# -- measuring -----------------------------------------------------------------------------------

def _machine_fields() -> list[int]:
    with open("/proc/stat") as stat:
        return [int(f) for f in stat.readline().split()[1:8]]


def machine_cpu() -> float:
    """CPU seconds used by the whole machine so far (user, nice, system, irq, softirq)."""
    fields = _machine_fields()
    return (sum(fields[:3]) + sum(fields[5:7])) / os.sysconf("SC_CLK_TCK")


def machine_idle() -> float:
    """Core-seconds the machine's cores have been idle so far (idle, iowait): within a row,
    the time one core waited while the other still worked (the sweep's tail)."""
    fields = _machine_fields()
    return sum(fields[3:5]) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """CPU seconds of this process, all its threads (the sweeper's; Ansible's are its
    children's, not counted)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class HostsCpu:
    """The CPU seconds the fleet's processes used (every sshd, shell and command, those
    started later included), from a cgroup of their own: cgroup v2's ``cpu.stat``, or v1's
    cpuacct controller. What a sweep costs the managed hosts, apart from the sweeper's own
    CPU, which on a real fleet is another machine's."""

    NAME = f"ai-sysadmin-bench-{os.getpid()}"

    def __init__(self, roots: list[int]) -> None:
        v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
        self.path = Path("/sys/fs/cgroup" if v2 else "/sys/fs/cgroup/cpuacct") / self.NAME
        self.v2 = v2
        self.path.mkdir()
        for root in roots:
            for pid in descendants(root):
                with contextlib.suppress(ProcessLookupError):  # a command that ended
                    (self.path / "cgroup.procs").write_text(str(pid))

    @classmethod
    def of(cls, roots: list[int]) -> HostsCpu | None:
        """None where this machine gives no such cgroup (not root, no cgroupfs)."""
        try:
            return cls(roots)
        except OSError as exc:
            print(f"the hosts' CPU is left out: no cgroup of their own ({exc})")
            return None

    def seconds(self) -> float:
        if self.v2:
            stat = (self.path / "cpu.stat").read_text().split()
            return int(stat[stat.index("usage_usec") + 1]) / 1e6
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def remove(self) -> None:
        """Once the fleet has ended: its processes leave the cgroup as they exit."""
        deadline = time.monotonic() + 10
        while True:
            try:
                self.path.rmdir()
                return
            except OSError:
                if time.monotonic() > deadline:
                    print(f"left behind: cgroup {self.path} (its processes did not end)")
                    return
                time.sleep(0.05)


class Round:
    """One round's rows: wall seconds, the machine's CPU seconds and the hosts' of each."""

    def __init__(self, hosts_cpu: HostsCpu | None = None) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.hosts: dict[str, float] = {}
        #: rows this process ran itself: its own CPU, and the cores' idle time
        self.own: dict[str, float] = {}
        self.idle: dict[str, float] = {}
        self._hosts_cpu = hosts_cpu

    def _hosts_seconds(self) -> float:
        return self._hosts_cpu.seconds() if self._hosts_cpu is not None else 0.0

    def _took(self, row: str, started: float, cpu: float, hosts: float) -> None:
        self.wall[row], self.cpu[row] = time.monotonic() - started, machine_cpu() - cpu
        if self._hosts_cpu is not None:
            self.hosts[row] = self._hosts_seconds() - hosts

    async def timed(self, row: str, work: Awaitable[T]) -> T:
        own, idle = own_cpu(), machine_idle()
        cpu, hosts, started = machine_cpu(), self._hosts_seconds(), time.monotonic()
        result = await work
        self._took(row, started, cpu, hosts)
        self.own[row], self.idle[row] = own_cpu() - own, machine_idle() - idle
        return result

    def timed_sync(self, row: str, work: Callable[[], bool]) -> None:
        cpu, hosts, started = machine_cpu(), self._hosts_seconds(), time.monotonic()
        if work():  # a row whose hosts did not all answer is left out
            self._took(row, started, cpu, hosts)


async def settle() -> None:
    """Let the sessions a row closed end before the next row starts."""
    await asyncio.sleep(0.5)


# -- the floors: bare asyncssh ------------------------------------------------------------------

def bare_line(transport: SshTransport, settings: Settings, root: Path = Path("/"),
              journal: JournalQuery | None = None) -> str:
    """The commands a check of these hosts runs (reading the journal from ``journal``), as
    one plain sh line: each once (two rows may read one command; the script runs it once),
    files by one `tail -q` (stdio-buffered: fewer writes, so fewer packets, than `cat`'s one
    a file), sources whose guard fails on the hosts (their root seen here at ``root``: no
    systemd, no NixOS, the second os-release; a guard of several paths holds where any is)
    left out."""
    sources = Collector(transport, settings).sources(journal)
    holds = {"-d": os.path.isdir, "-L": os.path.islink, "-e": os.path.exists,
             "! -s": lambda path: not (os.path.isfile(path) and os.path.getsize(path))}
    asked = [s for s in sources
             if s.guard is None or any(holds[s.guard.test](f"{root}/{path.lstrip('/')}")
                                       for path in (s.guard.path, *s.guard.also))]
    files = list(dict.fromkeys(s.path for s in asked if s.path is not None))
    commands = dict.fromkeys(shlex.join(s.argv) for s in asked if s.path is None)
    return "; ".join([f"tail -q -n +1 -- {shlex.join(files)} 2>/dev/null", *commands])


class UntilDone(asyncssh.SSHClientSession[str]):
    """A shell whose output is only watched for its last line, in asyncssh's own callback:
    the least any reader of a reply does (no stream reader, nothing kept)."""

    def __init__(self) -> None:
        self.chan: asyncssh.SSHClientChannel[str] | None = None
        self.end, self.tail = "", ""
        self.ended: asyncio.Future[None] | None = None

    def connection_made(self, chan: asyncssh.SSHClientChannel[str]) -> None:
        self.chan = chan

    def data_received(self, data: str, datatype: asyncssh.DataType) -> None:
        if datatype is not None:
            return  # stderr: the bare line writes none
        self.tail = (self.tail + data)[-len(self.end):]
        if self.ended is not None and self.tail == self.end and not self.ended.done():
            self.ended.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ended is not None and not self.ended.done():
            self.ended.set_exception(EOFError("the shell ended"))

    async def run(self, script: str, end: str) -> None:
        assert self.chan is not None
        self.end, self.tail = end, ""
        self.ended = asyncio.get_running_loop().create_future()
        self.chan.write(script)
        await self.ended


class Bare:
    """Plain asyncssh connections: the key and known_hosts loaded once, the project's ciphers."""

    DONE = "@@bench-done@@"

    def __init__(self, addrs: list[str], key: Path, known: Path) -> None:
        self.addrs = addrs
        self.key = asyncssh.read_private_key(str(key))
        self.known = asyncssh.import_known_hosts(known.read_text())
        self.ciphers = SshSettings().ciphers
        self.conns: list[asyncssh.SSHClientConnection] = []
        self.shells: list[UntilDone] = []

    async def connect(self) -> None:
        self.conns = list(await asyncio.gather(*(
            asyncssh.connect(a, PORT, username="root", client_keys=[self.key],
                             known_hosts=self.known, config=[], encryption_algs=self.ciphers)
            for a in self.addrs)))

    async def run_each(self, command: str) -> None:
        await asyncio.gather(*(c.run(command, check=True) for c in self.conns))

    async def shell_each(self, lines: list[str]) -> None:
        """Each host's line (in the order of ``addrs``) in its open ``sh -s`` (opened on
        first use), read to its end."""
        if not self.shells:
            self.shells = [shell for _, shell in await asyncio.gather(*(
                c.create_session(UntilDone, "sh -s") for c in self.conns))]
        await asyncio.gather(*(s.run(f"{line}\necho {self.DONE}\n", f"{self.DONE}\n")
                               for s, line in zip(self.shells, lines, strict=True)))

    async def close(self) -> None:
        for conn in self.conns:
            conn.close()
        await asyncio.gather(*(c.wait_closed() for c in self.conns))
        self.conns, self.shells = [], []


# -- this project --------------------------------------------------------------------------------

def transports(addrs: list[str], key: Path, known: Path) -> list[SshTransport]:
    ciphers = SshSettings().ciphers  # what the daemon uses
    return [SshTransport(SshTarget(host=a, port=PORT, user="root", key_files=(str(key),),
                                   known_hosts=known, global_known_hosts=None, ciphers=ciphers),
                         name=a)
            for a in addrs]


async def script_only(ts: list[SshTransport], settings: Settings,
                      journals: list[JournalQuery | None] | None = None) -> None:
    """The check's remote script (each host's journal read from ``journals``) through the
    transport, its reply not even split: the transport's share of a sweep."""
    async def one(transport: SshTransport, journal: JournalQuery | None) -> None:
        trip = _collector(transport, settings).script(journal)
        await transport.run_script(trip.script, trip.done, trip.timeout)

    await asyncio.gather(*(one(t, j) for t, j in zip(ts, journals or [None] * len(ts),
                                                      strict=True)))


_COLLECTORS: weakref.WeakKeyDictionary[SshTransport, Collector] = weakref.WeakKeyDictionary()


def _collector(transport: SshTransport, settings: Settings) -> Collector:
    """One collector a transport, as a checker keeps one: its script planned once."""
    if transport not in _COLLECTORS:
        _COLLECTORS[transport] = Collector(transport, settings)
    return _COLLECTORS[transport]


def journals_of(checkers: list[HostChecker], store: IncidentStore) -> list[JournalQuery | None]:
    """Where each checker's next check reads its host's journal from (as it stored it)."""
    return [JournalQuery(store.journal_cursor(c.host, c.consumer), c.settings.journal_first_lines)
            for c in checkers]


async def project_round(rnd: Round, fleet: Fleet, state: Path, warm_repeats: int) -> int:
    """The cold rows, then the warm ones alternating with their floor (the median of each is
    kept), then the sequential sweep, then the split-cpu rows; returns how many snapshots the
    cold sweep collected in full (every section the hosts have)."""
    settings = Settings(ai_name="bench", state_dir=state)
    first = fleet.lines(settings, [None] * len(fleet.addrs))  # as a first check reads
    bare = Bare(fleet.addrs, fleet.key, fleet.known)
    await rnd.timed(FLOOR, _connect_and(bare, bare.run_each("true")))
    await bare.close()
    await settle()
    await rnd.timed(SAME, _connect_and(bare, bare.shell_each(first)))
    await bare.close()
    await settle()
    alone = fleet.transports()
    await rnd.timed(ALONE, script_only(alone, settings))
    await asyncio.gather(*(t.close() for t in alone))
    await settle()
    store = IncidentStore(Database(settings.db_path))
    ts = fleet.transports()
    checkers = fleet_checkers(ts, settings, store)  # as the daemon has them
    reports = await rnd.timed(OURS, asyncio.gather(*(c.check("bench") for c in checkers)))
    journals = journals_of(checkers, store)
    lines = fleet.lines(settings, journals)  # what a second check asks, bare
    await bare.connect()  # the warm floor's connections and shells, opened and used once
    await bare.shell_each(lines)
    await script_only(alone, settings, journals)  # the same for the transport alone
    await warm_rows(rnd, warm_repeats, {
        OURS_WARM: lambda: asyncio.gather(*(c.check("bench") for c in checkers)),
        FLOOR_WARM: lambda: bare.shell_each(lines),
        ALONE_WARM: lambda: script_only(alone, settings, journals)})
    await bare.close()
    await asyncio.gather(*(t.close() for t in [*ts, *alone]))
    await settle()
    seq_ts = fleet.transports()
    seq = [HostChecker(t, settings, store, consumer="seq") for t in seq_ts]

    async def one_by_one() -> None:
        for checker in seq:
            await checker.check("bench")

    await rnd.timed(SEQUENTIAL, one_by_one())
    await asyncio.gather(*(t.close() for t in seq_ts))
    await settle()
    halves = split_cpus()
    if halves is not None:
        with pinned(fleet.pids, *halves):
            await split_round(rnd, fleet, settings, store, first, warm_repeats)
    return sum(1 for r in reports if r.snapshot.load is not None and not r.errors)


async def split_round(rnd: Round, fleet: Fleet, settings: Settings, store: IncidentStore,
                      first: list[str], warm_repeats: int) -> None:
    """The floors and the project's sweeps, cold then warm, as :func:`project_round` runs
    them, with the fleet's cores apart from this process's."""
    bare = Bare(fleet.addrs, fleet.key, fleet.known)
    await rnd.timed(FLOOR + SPLIT, _connect_and(bare, bare.run_each("true")))
    await bare.close()
    await settle()
    await rnd.timed(SAME + SPLIT, _connect_and(bare, bare.shell_each(first)))
    await bare.close()
    await settle()
    ts = fleet.transports()
    checkers = fleet_checkers(ts, settings, store, consumer="split")
    await rnd.timed(OURS + SPLIT, asyncio.gather(*(c.check("bench") for c in checkers)))
    lines = fleet.lines(settings, journals_of(checkers, store))
    await bare.connect()
    await bare.shell_each(lines)
    await warm_rows(rnd, warm_repeats, {
        OURS_WARM + SPLIT: lambda: asyncio.gather(*(c.check("bench") for c in checkers)),
        FLOOR_WARM + SPLIT: lambda: bare.shell_each(lines)})
    await bare.close()
    await asyncio.gather(*(t.close() for t in ts))
    await settle()


async def warm_rows(rnd: Round, repeats: int,
                    rows: dict[str, Callable[[], Awaitable[object]]]) -> None:
    """Each row ``repeats`` times, the rows alternating (so that a slow moment of the machine
    falls on all of them alike); each keeps its median."""
    kept = (rnd.wall, rnd.cpu, rnd.hosts, rnd.own, rnd.idle)
    runs: dict[str, list[list[float | None]]] = {row: [] for row in rows}
    for _ in range(repeats):
        for row, work in rows.items():
            await rnd.timed(row, work())
            runs[row].append([values.get(row) for values in kept])
    for row, measured in runs.items():
        for n, values in enumerate(kept):
            taken = [m[n] for m in measured if m[n] is not None]
            if taken:
                values[row] = statistics.median(taken)


async def _connect_and(bare: Bare, then: Awaitable[None]) -> None:
    await bare.connect()
    await then


# -- Ansible -------------------------------------------------------------------------------------

class Ansible:
    """One Ansible configuration: its ansible.cfg, inventory and control master directory."""

    def __init__(self, name: str, tmp: Path, addrs: list[str], key: Path, known: Path,
                 settings: dict[str, dict[str, str]]) -> None:
        self.name = name
        self.addrs = addrs
        self.settings = settings
        self.dir = tmp / f"ansible-{name}"
        self.dir.mkdir()
        self.control_dir = self.dir / "cp"
        self.inventory = self.dir / "inventory.ini"
        self.inventory.write_text("[all]\n" + "\n".join(
            f"{a} ansible_port={PORT} ansible_user=root ansible_ssh_private_key_file={key}"
            for a in addrs) + "\n")
        sections: dict[str, dict[str, str]] = {
            "defaults": {"forks": str(len(addrs)), "interpreter_python": "/usr/bin/python3",
                         "host_key_checking": "True", "local_tmp": str(self.dir / "local"),
                         "remote_tmp": str(self.dir / "remote")},
            # host keys as this project checks them: the bench's known_hosts, never added to
            "ssh_connection": {"ssh_common_args": f"-o UserKnownHostsFile={known} "
                                                  "-o StrictHostKeyChecking=yes",
                               "control_path_dir": str(self.control_dir)},
        }
        for section, values in settings.items():
            sections.setdefault(section, {}).update(values)
        self.config = self.dir / "ansible.cfg"
        self.config.write_text("".join(
            f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
            for section, values in sections.items()))

    @property
    def described(self) -> str:
        given = [f"{k} = {v}" for values in self.settings.values() for k, v in values.items()]
        return ", ".join(given)

    def run(self, module: list[str]) -> bool:
        """One ad-hoc run on every host; whether every host answered."""
        env = {**os.environ, "ANSIBLE_CONFIG": str(self.config),
               "ANSIBLE_HOME": str(self.dir / "home"), "ANSIBLE_NOCOLOR": "1"}
        done = subprocess.run([str(ANSIBLE), "all", "-i", str(self.inventory), *module],
                              env=env, capture_output=True, text=True)
        ok = done.stdout.count(" | SUCCESS") + done.stdout.count(" | CHANGED")
        if ok != len(self.addrs):
            print(f"  ansible {self.name} {' '.join(module)}: {ok}/{len(self.addrs)} hosts "
                  f"answered, row left out: {done.stderr.strip()[-300:]}")
        return ok == len(self.addrs)

    def stop_masters(self) -> None:
        """End the control masters its runs left (ControlPersist keeps them 60 s)."""
        if self.control_dir.is_dir():
            for path in self.control_dir.iterdir():
                if path.is_socket():
                    subprocess.run(["ssh", "-o", f"ControlPath={path}", "-O", "exit", "bench"],
                                   capture_output=True)

            def gone_already(function: object, path: str,
                             exc_info: tuple[type[BaseException], BaseException, object]) -> None:
                # a master told to exit removes its own socket, maybe just as rmtree does
                if not issubclass(exc_info[0], FileNotFoundError):
                    raise exc_info[1]

            shutil.rmtree(self.control_dir, onerror=gone_already)


def ansible_round(rnd: Round, configs: list[Ansible]) -> None:
    """Each configuration cold (no control master yet), then warm: the cold run opened the
    masters, the next run is measured. Then `-m raw` with the last (best) configuration."""
    for config in configs:
        rnd.timed_sync(f"ansible {config.name}", lambda c=config: c.run(COMMAND))
        rnd.timed_sync(f"ansible {config.name}, warm", lambda c=config: c.run(COMMAND))
    best = configs[-1]
    rnd.timed_sync(f"ansible {best.name} -m raw, warm",
                   lambda: best.run(["-m", "raw", "-a", "cat /proc/loadavg"]))
    for config in configs:
        config.stop_masters()  # the next round's cold rows start with none, ours too
    time.sleep(0.5)


# -- the table -----------------------------------------------------------------------------------

def spread(values: list[float], digits: int = 2) -> str:
    """Median and range: ``1.23 (1.10-1.40)``."""
    if not values:
        return "-"
    mid = f"{statistics.median(values):.{digits}f}"
    if len(values) == 1:
        return mid
    return f"{mid} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def gap(rounds: list[Round], row: str, floor: str) -> str:
    """What ``row`` spends more than ``floor``, part by part (median over the rounds): the
    sweeper's CPU, the hosts' and the cores' idle time (a tail where one core waits)."""
    parts = [("sweeper", "own"), ("hosts", "hosts"), ("idle", "idle")]
    said = []
    for name, of in parts:
        values = [getattr(r, of)[row] - getattr(r, of)[floor] for r in rounds
                  if row in getattr(r, of) and floor in getattr(r, of)]
        if values:
            said.append(f"{name} {statistics.median(values):+.3f}")
    return ", ".join(said) or "-"


def report(rounds: list[Round], configs: list[Ansible], fleet: Fleet, collected: list[int],
           tables: str) -> None:
    def ratio(num: str, den: str, digits: int = 2, of: str = "wall") -> str:
        values = [getattr(r, of) for r in rounds]
        return spread([v[num] / v[den] for v in values if num in v and v.get(den)],
                      digits) + "x"

    for r in rounds:  # the baseline: the best -m command row of each round, cold and warm
        for suffix in ("", ", warm"):
            found = [r.wall[f"ansible {c.name}{suffix}"] for c in configs
                     if f"ansible {c.name}{suffix}" in r.wall]
            if found:
                r.wall[f"{BEST}{suffix}"] = min(found)
    raw = f"ansible {configs[-1].name} -m raw, warm" if configs else ""
    rows = [(FLOOR, "cold  floor: bare asyncssh, `true` per host"),
            (SAME, "cold  bare asyncssh, the check's commands in one sh"),
            (ALONE, "cold  this project's transport alone: script, no parsing"),
            (OURS, "cold  this project, full sweep"),
            *[(f"ansible {c.name}", f"cold  ansible -m command, {c.name}") for c in configs],
            (SEQUENTIAL, "cold  this project, host after host"),
            (FLOOR_WARM, "warm  floor: the same commands in an open sh, bare"),
            (ALONE_WARM, "warm  this project's transport alone: script, no parsing"),
            (OURS_WARM, "warm  this project, second sweep"),
            *[(f"ansible {c.name}, warm", f"warm  ansible -m command, {c.name}")
              for c in configs],
            *([(raw, f"warm  ansible -m raw, {configs[-1].name} (not the baseline)")]
              if configs else []),
            (FLOOR + SPLIT, "split cold  floor: bare asyncssh, `true` per host"),
            (SAME + SPLIT, "split cold  bare asyncssh, the check's commands in one sh"),
            (OURS + SPLIT, "split cold  this project, full sweep"),
            (FLOOR_WARM + SPLIT, "split warm  floor: the same commands in an open sh"),
            (OURS_WARM + SPLIT, "split warm  this project, second sweep")]
    hosts = len(fleet.addrs)
    print(f"{fleet.described}, {len(rounds)} round(s); snapshots complete: "
          f"{', '.join(f'{c}/{hosts}' for c in collected)}")
    print("seconds: median (range) over the rounds; cpu: the machine's CPU seconds in the row"
          + ("; hosts: the fleet's own (sshd, shells, commands)"
             if any(r.hosts for r in rounds) else "")
          + "; sweeper: this process's (rows it ran); idle: the cores' idle seconds")
    print(f"process tables: {tables}")
    for row, label in rows:
        wall = [r.wall[row] for r in rounds if row in r.wall]
        cpu = [r.cpu[row] for r in rounds if row in r.cpu]
        hosts_cpu = [r.hosts[row] for r in rounds if row in r.hosts]
        own = [r.own[row] for r in rounds if row in r.own]
        idle = [r.idle[row] for r in rounds if row in r.idle]
        if wall:
            print(f"  {label:56s} {spread(wall, 3):>21s} s   cpu {spread(cpu, 1)}"
                  + (f"   hosts {spread(hosts_cpu, 3)}" if hosts_cpu else "")
                  + (f"   sweeper {spread(own, 3)}   idle {spread(idle, 3)}" if own else ""))
    for c in configs:
        print(f"  ansible {c.name}: {c.described or 'ssh_args as shipped (ControlPersist)'}; "
              f"forks = {hosts}, interpreter_python named, host keys: the bench's known_hosts "
              "with StrictHostKeyChecking=yes")
    print("ratios: median (range) of each round's ratio")
    print(f"  cold  this project / floor: {ratio(OURS, FLOOR)} (target <= 1.3)")
    print(f"  cold  the same commands, bare / floor: {ratio(SAME, FLOOR)}; this project / "
          f"them: {ratio(OURS, SAME)}")
    print(f"  cold  transport alone / the same commands, bare: {ratio(ALONE, SAME)}")
    print(f"  warm  this project / its floor: {ratio(OURS_WARM, FLOOR_WARM)} (target <= 1.1)")
    print(f"  warm  transport alone / its floor: {ratio(ALONE_WARM, FLOOR_WARM)}")
    print(f"  warm  where this project's extra time goes (core-seconds more than its floor; "
          f"wall ~ their sum / {os.cpu_count()} cores): {gap(rounds, OURS_WARM, FLOOR_WARM)}")
    if any(OURS_WARM in r.hosts for r in rounds):
        print("  the hosts' CPU (what a sweep costs the managed hosts, the sweeper's own CPU "
              "apart):")
        print(f"    cold  this project / the same commands, bare: "
              f"{ratio(OURS, SAME, of='hosts')}; warm  this project / its floor: "
              f"{ratio(OURS_WARM, FLOOR_WARM, of='hosts')}")
    if configs:
        print(f"  cold  best ansible / this project: {ratio(BEST, OURS, 1)} faster "
              "(target >= 10)")
        print(f"  warm  best ansible / this project: {ratio(f'{BEST}, warm', OURS_WARM, 1)} "
              "faster")
        print(f"  warm  ansible -m raw / this project: {ratio(raw, OURS_WARM, 1)} faster")
    print(f"  cold  host after host / this project: {ratio(SEQUENTIAL, OURS, 1)}")
    if any(OURS + SPLIT in r.wall for r in rounds):
        print("  split cpus (the fleet on its own cores, as on a real fleet):")
        print(f"    cold  this project / floor: {ratio(OURS + SPLIT, FLOOR + SPLIT)}; the same "
              f"commands, bare / floor: {ratio(SAME + SPLIT, FLOOR + SPLIT)}; this project / "
              f"them: {ratio(OURS + SPLIT, SAME + SPLIT)}")
        print(f"    warm  this project / its floor: "
              f"{ratio(OURS_WARM + SPLIT, FLOOR_WARM + SPLIT)}; more than its floor: "
              f"{gap(rounds, OURS_WARM + SPLIT, FLOOR_WARM + SPLIT)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int,
                        help="how many hosts (default 50; 10 with --systemd, see there)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm-repeats", type=int, default=3,
                        help="warm sweeps per round, each beside its floor (median taken)")
    parser.add_argument("--shared-pids", action="store_true",
                        help="all hosts in this machine's process table (each `ps` then lists "
                             "every host's processes)")
    parser.add_argument("--systemd", action="store_true",
                        help="each host a fault lab with systemd as its PID 1, so that the "
                             "check runs every command (systemctl, journalctl, ...); no "
                             "Ansible rows")
    parser.add_argument("--no-ansible", action="store_true",
                        help="leave the Ansible rows out (they take a minute a round)")
    args = parser.parse_args()
    # a `kill` (SIGTERM) ends the bench through its clean-up too: the sshds, the labs' cgroups
    # and work directories, the inotify limit (by default it ends Python with none of that)
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    if args.hosts is None:
        args.hosts = LAB_HOSTS if args.systemd else 50
    if args.systemd:
        # Ansible reads /proc/loadavg, the same on any host: its rows are those of the
        # plain fleet; this fleet asks what the check's own commands cost beside our sweep
        args.no_ansible = True
    if not args.no_ansible and not ANSIBLE.exists():
        print("ansible rows left out: no ansible here (pip install -c constraints.txt "
              "-e '.[bench]')")
        args.no_ansible = True
    rounds: list[Round] = []
    collected: list[int] = []
    procs: list[subprocess.Popen] = []
    hosts_cpu: HostsCpu | None = None
    with tempfile.TemporaryDirectory() as name, contextlib.ExitStack() as labs:
        tmp = Path(name)
        if args.systemd:
            fleet, procs = start_lab_fleet(tmp, args.hosts, labs)
        else:
            fleet, procs = start_fleet(tmp, args.hosts, not args.shared_pids)
            # a lab's processes stay in the cgroups its systemd made them: plain fleet only
            hosts_cpu = HostsCpu.of(fleet.pids)
            if hosts_cpu is not None:
                labs.callback(hosts_cpu.remove)  # after stop() below: the fleet has ended
        configs = [] if args.no_ansible else [
            Ansible(name, tmp, fleet.addrs, fleet.key, fleet.known, given)
            for name, given in (("defaults", {}), ("best", ANSIBLE_BEST))]
        try:
            for n in range(args.rounds):
                rnd = Round(hosts_cpu)
                collected.append(asyncio.run(project_round(
                    rnd, fleet, tmp / f"state{n}", args.warm_repeats)))
                if configs:
                    ansible_round(rnd, configs)
                rounds.append(rnd)
        finally:
            try:
                for config in configs:
                    config.stop_masters()
            finally:
                stop(procs)  # whatever happened above: no sshd outlives the bench
    tables = ("one for all hosts (--shared-pids)" if args.shared_pids
              else "one per host (PID namespaces)")
    report(rounds, configs, fleet, collected, tables)


if __name__ == "__main__":
    main()
