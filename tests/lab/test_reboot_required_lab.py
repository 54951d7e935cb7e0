"""A boot that is due, as the host records it, read by a real check of the fault lab (one
remote script, as an SSH host is checked, or command by command): Debian's and Ubuntu's
/run/reboot-required with the packages that made it so, and a NixOS host whose current
system has another kernel than the one it booted. Gone once the host says so no more."""

from __future__ import annotations

import asyncio

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.rules import RuleContext, evaluate

pytestmark = pytest.mark.lab

STORE = "/nix/store"
#: two NixOS systems as /nix/store holds them: their kernel, initrd and kernel modules are
#: links into the store (``readlink -e`` follows them there)
OLD, NEW = f"{STORE}/aaaa-nixos-system-old", f"{STORE}/bbbb-nixos-system-new"
OLD_KERNEL, NEW_KERNEL = f"{STORE}/kkk1-linux-6.6.30", f"{STORE}/kkk2-linux-6.6.32"


class Scripted(SandboxTransport):
    def __init__(self, sandbox: Sandbox, one_round_trip: bool) -> None:
        super().__init__(sandbox)
        self.one_round_trip = one_round_trip


def _boot(collector: Collector, settings: Settings) -> list[Finding]:
    snapshot = asyncio.run(collector.collect())
    assert "reboot" not in snapshot.errors and "nixos_boot" not in snapshot.errors, \
        snapshot.errors
    findings, judged = evaluate(RuleContext(snapshot, settings.thresholds))
    assert "reboot_required" in judged  # nothing found is a verdict: an incident resolves
    return [f for f in findings if f.rule == "reboot_required"]


def _system(sandbox: Sandbox, root: str, kernel: str) -> None:
    """A NixOS system at ``root`` whose kernel is ``kernel``'s bzImage."""
    modules = f"{STORE}/mmmm-linux-modules"
    sandbox.exec(["mkdir", "-p", root, kernel, modules], check=True)
    sandbox.write_file(f"{kernel}/bzImage", "kernel image\n")
    for link, target in ((f"{root}/kernel", f"{kernel}/bzImage"),
                         (f"{root}/kernel-modules", modules),
                         (f"{root}/initrd", f"{kernel}/bzImage")):
        sandbox.exec(["ln", "-sfn", target, link], check=True)


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_debian_s_record_of_a_due_boot_is_a_warning_naming_its_packages_until_it_is_gone(
        sandbox: Sandbox, lab_settings: Settings, one_round_trip: bool) -> None:
    collector = Collector(Scripted(sandbox, one_round_trip), lab_settings)
    assert _boot(collector, lab_settings) == []  # the lab as it boots: nothing due
    sandbox.write_file("/run/reboot-required", "*** System restart required ***\n")
    sandbox.write_file("/run/reboot-required.pkgs", "linux-image-6.1.0-28-amd64\nlibc6\n")
    try:
        [found] = _boot(collector, lab_settings)
        assert (found.subject, found.severity) == ("boot", Severity.WARNING)
        assert "a boot is due: packages installed since the host booted" in found.summary
        assert found.evidence == ("/run/reboot-required is there; /run/reboot-required.pkgs "
                                  "names libc6, linux-image-6.1.0-28-amd64",)
    finally:
        sandbox.exec(["rm", "-f", "/run/reboot-required", "/run/reboot-required.pkgs"])
    assert _boot(collector, lab_settings) == []


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_a_nixos_host_switched_to_another_kernel_is_due_a_boot_until_it_runs_that_kernel(
        sandbox: Sandbox, lab_settings: Settings, one_round_trip: bool) -> None:
    collector = Collector(Scripted(sandbox, one_round_trip), lab_settings)
    _system(sandbox, OLD, OLD_KERNEL)
    _system(sandbox, NEW, NEW_KERNEL)
    sandbox.exec(["ln", "-sfn", OLD, "/run/booted-system"], check=True)
    try:
        sandbox.exec(["ln", "-sfn", OLD, "/run/current-system"], check=True)
        assert _boot(collector, lab_settings) == []  # booted what it runs
        sandbox.exec(["ln", "-sfn", NEW, "/run/current-system"], check=True)  # a switch
        [found] = _boot(collector, lab_settings)
        assert "a boot is due: the kernel, the initrd installed since" in found.summary
        assert found.evidence[0] == (f"kernel: booted {OLD_KERNEL}/bzImage, current "
                                     f"system's {NEW_KERNEL}/bzImage")
        # booted into it (as a boot makes /run/booted-system the system it booted)
        sandbox.exec(["ln", "-sfn", NEW, "/run/booted-system"], check=True)
        assert _boot(collector, lab_settings) == []
    finally:
        sandbox.exec(["rm", "-rf", "/run/booted-system", "/run/current-system", OLD, NEW,
                      OLD_KERNEL, NEW_KERNEL])
