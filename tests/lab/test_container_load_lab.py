"""A container's load average and memory, read by a real check of the fault lab (a container
to its systemd): where nothing is mounted on its /proc/loadavg and /proc/meminfo they are the
whole machine's, which the machine's own check judges, so the container's says so and finds
nothing however high; where a file is (lxcfs gives a container its own load and memory so)
that file is what is judged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ai_sysadmin.config import Settings, Thresholds
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.rules import RuleContext, evaluate
from ai_sysadmin.monitor.snapshot import Snapshot

from .conftest import LAB_CONTAINER
from .proc_view import InView, ProcView, mount_namespace

pytestmark = pytest.mark.lab

#: where the lab keeps the load average lxcfs would give it
OWN_LOAD = "/run/own-loadavg"
#: 2 GiB of which 100 MiB available: short of memory
OWN_MEMORY = ("MemTotal: 2097152 kB\nMemFree: 51200 kB\nMemAvailable: 102400 kB\n"
              "SwapTotal: 0 kB\nSwapFree: 0 kB\n")
WHOLE_MACHINES = ("the load average, memory, memory stalls and swapping read here are the "
                  "whole machine's (a container with nothing, such as lxcfs, mounted on that "
                  "file of /proc): the machine's own check judges them")


@contextmanager
def own_load(sandbox: Sandbox, text: str) -> Iterator[ProcView]:
    """A mount namespace of the lab whose /proc/loadavg and /proc/meminfo are files bound on
    them, as lxcfs binds its own; it ends with the block."""
    sandbox.write_file(OWN_LOAD, text)
    sandbox.write_file("/run/own-meminfo", OWN_MEMORY)
    with mount_namespace(sandbox, f"mount --bind {OWN_LOAD} /proc/loadavg && mount --bind "
                                  "/run/own-meminfo /proc/meminfo && echo $$ && "
                                  "exec cat >/dev/null") as view:
        yield view


def _look(transport: InView, settings: Settings) -> tuple[Snapshot, list[str]]:
    snapshot = asyncio.run(Collector(transport, settings).collect())
    assert not {"load", "memory", "container"} & snapshot.errors.keys(), snapshot.errors
    findings, judged = evaluate(RuleContext(snapshot, settings.thresholds))
    assert {"load_per_core", "memory_pressure"} <= judged
    return snapshot, [f.summary for f in findings
                      if f.rule in ("load_per_core", "memory_pressure")]


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_a_containers_load_and_memory_are_judged_only_where_they_are_its_own(
        sandbox: Sandbox, lab_settings: Settings, one_round_trip: bool) -> None:
    # any load at all is high here, and any memory short: the machine's, whatever they are
    # now, would be findings
    settings = lab_settings.model_copy(update={"thresholds": Thresholds(
        load_per_core_warn=1e-9, load_per_core_critical=1e9,
        memory_available_warn_percent=97.9, memory_available_critical_percent=0.0)})
    with own_load(sandbox, "1.00 2.00 3.00 1/100 42\n") as view:
        # first the lab as it is: its /proc/loadavg is the machine's
        snapshot, found = _look(InView(ProcView(sandbox, "1"), one_round_trip), settings)
        assert snapshot.container == LAB_CONTAINER and snapshot.proc_mounted is not None
        assert snapshot.machine_wide("/proc/loadavg") and found == []
        assert snapshot.notes["container"] == WHOLE_MACHINES

        snapshot, found = _look(InView(view, one_round_trip), settings)
        assert snapshot.load is not None and snapshot.load.fifteen == 3.0
        assert sorted(found) == ["memory pressure: 4.9% available",
                                 f"sustained load {3.0 / snapshot.cores:.2f} per core"]
        assert snapshot.notes["container"] == WHOLE_MACHINES.replace(
            "load average, memory, memory stalls and swapping read here are",
            "memory stalls and swapping read here are")
