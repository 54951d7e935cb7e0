"""A fork server for crash trials: ``python -m tests.lab.forkserver MODULE:FUNCTION``.

It imports the harness once, says ``ready``, then for each line it reads (arguments separated
by spaces) forks a process that runs ``FUNCTION(*args)`` and exits, and writes its PID; once the
test writes ``reap`` it waits for that process and writes its exit status. A trial's process
starts in milliseconds instead of an interpreter's second or more, so the test's random kills
land in the work, not in the imports. Until it is reaped an ended process stays a zombie: the
PID the test kills is never another process's.
"""

from __future__ import annotations

import importlib
import os
import select
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _child(target: Callable[..., None], args: list[str]) -> None:
    code = 1
    try:
        quiet = os.open(os.devnull, os.O_RDWR)
        os.dup2(quiet, 0)
        os.dup2(quiet, 1)  # the server's answers are on stdout: the child never writes there
        target(*args)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    module, _, name = sys.argv[1].partition(":")
    target = getattr(importlib.import_module(module), name)
    print("ready", flush=True)
    while line := sys.stdin.readline():
        pid = os.fork()
        if pid == 0:
            _child(target, line.split())
        print(pid, flush=True)
        sys.stdin.readline()  # "reap", or the test's end
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


class ForkServer:
    """The test's side: start a process, kill it, reap it."""

    def __init__(self, target: str, stderr: int | None = subprocess.DEVNULL) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.lab.forkserver", target],
                                     cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=stderr, text=True)
        #: the process started and not reaped yet
        self.live: int | None = None
        assert self._answer(120) == "ready"

    def _answer(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert readable, f"the fork server did not answer within {timeout:g} s"
        return self.proc.stdout.readline().strip()

    def _say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def start(self, *args: object) -> int:
        """The PID of a new process running the target with ``args``."""
        self._say(" ".join(map(str, args)))
        self.live = int(self._answer(30))
        return self.live

    def reap(self, timeout: float) -> int:
        """Its exit status (as subprocess's: -9 for SIGKILL), once it has ended."""
        self._say("reap")
        code = int(self._answer(timeout))
        self.live = None
        return code

    def close(self) -> None:
        """Ends the server; a process it started that was not reaped (a failed test) is
        killed first (unreaped, its PID is still its own)."""
        if self.live is not None and self.proc.poll() is None:
            os.kill(self.live, signal.SIGKILL)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    main()
