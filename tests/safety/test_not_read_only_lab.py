"""On a real host (the fault lab, as root, as an approved command runs): commands that look
like reads and are not. The policy refuses them, so nothing they would change is changed."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.safety.command_policy import check_command

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"),
                       reason="the fault lab needs root (namespaces, mounts, cgroups)"),
]


@pytest.fixture(scope="module")
def lab() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


def _run_if_allowed(lab: Sandbox, argv: list[str]) -> list[str]:
    """Run ``argv`` in the lab as root for each purpose the policy allows it for (a read, or an
    approved run_command); the reasons it gave."""
    reasons = []
    for purpose in ("investigate", "remediate"):
        decision = check_command(argv, purpose)
        reasons.append(decision.reason)
        if decision.allowed:
            lab.exec(["timeout", "-s", "KILL", "20", *argv], timeout=30)
    return reasons


def test_listing_generations_deletes_no_lock_file(lab) -> None:
    """nix-env --list-generations -p P takes P's lock: it opens P.lock (creating it), and
    unlinks it when done, so an application's empty lock file of that name was gone."""
    lab.write_file("/srv/app/deploy.lock", "")
    reasons = _run_if_allowed(lab, ["nix-env", "--list-generations", "-p", "/srv/app/deploy"])
    assert lab.exec(["test", "-e", "/srv/app/deploy.lock"]).ok, "the lock file was deleted"
    for reason in reasons:
        assert "PROFILE.lock" in reason and "ls -l" in reason, reason
