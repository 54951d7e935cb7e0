"""The daemon SIGKILLed at random points of investigations and fixes, 20 times, then left to
finish: no incident is stuck, no action ran twice, every unit ends fixed (issue 9)."""

from __future__ import annotations

import os
import pprint
import random
import re
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from tests.support.scripted_model import ScriptedModel, call, say

# alone: on a busy machine a fix can miss its verification and wait for a person
pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.alone]
HARNESS = Path(__file__).with_name("daemon_with_model.py")
UNITS = [f"crash{n}.service" for n in range(1, 5)]
TRIALS = 20
#: fails on the start after its marker was removed; the next start (a fix) comes up for good
BREAKABLE = """
[Unit]
StartLimitIntervalSec=0
[Service]
ExecStart=/bin/sh -c 'echo start >> /var/lib/starts-{n}; if [ -e /var/tmp/ok-{n} ]; then exec sleep infinity; fi; touch /var/tmp/ok-{n}; exit 1'
"""  # noqa: E501
_UNIT = re.compile(r"crash\d\.service")


def fix_it(request: dict[str, Any]) -> Any:
    """Every investigation proposes to restart its incident's unit, then answers."""
    text = " ".join(str(m.get("content", "")) for m in request["messages"])
    last = request["messages"][-1]
    if last["role"] == "tool" and "nothing was executed" in str(last.get("content")):
        return say("DIAGNOSIS: it failed once. PROPOSALS: restart_unit")
    unit = _UNIT.search(text)
    if unit is None:
        return say("DIAGNOSIS: nothing of mine to fix here.")
    return call("propose_action", kind="restart_unit", parameters={"unit": unit.group(0)},
                rationale="a restart brings it back")


def break_unit(sb: Sandbox, n: int) -> None:
    sb.exec(["rm", "-f", f"/var/tmp/ok-{n}"], check=True)
    sb.exec(["systemctl", "restart", f"crash{n}.service"])


def starts(sb: Sandbox, n: int) -> int:
    return len(sb.exec(["cat", f"/var/lib/starts-{n}"]).stdout.splitlines())


def daemon(sb: Sandbox, state: Path, url: str) -> subprocess.Popen[bytes]:
    """The next daemon, importing at the lowest priority while the current one works (it
    must not take the CPU the trial's work needs), then waiting for :func:`go`."""
    return subprocess.Popen([sys.executable, str(HARNESS), str(sb.pid1), str(state), url,
                             "--on-go"], cwd=Path(__file__).parents[2], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: os.nice(19))


def go(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Its turn: the priority of any daemon, its imports finished, then it starts."""
    assert proc.stdin is not None and proc.stdout is not None
    os.setpriority(os.PRIO_PROCESS, proc.pid, 0)
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    assert ready and proc.stdout.readline() == b"ready\n", "the daemon did not start"
    proc.stdin.write(b"go\n")
    proc.stdin.flush()
    return proc


def settled(store: IncidentStore, sb: Sandbox) -> bool:
    units = [i for i in store.incidents(None) if i.subject in UNITS]
    if not units or any(i.state not in ("resolved", "closed") for i in units):
        return False  # asked before the lab: polled often, it costs no process then
    return all(sb.exec(["systemctl", "is-active", u]).stdout.strip() == "active"
               for u in UNITS)


def into_work(proc: subprocess.Popen[bytes], model: ScriptedModel, questions: int,
              store: IncidentStore, sb: Sandbox) -> None:
    """Until the model was asked ``questions`` questions in all, or the daemon has nothing
    left to do (every unit fixed, every incident settled: it asks nothing more)."""
    deadline = time.monotonic() + 60
    while len(model.requests) < questions and not settled(store, sb):
        assert proc.poll() is None, "the daemon died on its own"
        if time.monotonic() > deadline:
            pytest.fail(f"no question to the model in 60 s:\n{pprint.pformat(_stuck(store))}")
        time.sleep(0.05)


def _stuck(store: IncidentStore) -> list[Any]:
    """What a person would need to see of each incident left live: its history, its fixes."""
    actions = ActionStore(store.db).find()
    return [(i.id, i.subject, i.state, i.investigation_error,
             [(e.kind, e.detail) for e in store.get(i.id).events][-20:],
             [(a.id, a.state, a.reason, a.result) for a in actions if a.incident_id == i.id])
            for i in store.incidents(None) if i.state not in ("resolved", "closed")]


def test_random_kills_strand_nothing_and_run_nothing_twice(tmp_path: Path) -> None:
    rng = random.Random(9)
    breaks = Counter({n: 1 for n in range(1, len(UNITS) + 1)})  # the first start fails
    with Sandbox() as sb, ScriptedModel([fix_it] * 20_000, latency=0.03) as model:
        for n in range(1, len(UNITS) + 1):
            apply(sb, "install_unit", {"name": f"crash{n}.service",
                                       "text": BREAKABLE.format(n=n)})
            apply(sb, "start_unit", {"name": f"crash{n}.service"})
        store = IncidentStore(Database(tmp_path / "state.db"))
        following = daemon(sb, tmp_path, model.url)
        for _ in range(TRIALS):
            asked = len(model.requests)
            proc = go(following)
            following = daemon(sb, tmp_path, model.url)  # imports while this one works
            # a crash at a random moment of its work: one or two of its questions to the
            # model into it, then up to two seconds more (its first check takes seconds on a
            # busy machine: a moment counted from its start killed it before any question)
            into_work(proc, model, asked + rng.choice((1, 2)), store, sb)
            time.sleep(rng.uniform(0.1, 2.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            n = rng.randrange(1, len(UNITS) + 1)
            if sb.exec(["test", "-e", f"/var/tmp/ok-{n}"]).returncode == 0:
                break_unit(sb, n)  # more investigations and fixes for the next runs
                breaks[n] += 1
        proc = go(following)
        try:
            deadline = time.monotonic() + 120
            while not settled(store, sb):
                assert proc.poll() is None, "the daemon died on its own"
                if time.monotonic() > deadline:  # in full: pytest would cut the history short
                    pytest.fail(f"incidents left live:\n{pprint.pformat(_stuck(store))}")
                time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(30)
        started = {n: starts(sb, n) for n in range(1, len(UNITS) + 1)}
    actions = ActionStore(store.db).find()
    executing = Counter(e["subject"] for e in store.audit_log(100_000)
                        if e["action"] == "action.executing")
    assert executing and max(executing.values()) == 1, "an action ran twice"
    for n in range(1, len(UNITS) + 1):
        ran = [a for a in actions if a.params.get("unit") == f"crash{n}.service"
               and a.started_at is not None]
        # every start is the first one, a breaking restart or one execution of a fix
        assert started[n] <= breaks[n] + len(ran), (n, started[n], breaks[n], len(ran))
    assert len(model.requests) > TRIALS
