"""Fixtures of the fault-lab tests.

Tests marked ``lab`` boot real systemd in namespaces and need root. Without root they are
skipped with the reason; in CI (``CI`` set) a missing root is a failure, never a silent skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.monitor.parsers import SYSTEMD_CONTAINER
from ai_sysadmin.monitor.rules import RULES_BY_NAME


@pytest.hookimpl(tryfirst=True)  # decide before any lab fixture tries to boot
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("lab") is None or os.geteuid() == 0:
        return
    reason = "the fault lab needs root (namespaces, mounts, cgroups)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the lab tests as root", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def lab_settings(tmp_path: os.PathLike[str]) -> Settings:
    # explicit, hermetic settings: no config file or AI_SYSADMIN_* variable of the host leaks in
    return Settings(ai_name="labtest", state_dir=tmp_path)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """One lab shared by a module's tests that only look or write their own files."""
    with Sandbox() as sb:
        yield sb


#: what the lab's systemd says it runs in (the ``container=`` its init gives it): a lab is a
#: container to it, as an LXC container is to its systemd
LAB_CONTAINER = "ai-sysadmin-lab"


@pytest.fixture
def host_of_its_own(sandbox: Sandbox) -> Iterator[None]:
    """The lab as a host, not a container: systemd's word that it is one taken from the
    lab's /run (its own, private) for the test, and put back after it."""
    said = sandbox.exec(["cat", "--", SYSTEMD_CONTAINER], check=True).stdout
    assert said.strip() == LAB_CONTAINER
    mode = int(sandbox.exec(["stat", "-c", "%a", "--", SYSTEMD_CONTAINER], check=True).stdout, 8)
    sandbox.exec(["rm", "--", SYSTEMD_CONTAINER], check=True)
    try:
        yield
    finally:
        sandbox.write_file(SYSTEMD_CONTAINER, said, mode)


#: the rules of what the host's kernel reports (md arrays, ZFS pools, taint flags, threads
#: and file handles) judge nothing in a container, which the lab is to its systemd: its
#: /proc is its host's
OF_THE_HOST = frozenset(name for name, rule in RULES_BY_NAME.items() if rule.of_the_host)


def judged_in(sandbox: Sandbox) -> set[str]:
    """The rules a check of the lab judges (given an earlier look): not those of its host's
    kernel, and a service's tasks only where the lab's cgroup2 has a pids controller under
    its system.slice (a hybrid machine's cgroup2, where the lab's is, holds no controller)."""
    pids = sandbox.exec(["test", "-e", "/sys/fs/cgroup/system.slice/pids.current"])
    return set(RULES_BY_NAME) - OF_THE_HOST - (set() if pids.returncode == 0
                                               else {"tasks_exhausted"})
