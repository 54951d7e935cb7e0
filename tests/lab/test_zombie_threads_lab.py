"""A process whose main thread ended while its other threads still run shows as "Zl" in ps:
alive, nothing for its parent to reap yet. A parent of many such processes is no zombie
leaker; one that never waits for children that did end is."""

from __future__ import annotations

import asyncio
import time

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.rules import RuleContext, evaluate

pytestmark = pytest.mark.lab

#: the main thread ends (pthread_exit), a second thread sleeps on: ps shows "Zl"
MAIN_THREAD_ENDS = ("import ctypes, threading, time; "
                    "threading.Thread(target=time.sleep, args=(3600,)).start(); "
                    "ctypes.CDLL(None).pthread_exit(None)")


def test_live_threads_of_an_ended_main_thread_are_no_zombies_real_zombies_are(
    sandbox: Sandbox, lab_settings: Settings
) -> None:
    many = lab_settings.thresholds.zombie_processes + 1
    python = "/usr/bin/python3"  # the system's: the lab's /tmp (a CI clone's) is its own
    # waits for its children, which are alive; the other never waits for its dead ones
    sandbox.exec(["systemd-run", "--unit=waiter", "sh", "-c",
                  f"for i in $(seq {many}); do {python} -c '{MAIN_THREAD_ENDS}' & done; wait"],
                 check=True)
    sandbox.exec(["systemd-run", "--unit=leaker", python, "-c",
                  f"import os, time\nfor _ in range({many}):\n    if os.fork() == 0: os._exit(0)"
                  "\ntime.sleep(3600)"], check=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            states = sandbox.exec(["ps", "-eo", "stat="]).stdout.split()
            if states.count("Zl") >= many and states.count("Z") >= many:
                break
            assert time.monotonic() < deadline, f"not yet: {sorted(set(states))}"
            time.sleep(0.05)
        snapshot = asyncio.run(Collector(SandboxTransport(sandbox), lab_settings).collect())
    finally:
        sandbox.exec(["systemctl", "stop", "waiter.service", "leaker.service"])
    findings, judged = evaluate(RuleContext(snapshot, lab_settings.thresholds))
    assert "zombie_processes" in judged
    subjects = {f.subject for f in findings if f.rule == "zombie_processes"}
    assert "leaker.service" in subjects
    assert "waiter.service" not in subjects
