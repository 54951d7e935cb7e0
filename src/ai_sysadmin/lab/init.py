"""The two process stages that turn a fresh process into systemd as PID 1 of a private world.

``python -m ai_sysadmin.lab.init enter WORKDIR`` joins the sandbox's cgroup, then execs
``unshare`` which forks ``python -m ai_sysadmin.lab.init boot WORKDIR`` as PID 1 of new
pid/mount/uts/ipc/net/cgroup namespaces. ``boot`` builds a copy-on-write view of the host root
(tmpfs upper layer), private /dev, /run and /tmp, read-only /proc/sys, pivots into it and execs
systemd.

Both stages read their parameters from ``WORKDIR/config.json``, written by
:class:`ai_sysadmin.lab.sandbox.Sandbox`. Only the standard library is imported here: this runs
on every sandbox start, and a fast PID 1 keeps the lab cheap. Errors end the process with a
traceback in ``WORKDIR/pid1.log``, which the Sandbox quotes in its LabError.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

#: the capabilities systemd inside the lab must not have: clock, kernel modules, raw I/O, LSM,
#: the kernel log and wake alarms all belong to the host
DROPPED_CAPS = "-sys_time,-sys_module,-sys_rawio,-mac_admin,-mac_override,-syslog,-wake_alarm"

#: character devices of the private /dev: (name, major, minor)
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0))

PR_SET_PDEATHSIG = 1

#: how PID 1's log begins the line that says which boot step failed, in that program's own
#: words: the Sandbox puts that line first in its error, whatever the log holds after it
FAILED = "ai_sysadmin.lab.init: failed: "


def _config(workdir: Path) -> dict[str, Any]:
    with open(workdir / "config.json", encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def _run(programs: dict[str, str], name: str, *args: str, cwd: Path | None = None) -> None:
    # Programs are absolute paths resolved on the host (a NixOS /run/current-system/sw/bin
    # would be hidden by our private /run); argv[0] keeps the plain name for multi-call
    # binaries. A failing mount must stop the boot, and say why in mount's own words.
    done = subprocess.run([name, *args], executable=programs[name], stdin=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, cwd=cwd)
    if done.returncode == 0:
        sys.stderr.buffer.write(done.stderr)  # a warning stays in the log, as before
        sys.stderr.buffer.flush()  # exec (systemd's) would drop what is left in the buffer
        return
    said = " ".join(done.stderr.decode("utf-8", "replace").split()) or "nothing said"
    sys.exit(f"{FAILED}{name} {' '.join(args)} exited {done.returncode}: {said}")


def enter(workdir: Path) -> None:
    """Join the lab's cgroup and become ``unshare``; the cgroup becomes the namespace's root."""
    cfg = _config(workdir)
    # Die with the process that started the lab even if it is SIGKILLed: unshare then dies,
    # and its --kill-child takes PID 1, hence the whole namespace, with it.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != cfg["parent_pid"]:
        sys.exit("ai_sysadmin.lab.init: the process that started the lab is gone")
    # Must happen before unshare --cgroup: the namespace's cgroup root is where we stand then.
    Path(cfg["cgroup"], "cgroup.procs").write_text(str(os.getpid()), encoding="ascii")
    p = cfg["programs"]
    os.execv(
        p["unshare"],
        ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--uts", "--ipc", "--net",
         "--cgroup", "--propagation", "private",
         sys.executable, "-m", "ai_sysadmin.lab.init", "boot", str(workdir)],
    )


def _populate_dev(dev: Path) -> None:
    for name, major, minor in DEVICES:
        node = dev / name
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(node, 0o666)  # mknod honours the umask; these must be world-usable
    (dev / "pts").mkdir()
    (dev / "shm").mkdir()
    os.symlink("pts/ptmx", dev / "ptmx")
    os.symlink("/proc/self/fd", dev / "fd")
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{fd}", dev / name)


def _prepare_etc(root: Path, cfg: dict[str, Any]) -> None:
    etc_sd = root / "etc/systemd/system"
    # Hide the host's enablement symlinks (databases, ssh, timers...): boot vendor defaults only.
    _run(cfg["programs"], "mount", "-t", "tmpfs", "-o", "mode=755", "labetc", str(etc_sd))
    for unit in cfg["masked"]:
        os.symlink("/dev/null", etc_sd / unit)
    (etc_sd / "sdtest.target").write_text(
        "[Unit]\nDescription=ai-sysadmin fault lab boot target\nRequires=basic.target\n"
        "After=basic.target\nAllowIsolate=yes\n",
        encoding="utf-8",
    )
    os.symlink("sdtest.target", etc_sd / "default.target")
    (root / "etc/hostname").write_text(cfg["hostname"] + "\n", encoding="utf-8")
    # empty machine-id: systemd makes a transient one, the host's identity is not reused
    (root / "etc/machine-id").write_text("", encoding="utf-8")


def boot(workdir: Path) -> None:
    """PID 1 of the new namespaces: build the root file system, pivot into it, exec systemd."""
    cfg = _config(workdir)
    p = cfg["programs"]
    rw, root = workdir / "rw", workdir / "root"
    rw.mkdir(exist_ok=True)
    root.mkdir(exist_ok=True)
    # The overlay's upper layer lives on its own tmpfs: every write of the lab lands in memory,
    # and a separate superblock keeps the kernel from seeing upper inside lower (= "/").
    _run(p, "mount", "-t", "tmpfs", "-o", f"size={cfg['size']},mode=755", "labrw", str(rw))
    (rw / "upper").mkdir()
    (rw / "work").mkdir()
    # the layers named from within rw: the options are a comma-separated list, and the work
    # directory's path is the caller's (a TMPDIR with a comma in it), never spelled there
    _run(p, "mount", "-t", "overlay", "-o", "lowerdir=/,upperdir=upper,workdir=work",
         "labroot", str(root), cwd=rw)
    _run(p, "mount", "-t", "proc", "proc", f"{root}/proc")
    # no sysctl write may reach the host kernel
    _run(p, "mount", "--bind", f"{root}/proc/sys", f"{root}/proc/sys")
    _run(p, "mount", "-o", "remount,bind,ro", f"{root}/proc/sys")
    for name in ("sysrq-trigger", "kcore"):
        if (root / "proc" / name).exists():
            _run(p, "mount", "--bind", "/dev/null", f"{root}/proc/{name}")
    _run(p, "mount", "-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", f"{root}/sys")
    # in our cgroup namespace this shows only the lab's own subtree
    _run(p, "mount", "-t", "cgroup2", "cgroup2", f"{root}/sys/fs/cgroup")
    _run(p, "mount", "-t", "tmpfs", "-o", "mode=755,size=4m,nosuid", "dev", f"{root}/dev")
    _populate_dev(root / "dev")
    (root / "dev/console").touch()
    # boot chatter off the host console
    _run(p, "mount", "--bind", "/dev/null", f"{root}/dev/console")
    _run(p, "mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=620", "devpts",
         f"{root}/dev/pts")
    _run(p, "mount", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "shm", f"{root}/dev/shm")
    for target, opts in (("run", "mode=755,nosuid,nodev,size=64m"),
                         ("tmp", "mode=1777,nosuid,nodev,size=256m")):
        _run(p, "mount", "-t", "tmpfs", "-o", opts, target, f"{root}/{target}")
    for host_dir in cfg.get("binds", ()):
        # read-only: the lab never writes to the host
        inside = f"{root}{host_dir}"
        os.makedirs(inside, exist_ok=True)
        _run(p, "mount", "--bind", host_dir, inside)
        _run(p, "mount", "-o", "remount,bind,ro", inside)
    _prepare_etc(root, cfg)

    (root / ".oldroot").mkdir(exist_ok=True)
    # pivot_root moves the root of every process whose root is the old one (us included); our
    # cwd must be the new root so that nothing keeps the old tree alive after the lazy umount.
    os.chdir(root)
    _run(p, "pivot_root", ".", ".oldroot")
    os.chdir("/")
    _run(p, "umount", "-l", "/.oldroot")
    os.rmdir("/.oldroot")
    env = ["container=ai-sysadmin-lab",
           "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    os.execv(
        p["setpriv"],
        ["setpriv", f"--bounding-set={DROPPED_CAPS}", p["env"], "-i", *env,
         p["systemd"], "--show-status=false"],
    )


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] not in ("enter", "boot"):
        sys.exit("usage: python -m ai_sysadmin.lab.init enter|boot WORKDIR")
    stage, workdir = argv[0], Path(argv[1])
    if stage == "enter":
        enter(workdir)
    else:
        boot(workdir)


if __name__ == "__main__":
    main(sys.argv[1:])
