"""Fault injectors (and their fixes): small functions registered by name.

Each takes the sandbox first and keyword parameters after it; a scenario step names one with
``action`` and gives the rest as parameters. The parameter annotations are the schema: a
scenario file is checked against them when it is loaded, long before a lab boots. An injector
that cannot do its job raises :class:`LabError`.
"""

from __future__ import annotations

import posixpath
import time
import typing
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, create_model

from ..errors import LabError
from .sandbox import Sandbox

Injector = Callable[..., None]
Priority = Literal["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
INJECTORS: dict[str, Injector] = {}
#: one pydantic model per injector, built from its signature, to validate scenario steps
PARAMS: dict[str, type[BaseModel]] = {}


def injector(name: str) -> Callable[[Injector], Injector]:
    """Register ``fn`` as the action ``name``; two actions with one name fail at import."""

    def register(fn: Injector) -> Injector:
        if name in INJECTORS:
            raise ValueError(f"two lab injectors are named {name!r}")
        hints = typing.get_type_hints(fn)
        hints.pop("return", None)
        defaults = fn.__kwdefaults__ or {}
        fields: dict[str, Any] = {
            param: (hint, defaults.get(param, ...))
            for param, hint in hints.items()
            if param != "sb"
        }
        # a timeout of inf or nan would never pass: finite numbers only
        PARAMS[name] = create_model(  # type: ignore[call-overload]
            f"{name}_params",
            __config__=ConfigDict(extra="forbid", strict=True, allow_inf_nan=False), **fields
        )
        INJECTORS[name] = fn
        return fn

    return register


def apply(sb: Sandbox, action: str, params: dict[str, Any]) -> None:
    """Run one step; parameters are validated again, so a step built in code is safe too."""
    if action not in INJECTORS:
        raise LabError(f"unknown lab action {action!r}; known: {', '.join(sorted(INJECTORS))}")
    checked = PARAMS[action].model_validate(params)
    INJECTORS[action](sb, **checked.model_dump())


def _unit_path(name: str) -> str:
    if "/" in name or "." not in name:
        raise LabError(f"not a unit name: {name!r}")
    return f"/etc/systemd/system/{name}"


@injector("write_file")
def write_file(sb: Sandbox, *, path: str, text: str, mode: int = 0o644) -> None:
    sb.write_file(path, text, mode)


@injector("remove_file")
def remove_file(sb: Sandbox, *, path: str, recursive: bool = False) -> None:
    sb.exec(["rm", "-rf" if recursive else "-f", "--", path], check=True)


@injector("install_unit")
def install_unit(sb: Sandbox, *, name: str, text: str, wanted_by: str | None = None) -> None:
    """Write a unit file and reload; ``wanted_by`` enables it as ``systemctl enable`` would."""
    path = _unit_path(name)
    sb.write_file(path, text)
    if wanted_by:
        wants = f"/etc/systemd/system/{wanted_by}.wants"
        sb.exec(["mkdir", "-p", wants], check=True)
        # a symlink, not `systemctl enable`: it also works for a unit that does not load
        sb.exec(["ln", "-sfn", path, posixpath.join(wants, name)], check=True)
    sb.exec(["systemctl", "daemon-reload"], check=True)


@injector("daemon_reload")
def daemon_reload(sb: Sandbox) -> None:
    sb.exec(["systemctl", "daemon-reload"], check=True)


@injector("start_unit")
def start_unit(sb: Sandbox, *, name: str) -> None:
    # starting a broken unit is often the fault itself: its failure is expected, not an error
    sb.exec(["systemctl", "start", name])


@injector("restart_unit")
def restart_unit(sb: Sandbox, *, name: str) -> None:
    sb.exec(["systemctl", "restart", name], check=True)


@injector("stop_unit")
def stop_unit(sb: Sandbox, *, name: str) -> None:
    sb.exec(["systemctl", "stop", name], check=True)


@injector("wait_unit")
def wait_unit(
    sb: Sandbox, *, name: str, value: str, property: str = "ActiveState", timeout: float = 10.0
) -> None:
    """Poll ``systemctl show`` until the unit's ``property`` reads ``value``.

    For faults that take a moment to become what they are (a restart storm that ends failed,
    a service that must be up before its dependency is killed) before the next step changes
    the world under them.
    """
    deadline = time.monotonic() + timeout
    seen = ""
    while True:
        result = sb.exec(["systemctl", "show", f"--property={property}", "--value", name])
        seen = result.stdout.strip()
        if result.ok and seen == value:
            return
        if time.monotonic() >= deadline:
            raise LabError(f"wait_unit {name}: {property} is {seen!r}, not {value!r} "
                           f"after {timeout:g} s")
        time.sleep(0.05)


@injector("wait_listening")
def wait_listening(sb: Sandbox, *, port: int, timeout: float = 10.0) -> None:
    """Poll until something in the lab listens on TCP ``port`` (a server takes a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        result = sb.exec(["ss", "-Hltn", f"sport = :{port}"])
        if result.ok and result.stdout.strip():
            return
        if time.monotonic() >= deadline:
            raise LabError(f"wait_listening: nothing listens on port {port} after {timeout:g} s")
        time.sleep(0.05)


@injector("add_user")
def add_user(sb: Sandbox, *, name: str) -> None:
    """A system user with no home and no login shell, as a package creates for its daemon."""
    sb.exec(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True)


@injector("set_owner")
def set_owner(
    sb: Sandbox, *, path: str, owner: str, group: str | None = None, mode: int | None = None
) -> None:
    """``chown owner[:group] path`` and, when given, ``chmod mode path`` (not recursive)."""
    sb.exec(["chown", "--", f"{owner}:{group}" if group else owner, path], check=True)
    if mode is not None:
        sb.exec(["chmod", f"{mode:o}", "--", path], check=True)


@injector("run")
def run(sb: Sandbox, *, argv: list[str], input: str | None = None, check: bool = True) -> None:
    sb.exec(argv, input=input, check=check)


@injector("mount_tmpfs")
def mount_tmpfs(
    sb: Sandbox, *, path: str, size: str = "20m", nr_inodes: int | None = None
) -> None:
    options = f"size={size}" + (f",nr_inodes={nr_inodes}" if nr_inodes else "")
    sb.exec(["mkdir", "-p", path], check=True)
    sb.exec(["mount", "-t", "tmpfs", "-o", options, "labtmpfs", path], check=True)


@injector("fill_disk")
def fill_disk(sb: Sandbox, *, path: str, max_mb: int = 1024) -> None:
    """Write zeros to ``path`` until its file system is full (or ``max_mb`` is reached)."""
    result = sb.exec(
        ["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={max_mb}"], timeout=120
    )
    if not result.ok and "No space left on device" not in result.stderr:
        raise LabError(f"fill_disk {path}: {result.stderr.strip()[-300:]}")


#: creates empty files f0, f1, ... in $1 until one cannot be (exit 1, the shell's message on
#: stderr) or $2 are made (exit 3). Built-ins only, no process per file; noclobber: a file
#: that is there already is an error, never reused
_FILL_INODES = """set -C
cd -- "$1" || exit 2
i=0
while [ "$i" -lt "$2" ]; do
  true > "f$i" || exit 1
  i=$((i + 1))
done
exit 3
"""


@injector("fill_inodes")
def fill_inodes(sb: Sandbox, *, directory: str, max_files: int = 200_000) -> None:
    """Create empty files in ``directory`` until the file system has no inode left.

    Done by one shell inside the lab: a path resolved from the host (through /proc/PID1/root)
    follows an absolute symlink on it to the host's own root, and /var/lock is one."""
    sb.exec(["mkdir", "-p", directory], check=True)
    done = sb.exec(["env", "LC_ALL=C", "sh", "-c", _FILL_INODES, "sh", directory,
                    str(max_files)], timeout=300)
    if done.returncode == 1 and "No space left on device" in done.stderr:
        return
    if done.returncode == 3:
        raise LabError(f"fill_inodes {directory}: still inodes left after {max_files} files")
    raise LabError(f"fill_inodes {directory}: {(done.stderr or done.stdout).strip()[-300:]}")


#: the runaway's share of one core, granted by the kernel's deadline scheduler: this much of
#: every period is its to burn however busy the machine is, and never more (ns)
RUNAWAY_RUNTIME_NS = 75_000_000
RUNAWAY_PERIOD_NS = 100_000_000
#: its scheduling weight where the kernel refuses it a deadline (no room left for one more)
RUNAWAY_NICE = -20


@injector("runaway")
def runaway(sb: Sandbox, *, unit: str, argv: list[str] | None = None) -> None:
    """A transient service that burns three quarters of a core (by default a shell busy loop).

    At nice 0 a busy loop gets what the machine running the lab leaves it: with automatic
    process groups (``kernel.sched_autogroup_enabled``, on by default), one core's share among
    every busy session, 13% with a dozen runnable ones on 2 cores, and a drill then never sees
    the runaway it injected. At the highest weight instead it took a whole core from everyone:
    on 2 cores the daemon watching it, and every other test, shared what was left, and two
    drills at once left them nothing (a drill's deadline passed before its model answered).
    So the loop runs under ``SCHED_DEADLINE``: 75 ms of every 100 ms are guaranteed to it and
    the rest of its core stays the machine's. Where the kernel refuses that (its admission
    control is full, no ``chrt``), it runs at the highest weight as before.
    """
    command = argv or ["sh", "-c", "while :; do :; done"]
    sb.exec(["systemd-run", f"--unit={unit}", "--", *command], check=True)
    pid = sb.exec(["systemctl", "show", "--property=MainPID", "--value", unit],
                  check=True).stdout.strip()
    if not pid.isdigit() or pid == "0":
        raise LabError(f"runaway {unit}: no main process ({pid!r})")
    # a deadline task may not fork: what a loop of a scenario's own starts runs as usual
    deadline = sb.exec(["chrt", "--reset-on-fork", "--deadline",
                        "--sched-runtime", str(RUNAWAY_RUNTIME_NS),
                        "--sched-deadline", str(RUNAWAY_PERIOD_NS),
                        "--sched-period", str(RUNAWAY_PERIOD_NS), "--pid", "0", pid])
    if not deadline.ok:
        _heaviest(sb, unit, pid)


def _heaviest(sb: Sandbox, unit: str, pid: str) -> None:
    """The highest weight, both among the processes of the runaway's session (systemd makes
    each service a session) and for its session as a whole (``/proc/PID/autogroup``, where
    the kernel has them), and the highest ``CPUWeight=`` where the lab has the cpu
    controller."""
    sb.exec(["renice", "-n", str(RUNAWAY_NICE), "-p", pid], check=True)
    sb.exec(["sh", "-c", 'f=/proc/$1/autogroup; [ ! -e "$f" ] || echo "$2" > "$f"', "sh", pid,
             str(RUNAWAY_NICE)], check=True)
    sb.exec(["systemctl", "set-property", "--runtime", unit, "CPUWeight=10000"], check=True)


@injector("log_burst")
def log_burst(
    sb: Sandbox,
    *,
    identifier: str,
    count: int = 30,
    priority: Priority = "err",
    message: str = "simulated failure",
) -> None:
    """``count`` journal entries at ``priority`` tagged ``identifier``, outside any unit."""
    lines = "".join(f"{message} ({n + 1}/{count})\n" for n in range(count))
    # systemd-cat turns each stdin line into one entry with SYSLOG_IDENTIFIER=identifier
    sb.exec(["systemd-cat", "-p", priority, "-t", identifier], input=lines, check=True)


#: where a lab's loop-backed disks are kept, in its own copy-on-write root
LAB_DISKS = "/var/lib/lab-disks"
#: the loop devices a lab's /dev gets nodes for: the kernel gives the first free one, and
#: other labs (parallel tests) may hold a few
LOOP_NODES = 64


def _disk_image(path: str) -> str:
    return posixpath.join(LAB_DISKS, path.strip("/").replace("/", "-") + ".img")


def _loop_nodes(sb: Sandbox) -> None:
    """The loop control and device nodes, in the lab's own /dev (it has none): what
    ``mount -o loop`` opens. Such a mount clears its loop device when it goes, with the lab
    at the latest."""
    nodes = ["[ -e /dev/loop-control ] || mknod -m 600 /dev/loop-control c 10 237"]
    nodes += [f"[ -e /dev/loop{n} ] || mknod -m 660 /dev/loop{n} b 7 {n}"
              for n in range(LOOP_NODES)]
    sb.exec(["sh", "-c", "; ".join(nodes)], check=True)


def _mount_disk(sb: Sandbox, path: str) -> str:
    """Mount ``path``'s disk image read-write, the kernel told to make it read-only on an
    error (as Debian's installer writes /etc/fstab); returns its loop device."""
    _loop_nodes(sb)
    sb.exec(["mkdir", "-p", path], check=True)
    sb.exec(["mount", "-t", "ext4", "-o", "loop,errors=remount-ro", _disk_image(path), path],
            check=True)
    return sb.exec(["findmnt", "-n", "-o", "SOURCE", "--", path], check=True).stdout.strip()


@injector("broken_filesystem")
def broken_filesystem(sb: Sandbox, *, path: str, size_mb: int = 16) -> None:
    """An ext4 on a loop device at ``path``, mounted read-write, then an error raised by the
    kernel's own test hook (``/sys/fs/ext4/DEV/trigger_fs_error``, written from the host:
    the lab's /sys is read-only): the kernel stops the file system's writes, as it does on an
    I/O error, and every write there fails from then on."""
    image = _disk_image(path)
    sb.exec(["mkdir", "-p", LAB_DISKS], check=True)
    sb.exec(["truncate", "-s", f"{size_mb}M", image], check=True)
    sb.exec(["mkfs.ext4", "-q", "-F", image], check=True)
    device = _mount_disk(sb, path)
    hook = f"/sys/fs/ext4/{posixpath.basename(device)}/trigger_fs_error"
    try:
        with open(hook, "w", encoding="ascii") as trigger:
            trigger.write("lab: an I/O error\n")
    except OSError as exc:
        raise LabError(f"broken_filesystem {path}: cannot raise an error on {device}: "
                       f"{exc}") from exc
    if sb.exec(["touch", "--", f"{path}/.write-test"]).ok:
        raise LabError(f"broken_filesystem {path}: the kernel still takes writes after the "
                       "error")


@injector("repair_filesystem")
def repair_filesystem(sb: Sandbox, *, path: str) -> None:
    """What a person does for :func:`broken_filesystem`: unmount, check and repair the file
    system (e2fsck exits 1 when it corrected errors), mount it again."""
    sb.exec(["umount", "--", path], check=True)
    done = sb.exec(["e2fsck", "-f", "-y", _disk_image(path)], timeout=60)
    if done.returncode not in (0, 1):
        raise LabError(f"repair_filesystem {path}: e2fsck exited {done.returncode}: "
                       f"{done.stderr.strip()[-300:]}")
    _mount_disk(sb, path)
