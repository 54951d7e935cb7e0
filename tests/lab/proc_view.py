"""A view of the lab whose /proc shows kernel reports this machine's kernel does not give (or
must never be made to give): a tainted kernel, an md array, a ZFS pool.

A procfs takes no new file nor a mount on a path it lacks, /proc/sys is the running kernel's
own (writing a taint flag there cannot be undone before a reboot), and a procfs is no
overlay's layer. So the view is a process in a mount namespace of its own whose /proc is a
tmpfs of links: to every entry of the lab's procfs (kept, recursively, at :data:`REAL`), but
for the paths the test names, which lead to files it writes under :data:`FILES`, and the
directories above them, made of links too. The lab's systemd and this machine's /proc never
see it; the view ends with its process. Commands reach it through :class:`InView`.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport

#: the lab's procfs, as the view keeps it under its tmpfs /proc
REAL = "/run/proc-view-real"
#: where the view's own reports lead, in the lab's /run: a test writes them there
FILES = "/run/proc-view"


def _links(directory: str) -> str:
    """Link every entry of the lab's procfs ``directory`` not already in the view's."""
    real, view = f"{REAL}/{directory}".rstrip("/"), f"/proc/{directory}".rstrip("/")
    # a name there already is a path of the test's, or a directory above one
    return (f'for e in {shlex.quote(real)}/*; do t={shlex.quote(view)}/"${{e##*/}}"; '
            '[ -e "$t" ] || [ -L "$t" ] || ln -s "$e" "$t" || exit 1; done')


def view_script(paths: Sequence[str]) -> str:
    """The view's sh script: says its pid, then waits for its stdin to close. ``paths``:
    relative to /proc (``mdstat``, ``sys/kernel/tainted``)."""
    steps = [f"mkdir -p {REAL} {FILES}", f"mount --rbind /proc {REAL}",
             "mount -t tmpfs -o mode=555 procview /proc"]
    above: dict[str, None] = {"": None}
    for path in paths:
        parent = os.path.dirname(path)
        steps += [f"mkdir -p {shlex.quote(f'/proc/{parent}')}",
                  f"ln -s {shlex.quote(f'{FILES}/{path}')} {shlex.quote(f'/proc/{path}')}"]
        while parent:
            above[parent] = None
            parent = os.path.dirname(parent)
    steps += [_links(directory) for directory in above]
    return " && ".join(steps) + " && echo $$ && exec cat >/dev/null"


@dataclass(frozen=True)
class ProcView:
    sandbox: Sandbox
    #: the view's process, by its pid in the lab
    pid: str

    def write(self, path: str, text: str) -> None:
        """What the view's /proc/``path`` reads from now on."""
        self.sandbox.write_file(f"{FILES}/{path}", text)


@contextmanager
def mount_namespace(sandbox: Sandbox, script: str) -> Iterator[ProcView]:
    """A mount namespace of the lab that ``script`` (sh) makes, which says its pid last and
    then waits for its stdin to close (``&& echo $$ && exec cat >/dev/null``); it ends with
    the block."""
    proc = subprocess.Popen(
        sandbox.nsenter_argv(["unshare", "-m", "--propagation", "private", "sh", "-c",
                              script]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        pid = proc.stdout.readline().strip()  # the script's first and only line, or EOF
        assert pid.isdigit(), f"the view did not start (exit {proc.poll()})"
        yield ProcView(sandbox, pid)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def proc_view(sandbox: Sandbox, paths: Sequence[str]) -> Iterator[ProcView]:
    """The view, with ``paths`` of its /proc leading to files :meth:`ProcView.write` makes
    (absent until then); its namespace and those files end with the block."""
    try:
        with mount_namespace(sandbox, view_script(paths)) as view:
            yield view
    finally:
        sandbox.exec(["rm", "-rf", FILES])
        sandbox.exec(["rmdir", REAL])  # empty outside the view: never a recursive remove


class InView(SandboxTransport):
    """Every command in the lab, in the view's mount namespace; by one remote script (as an
    SSH host is checked) or command by command."""

    def __init__(self, view: ProcView, one_round_trip: bool) -> None:
        super().__init__(view.sandbox)
        self.view_pid = view.pid
        self.one_round_trip = one_round_trip

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        return super().wrap(("nsenter", "-t", self.view_pid, "-m", *argv))
