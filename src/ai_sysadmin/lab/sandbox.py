"""A real systemd + journald as PID 1 of private namespaces, on a copy-on-write view of ``/``.

The host stays untouched: writes land on a tmpfs overlay layer, /run, /tmp and /dev are private,
/proc/sys is read-only, and the lab has its own net/uts/ipc/pid/cgroup namespaces. Several
sandboxes may run at once: each has its own work directory and cgroup. Needs root and cgroup v2
(a pure v2 host or the ``unified`` hierarchy of a hybrid one).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import LabError
from ..hosts.transport import CommandResult
from .init import FAILED

#: units that make no sense in a container, or would reach for the host's hardware or network
MASKED_UNITS = (
    "getty.target", "console-getty.service", "systemd-firstboot.service",
    "systemd-repart.service", "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount",
    "systemd-modules-load.service", "apt-daily.timer", "apt-daily-upgrade.timer",
    # the host's own sshd, if installed and enabled, would start in every lab on port 22
    "ssh.service", "ssh.socket",
)
SYSTEMD_CANDIDATES = (
    "/lib/systemd/systemd",
    "/usr/lib/systemd/systemd",
    "/run/current-system/systemd/lib/systemd/systemd",
)
POLL = 0.02
#: seconds a power-off may take before the lab is killed (a clean one takes about 0.1 s)
POWEROFF_GRACE = 3.0
#: what a lab's work directory is called in its base directory (then mkdtemp's letters)
WORKDIR_PREFIX = "ai-sysadmin-lab-"
#: a lab's cgroup: its work directory's name, then the PID of the process that started it
_LAB_CGROUP = re.compile(re.escape(WORKDIR_PREFIX) + r"[a-z0-9_]+-([1-9][0-9]*)")
#: the signals that stop a command (the CLI makes SIGTERM and SIGHUP do what SIGINT does)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: the lab's own namespaces: (nsenter's option, the file's name in /proc/PID/ns)
NAMESPACES = (("mount", "mnt"), ("uts", "uts"), ("ipc", "ipc"), ("net", "net"),
              ("pid", "pid"), ("cgroup", "cgroup"))
#: setns(2)'s type of a network namespace
CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class LabPrograms:
    """Host programs the lab runs; every path is configurable (Nix store paths, other distros)."""

    unshare: str = "unshare"
    nsenter: str = "nsenter"
    setpriv: str = "setpriv"
    mount: str = "mount"
    umount: str = "umount"
    pivot_root: str = "pivot_root"
    env: str = "env"
    systemd: str | None = None  # None: the first of SYSTEMD_CANDIDATES that exists

    def resolved(self) -> dict[str, str]:
        """Absolute real paths: they stay valid inside the lab, whose /run is private."""
        out: dict[str, str] = {}
        for name, value in asdict(self).items():
            if name == "systemd":
                found = value or next((c for c in SYSTEMD_CANDIDATES if os.path.exists(c)), None)
            else:
                found = shutil.which(value)
            if not found or not os.access(found, os.X_OK):
                raise LabError(f"the fault lab needs {name!r} ({value or 'systemd'}): not found")
            out[name] = os.path.realpath(found)
        return out


def cgroup2_root() -> Path:
    """A writable cgroup2 hierarchy: a pure v2 host's root, or a hybrid host's ``unified``."""
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        v2 = {line.split()[4] for line in handle if " - cgroup2 " in line}
    for candidate in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if candidate in v2:
            return Path(candidate)
    raise LabError("the fault lab needs a cgroup2 hierarchy at /sys/fs/cgroup[/unified]")


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        targets = [line.split()[4] for line in handle]
    return [t for t in targets if t == str(path) or t.startswith(prefix)]


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold the signals that stop a command until the block is over, then take them as they
    came (a KeyboardInterrupt raised after it, a SIGTERM that ends the process after it).

    For taking a lab down: Ctrl-C in the middle of its stop left its work directory and
    cgroup behind for good. Python runs signal handlers in the main thread only, so a block
    of another thread has nothing to hold."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    before: dict[signal.Signals, Any] = {}
    for sig in STOP_SIGNALS:
        handler = signal.getsignal(sig)
        if handler is signal.SIG_IGN or handler is None:
            continue  # ignored stays ignored; one not set from Python is not Python's to hold
        before[sig] = signal.signal(sig, lambda signum, _frame: came.append(signum))
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(came):
            signal.raise_signal(sig)


def _setns(fd: int, nstype: int) -> None:
    # os.setns is Python 3.12's
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _socket_in(netns: int, family: int, kind: int) -> socket.socket:
    """A socket of the network namespace ``netns``: it is made there by a thread of its own
    (a namespace is a thread's to enter), and stays of that namespace wherever it is used."""
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def make() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(netns, CLONE_NEWNET)
            try:
                made.append(socket.socket(family, kind))
            finally:
                _setns(own, CLONE_NEWNET)
        except BaseException as exc:  # handed to the caller's thread
            failed.append(exc)
        finally:
            os.close(own)

    thread = threading.Thread(target=make, name="lab-netns", daemon=True)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


def _owner_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _remove_empty_cgroup(cgroup: Path) -> bool:
    """Remove ``cgroup`` and its children, deepest first; False where one still holds a
    process (the kernel refuses to remove a cgroup in use)."""
    try:
        for dirpath, _dirs, _files in os.walk(cgroup, topdown=False):
            os.rmdir(dirpath)
    except OSError:
        return False
    return True


def _pid_namespace() -> str:
    """This process's PID namespace (``pid:[4026531836]``): a PID means something in it alone."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _workdir_owner(workdir: Path) -> tuple[int, str] | None:
    """(the PID that started it, its cgroup) of a lab's work directory that this user made
    (mkdtemp's mode 0700) from this PID namespace: None for anything else that bears the
    name, and for a lab started in another PID namespace (a container sharing this /tmp),
    whose PID says nothing here."""
    try:
        info = workdir.lstat()
        config = json.loads((workdir / "config.json").read_text(encoding="utf-8"))
        pid, cgroup = config["parent_pid"], config["cgroup"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        return None
    if not isinstance(pid, int) or pid <= 0 or not isinstance(cgroup, str):
        return None
    if config.get("pid_namespace", _pid_namespace()) != _pid_namespace():
        return None
    return pid, cgroup


def sweep_leftovers(base_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Remove what labs whose starting process is gone left behind, and return it: their
    cgroups (named with that PID) and work directories in ``base_dir`` (default: the temp
    directory). A lab SIGKILLed with its drill dies with it (parent-death signal), but its
    files stayed. Nothing of a living process is touched, nor a cgroup that still holds a
    process, nor a directory that still has a mount under it."""
    removed: list[str] = []
    base = Path(base_dir if base_dir is not None else tempfile.gettempdir())
    with contextlib.suppress(OSError, LabError):
        for cgroup in cgroup2_root().iterdir():
            found = _LAB_CGROUP.fullmatch(cgroup.name)
            if found and _owner_gone(int(found[1])) and not _elsewhere(cgroup, base) \
                    and _remove_empty_cgroup(cgroup):
                removed.append(str(cgroup))
    with contextlib.suppress(OSError):
        for workdir in base.glob(f"{WORKDIR_PREFIX}*"):
            owner = _workdir_owner(workdir)
            if owner is None or not _owner_gone(owner[0]) or os.path.lexists(owner[1]):
                continue
            if _mounts_under(workdir):
                continue
            shutil.rmtree(workdir, ignore_errors=True)
            removed.append(str(workdir))
    return removed


def _elsewhere(cgroup: Path, base: Path) -> bool:
    """Whether the lab of ``cgroup`` was started in another PID namespace, by its work
    directory's word: the PID in the cgroup's name is then no process of ours to ask after."""
    workdir = base / cgroup.name.rpartition("-")[0]
    try:
        config = json.loads((workdir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("pid_namespace", _pid_namespace()) \
        != _pid_namespace()


def _kill_nsenter(proc: subprocess.Popen[str]) -> None:
    """Kill a command run through nsenter without leaving a zombie in the lab.

    nsenter's child lives in the lab's pid namespace but its parent is outside: if nsenter died
    first, the child would be handed to the host's init, and a host init that does not reap
    leaves a zombie that the lab's poweroff then waits for. So the child dies first, nsenter
    reaps it and exits; whatever is left of the process group goes last.
    """
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class Sandbox:
    """One lab machine. ``with Sandbox() as sb: sb.exec([...])`` or ``start()``/``stop()``.

    The lab dies with the thread that started it (parent-death signal), so that a killed test
    run leaves no systemd behind: start and stop it from one long-lived thread.
    """

    def __init__(
        self,
        *,
        size: str = "512m",
        hostname: str = "sdtest",
        base_dir: str | os.PathLike[str] | None = None,
        boot_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        programs: LabPrograms | None = None,
        binds: Sequence[str] = (),
    ) -> None:
        """``binds``: host directories shown read-only at the same path in the lab, for what
        lives under the lab's private /tmp or /run (a checkout and its venv in /tmp)."""
        self.size = size
        self.binds = tuple(str(Path(b).resolve()) for b in binds)
        self.hostname = hostname
        self.base_dir = base_dir
        self.boot_timeout = boot_timeout
        self.stop_timeout = stop_timeout
        self.programs = programs or LabPrograms()
        self.workdir: Path | None = None
        self.pid1: int | None = None
        self._cgroup: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._nsenter = "nsenter"
        #: PID 1 itself, whatever its PID comes to mean later (see :meth:`_hold`)
        self._pidfd: int | None = None
        #: nsenter's option -> a descriptor of the lab's namespace of that kind
        self._ns: dict[str, int] = {}

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return (self._proc is not None and self._proc.poll() is None and self.pid1 is not None
                and self._pid1_alive())

    def start(self) -> Sandbox:
        """Boot systemd; returns once ``systemctl is-system-running --wait`` has answered."""
        if self._proc is not None:
            raise LabError("this sandbox is already started")
        if os.geteuid() != 0:
            raise LabError("the fault lab needs root (namespaces, mounts, cgroups)")
        try:
            self._boot()
        except (LabError, OSError) as exc:
            tail, failed = self.log_tail(), self._failed_step()
            with contextlib.suppress(LabError):  # the boot's failure is the news
                self.stop()
            raise LabError(f"the lab did not start: {failed + '; ' if failed else ''}{exc}; "
                           f"PID 1 log: {tail or '(empty)'}") from exc
        except BaseException:
            with contextlib.suppress(LabError):
                self.stop()  # Ctrl-C during boot: leave nothing behind
            raise
        return self

    def _boot(self) -> None:
        programs = self.programs.resolved()
        # nsenter runs on the host: keep the name as found (a multi-call binary needs it)
        self._nsenter = shutil.which(self.programs.nsenter) or programs["nsenter"]
        sweep_leftovers(self.base_dir)
        self.workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=self.base_dir))
        # the cgroup's name must be new in the whole hierarchy (mkdtemp's is new in base_dir
        # only): one that exists is another lab's, never to be taken, nor removed by our stop
        cgroup = cgroup2_root() / f"{self.workdir.name}-{os.getpid()}"
        cgroup.mkdir()
        self._cgroup = cgroup
        config = {
            "parent_pid": os.getpid(),
            "pid_namespace": _pid_namespace(),
            "cgroup": str(self._cgroup),
            "size": self.size,
            "hostname": self.hostname,
            "masked": list(MASKED_UNITS),
            "programs": programs,
            "binds": list(self.binds),
        }
        (self.workdir / "config.json").write_text(json.dumps(config), encoding="utf-8")
        deadline = time.monotonic() + self.boot_timeout
        with open(self.workdir / "pid1.log", "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "ai_sysadmin.lab.init", "enter", str(self.workdir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the caller's terminal must not reach it
            )
        self.pid1 = self._wait_for_pid1(deadline)
        self._wait_for_systemd(deadline)

    def _alive_or_raise(self, what: str) -> None:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise LabError(f"the lab exited with status {self._proc.returncode} {what}")

    def _wait_for_pid1(self, deadline: float) -> int:
        assert self._proc is not None
        children = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children")
        while time.monotonic() < deadline:
            self._alive_or_raise("before PID 1 was forked")
            with contextlib.suppress(OSError):
                first = children.read_text(encoding="ascii").split()
                if first:
                    self._hold(int(first[0]))
                    return int(first[0])
            time.sleep(POLL)
        raise LabError(f"PID 1 of the lab did not appear within {self.boot_timeout:g} s")

    def _hold(self, pid: int) -> None:
        """Hold PID 1 and its namespaces by descriptors, for as long as the lab is up.

        A PID is a number the kernel hands out again: once the lab's systemd exits (a power-off
        inside the lab), ``nsenter -t PID`` would enter whatever host process got the number
        next and run lab commands as root on the host. A namespace held open stays the lab's;
        the pidfd tells that PID 1 is gone."""
        try:
            self._pidfd = os.pidfd_open(pid)
        except OSError as exc:
            raise LabError(f"cannot hold the lab's PID 1 ({pid}): {exc}") from exc
        for option, name in NAMESPACES:
            try:
                fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise LabError(f"cannot hold the lab's {name} namespace: {exc}") from exc
            self._ns[option] = fd
            # the lab shares none with this process: one that did would be the host's
            if os.fstat(fd).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                raise LabError(f"PID {pid} is in this machine's {name} namespace, not a lab's")
        # still alive once every namespace is open, and our child's child: the files were
        # its own, not those of a process that took its number in between
        if not self._pid1_alive() or self._parent_of(pid) != self._proc_pid():
            raise LabError(f"the lab's PID 1 ({pid}) exited while it was being held")

    def _proc_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @staticmethod
    def _parent_of(pid: int) -> int | None:
        try:
            stat_line = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        # the command's name (2nd field) may hold spaces and parentheses: count from the last
        return int(stat_line.rpartition(")")[2].split()[1])

    def _pid1_alive(self) -> bool:
        """Whether the process that was the lab's PID 1 still runs (its number may not)."""
        if self._pidfd is None:
            return False
        poller = select.poll()
        poller.register(self._pidfd, select.POLLIN)
        return not poller.poll(0)  # a pidfd reads as ready once its process has exited

    def _signal_pid1(self, sig: int) -> None:
        # through the pidfd: the PID alone may name another process by now
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, sig)

    def _release(self) -> None:
        """Close what :meth:`_hold` opened: a namespace held open outlives its processes (the
        mount namespace keeps the lab's tmpfs in memory)."""
        for fd in (*self._ns.values(), *([self._pidfd] if self._pidfd is not None else [])):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._ns, self._pidfd = {}, None

    def _wait_for_systemd(self, deadline: float) -> None:
        # PID 1 is our Python boot stage until it execs systemd; only then does its /run hold
        # the lab's own bus socket (before the pivot it would be the host's).
        comm = Path(f"/proc/{self.pid1}/comm")
        socket = Path(f"/proc/{self.pid1}/root/run/systemd/private")
        while True:
            self._alive_or_raise("while booting")
            with contextlib.suppress(OSError):
                if comm.read_text(encoding="ascii").strip() == "systemd" and socket.exists():
                    break
            if time.monotonic() >= deadline:
                raise LabError(f"systemd did not open its bus within {self.boot_timeout:g} s")
            time.sleep(POLL)
        while True:
            left = max(deadline - time.monotonic(), 1.0)
            state = self.exec(["systemctl", "is-system-running", "--wait"], timeout=left)
            # the socket is there from its bind(), before systemd listens on it: a connect
            # in between is refused, and systemctl, falling back to D-Bus (not in the lab),
            # says "Failed to connect to bus" (seen once in some 400 boots of a busy run)
            if "Failed to connect to bus" not in state.stderr or time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        # "degraded" (a unit failed) is a state worth drilling on, not a failed boot
        if state.stdout.strip() not in ("running", "degraded"):
            raise LabError(
                f"systemd did not reach running: {(state.stdout + state.stderr).strip()[:300]}"
            )

    def stop(self) -> None:
        """Power off (SIGRTMIN+4), SIGKILL after a few seconds; remove cgroup and work dir.

        A clean power-off takes about 0.1 s. One that takes longer waits on a unit that
        ignores its stop (a scenario's hog) or a manager that let the signal pass, and the
        lab is thrown away either way: it is not waited for the whole ``stop_timeout``.
        Ctrl-C or SIGTERM meanwhile is taken once the lab is gone (:func:`signals_held`)."""
        with signals_held():
            self._stop()

    def _stop(self) -> None:
        proc, pid1 = self._proc, self.pid1
        if proc is not None and proc.poll() is None:
            if pid1 is not None and self._pid1_alive() and self._is_systemd(pid1):
                self._signal_pid1(signal.SIGRTMIN + 4)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(min(self.stop_timeout, POWEROFF_GRACE))
            if proc.poll() is None:
                # SIGKILL of a namespace's PID 1 kills every process in it
                self._signal_pid1(signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(self.stop_timeout)
        if proc is not None and proc.poll() is None:
            # its files and cgroup stay with it: nothing of a live lab is removed
            raise LabError(f"the lab (pid {proc.pid}) survived SIGKILL")
        self._release()
        self._proc, self.pid1 = None, None
        problems = []
        # each step whatever the one before it did: a cgroup still busy must not leave the
        # work directory behind as well
        for step in (self._remove_cgroup, self._remove_workdir):
            try:
                step()
            except LabError as exc:
                problems.append(str(exc))
        if problems:
            raise LabError("; ".join(problems))

    @staticmethod
    def _is_systemd(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/comm").read_text(encoding="ascii").strip() == "systemd"
        except OSError:
            return False

    def _remove_cgroup(self) -> None:
        cgroup, self._cgroup = self._cgroup, None
        if cgroup is None or not cgroup.exists():
            return
        # The kernel frees a cgroup a moment after its last task is reaped: retry EBUSY briefly.
        deadline = time.monotonic() + self.stop_timeout
        while True:
            try:
                for dirpath, _dirs, _files in os.walk(cgroup, topdown=False):
                    os.rmdir(dirpath)
                return
            except FileNotFoundError:
                continue
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise LabError(f"cannot remove the lab's cgroup {cgroup}: {exc}") from exc
                time.sleep(POLL)

    def _remove_workdir(self) -> None:
        workdir, self.workdir = self.workdir, None
        if workdir is None or not workdir.exists():
            return
        # The lab's mounts lived only in its dead mount namespace. If any were visible here,
        # removing the directory would walk into them (the overlay is the host's root!).
        leaked = _mounts_under(workdir)
        if leaked:
            raise LabError(f"refusing to remove {workdir}: mounts are still under it: {leaked}")
        shutil.rmtree(workdir)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _failed_step(self) -> str | None:
        """The boot step that failed, as PID 1's log says it (:data:`init.FAILED`): a
        mount's own words, which the log's tail may have lost behind what came after."""
        if self.workdir is None:
            return None
        try:
            text = (self.workdir / "pid1.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        return next((line.removeprefix(FAILED) for line in text.splitlines()
                     if line.startswith(FAILED)), None)

    def log_tail(self, lines: int = 15) -> str:
        """The end of PID 1's output: where a failed boot says why."""
        if self.workdir is None:
            return ""
        try:
            text = (self.workdir / "pid1.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    # -- driving the lab -----------------------------------------------------------------------

    def nsenter_argv(self, argv: Sequence[str]) -> tuple[str, ...]:
        """The host argv that runs ``argv`` inside every namespace of the lab.

        nsenter enters the namespaces this process holds open (through its /proc entry, as
        the command's own process gets no descriptor of ours), never a PID's: see
        :meth:`_hold`. A lab whose PID 1 is gone raises LabError: its PID namespace takes no
        new process, and nothing of the lab is left to run in."""
        if self.pid1 is None or not self._ns:
            raise LabError("the sandbox is not started")
        if not self._pid1_alive():
            raise LabError(f"the lab is down: its systemd (PID {self.pid1}) has exited")
        holder = f"/proc/{os.getpid()}/fd"
        entries = (f"--{option}={holder}/{fd}" for option, fd in self._ns.items())
        return (self._nsenter, *entries, "--", *argv)

    def exec(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = 30.0,
        check: bool = False,
    ) -> CommandResult:
        """Run ``argv`` in the lab and wait; ``check`` raises LabError on a non-zero exit."""
        if isinstance(argv, str) or not argv:
            raise LabError("a lab command is a non-empty argv list, never a shell string")
        cmd = tuple(argv)
        started = time.monotonic()
        proc = subprocess.Popen(
            self.nsenter_argv(cmd),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # nsenter's child shares the group: kill both on timeout
        )
        try:
            out, err = proc.communicate(input, timeout)
        except subprocess.TimeoutExpired:
            _kill_nsenter(proc)
            proc.communicate()
            raise LabError(f"lab command {' '.join(cmd)!r} timed out after {timeout:g} s") from None
        result = CommandResult(cmd, proc.returncode, out, err, time.monotonic() - started)
        if check and not result.ok:
            detail = (err or out).strip()[-300:] or "no output"
            raise LabError(f"lab command {' '.join(cmd)!r} exited {proc.returncode}: {detail}")
        return result

    def socket(self, family: int = socket.AF_INET,
               kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket of the lab's network: it connects from inside the lab (whose 127.0.0.1
        is its own), with no program started in there."""
        if self.pid1 is None or "net" not in self._ns:
            raise LabError("the sandbox is not started")
        if not self._pid1_alive():
            raise LabError(f"the lab is down: its systemd (PID {self.pid1}) has exited")
        try:
            return _socket_in(self._ns["net"], family, kind)
        except OSError as exc:
            raise LabError(f"cannot open a socket in the lab's network: {exc}") from exc

    def write_file(self, path: str, text: str, mode: int = 0o644) -> None:
        """Create or replace ``path`` (absolute, inside the lab) and its parent directories."""
        if not path.startswith("/"):
            raise LabError(f"a lab path must be absolute: {path!r}")
        # install(1) resolves the path in the lab's own root (symlinks included) and replaces
        # the file rather than editing it in place, as a package manager or editor would.
        self.exec(["install", "-D", "-m", f"{mode:o}", "/dev/stdin", path], input=text, check=True)
