"""A command whose caller is cancelled is killed, process group and all, on Python 3.11.0-3.11.2
too (Debian 12's python3 is 3.11.2).

There a time limit by cancellation (``asyncio.timeout``) that expires in a task being
cancelled raises the task's CancelledError instead of its TimeoutError (CPython gh-102780,
fixed in 3.11.3): a clean-up that waited so for the command to end, then killed what was
left, stopped at the wait, and the command ran on. The suite runs a later 3.11; the
released __aexit__ of 3.11.2 stands in for it here."""

from __future__ import annotations

import asyncio
import asyncio.timeouts
import contextlib
import os
import time
from pathlib import Path
from types import TracebackType

import pytest

from ai_sysadmin.hosts.transport import LocalTransport
from tests.support.polling import poll_until, until


async def _aexit_3_11_2(self: asyncio.timeouts.Timeout, exc_type: type[BaseException] | None,
                        exc_val: BaseException | None, exc_tb: TracebackType | None) -> None:
    """Python 3.11.2's Timeout.__aexit__: any cancel asked before it was entered counts."""
    state = asyncio.timeouts._State
    if self._timeout_handler is not None:
        self._timeout_handler.cancel()
        self._timeout_handler = None
    if self._state is state.EXPIRING:
        self._state = state.EXPIRED
        if self._task.uncancel() == 0 and exc_type is asyncio.CancelledError:
            raise TimeoutError
    elif self._state is state.ENTERED:
        self._state = state.EXITED


def _running(argv: list[str]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
                if cmdline == [a.encode() for a in argv]:
                    found.append(int(entry.name))
    return found


def test_a_cancelled_command_is_killed_though_the_time_limit_misfires(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asyncio.timeouts.Timeout, "__aexit__", _aexit_3_11_2)
    # a duration no other process here sleeps: the one this test started is found by it
    argv = ["sleep", f"{700 + os.getpid() % 97}.{time.monotonic_ns() % 1000}"]

    async def go() -> None:
        task = asyncio.create_task(LocalTransport().run(argv, timeout=60))
        deadline = time.monotonic() + 10
        while not _running(argv):
            assert time.monotonic() < deadline, "the command never started"
            await asyncio.sleep(0.02)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(go())
        poll_until(lambda: not _running(argv), timeout=10, what="the command killed")
    finally:
        for pid in _running(argv):
            os.kill(pid, 9)


#: a pause no other process here takes: the one this test started is found by it
_PAUSE = ["sleep", f"0.{300 + os.getpid() % 97}{time.monotonic_ns() % 1000}"]
#: writes more than the pipe and asyncio's reader hold (64 KiB each) once its reader is gone
_FLOODS_LATE = ["sh", "-c", f"{' '.join(_PAUSE)}; head -c 8000000 /dev/zero; sleep 60"]


@pytest.mark.parametrize("how", ["cancelled", "timed out"])
def test_a_command_that_writes_on_after_its_end_is_asked_ends_all_the_same(how: str) -> None:
    """A daemon stopped while a check's `ps` wrote a long listing (a host of many
    processes) never stopped: the command was killed, but its output, no longer read,
    filled the pipe, and its end is only seen once the pipe is read to its close."""
    async def go() -> None:
        run = LocalTransport().run(_FLOODS_LATE, timeout=0.1 if how == "timed out" else 60)
        task = asyncio.create_task(run)
        if how == "cancelled":  # once it runs: the cancel is its stop
            await until(lambda: _running(_PAUSE), 10, "the command started")
            task.cancel()
        # the clean-up waits 1 s for the command's children to go, then kills the rest
        done, _ = await asyncio.wait({task}, timeout=15)
        assert done, "the command's end was never seen"
        with contextlib.suppress(BaseException):
            task.result()

    asyncio.run(go())


def test_a_command_whose_descendant_left_its_session_times_out_on_time() -> None:
    """A descendant that left the command's session (setsid; a root command behind sudo,
    which this process may not signal) held the output pipes, and the caller past its
    timeout until that descendant ended: asyncio reports a command's end only once its
    pipes close."""
    from ai_sysadmin.errors import CommandTimeout

    left = ["sleep", f"{30 + os.getpid() % 7}.{time.monotonic_ns() % 1000}"]
    script = f"(setsid {' '.join(left)} &); while :; do sleep 1; done"
    started = time.monotonic()
    try:
        with pytest.raises(CommandTimeout):
            asyncio.run(LocalTransport().run(["sh", "-c", script], timeout=1))
        took = time.monotonic() - started
    finally:
        for pid in _running(left):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
    assert took < 10, took

