"""A process of a service with a long name on a host that joins many cgroup hierarchies (a
legacy or hybrid host: RHEL 8, Ubuntu 20.04): ps's cgroup column, cut at its width, ends
before the service manager's entry, which the kernel lists last. The unit is read from the
process's /proc file in the check's second step, on this machine checked command by command
and in one script as an SSH host is: the runaway and zombie rules name the service, not
``pid:N``.

Needs root: the hierarchies are named ones this test mounts (no controller, so a host of
cgroup v2 alone has them too), and the service's cgroup is this test's own (see
:mod:`.service_cgroup`); all are removed after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.parsers import listed_unit

from .service_cgroup import ThisMachine, remove_cgroup, service_cgroup

pytestmark = pytest.mark.lab

#: where a hybrid host mounts cgroup v2, else the whole of /sys/fs/cgroup is v2
UNIFIED = (Path("/sys/fs/cgroup/unified") if Path("/sys/fs/cgroup/unified/cgroup.procs").exists()
           else Path("/sys/fs/cgroup"))
#: named hierarchies enough to pass the column's width with the service's path in each
NAMED = 4


def _cgroup_field(pid: int) -> str:
    """The process's cgroup as ps's column joins it, whole."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    return ",".join(line for line in lines if not line.endswith(":/"))


@pytest.fixture
def spinner(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A busy process (the listing's top by CPU) in a service's cgroup of cgroup v2 and at
    the same path in NAMED named hierarchies; its pid and the service's name."""
    if os.geteuid() != 0:
        pytest.skip("mounting cgroup hierarchies needs root")
    # the process ends first (the stack), then the service's cgroup it was in
    with service_cgroup(UNIFIED / "system.slice",
                        "ai-sysadmin-a-service-whose-name-is-long-enough-to-pass-the-width"
                        ) as unified, contextlib.ExitStack() as stack:
        cgroups = [unified]
        for n in range(NAMED):
            top = tmp_path / f"h{n}"
            top.mkdir()
            # a name of this xdist worker's, mounted again by each run: the kernel keeps a
            # named hierarchy after its umount while processes' css_sets still link it, so
            # a name of each run's (its pid) left four more on the machine at every run
            # (70 after a day), and each lengthens every process's /proc/PID/cgroup
            name = f"aisacut{n}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
            subprocess.run(["mount", "-t", "cgroup", "-o", f"none,name={name}", "cgroup",
                            str(top)], check=True)
            stack.callback(subprocess.run, ["umount", str(top)], check=True)
            cgroup = top / "system.slice" / unified.name
            cgroup.mkdir(parents=True, exist_ok=True)  # a run cut off left it
            stack.callback(remove_cgroup, top / "system.slice")
            stack.callback(remove_cgroup, cgroup)
            cgroups.append(cgroup)
        spin = subprocess.Popen(
            ["sh", "-c", 'for c; do echo $$ > "$c/cgroup.procs"; done; '
             'exec sh -c "while :; do :; done"', "sh", *map(str, cgroups)])
        stack.callback(spin.wait, 10)
        stack.callback(spin.kill)
        deadline = time.monotonic() + 20
        while _cgroup_field(spin.pid).count(unified.name) < NAMED + 1:
            assert time.monotonic() < deadline, Path(f"/proc/{spin.pid}/cgroup").read_text()
            time.sleep(0.05)
        yield spin.pid, unified.name


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["each command", "one script"])
def test_a_unit_the_process_listing_cut_off_is_read_from_the_process(
    spinner: tuple[int, str], tmp_path: Path, one_round_trip: bool
) -> None:
    pid, unit = spinner
    # the listing alone does not know it: the column is cut before the manager's entry
    assert listed_unit(_cgroup_field(pid)[:239]) == (None, True)
    settings = Settings(ai_name="cut", state_dir=tmp_path / "state")
    snapshot = asyncio.run(Collector(ThisMachine("cuthost", one_round_trip),
                                     settings).collect())
    assert "process_units" not in snapshot.errors, snapshot.errors
    process = next((p for p in snapshot.processes or () if p.pid == pid), None)
    assert process is not None, snapshot.processes
    assert (process.unit, process.unit_cut) == (unit, False)
