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
