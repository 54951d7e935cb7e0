"""Properties that hold for every argv, checked over a seeded random sample of hostile ones."""

from __future__ import annotations

import random

import pytest

from ai_sysadmin.safety.command_policy import RISKS, Decision, check_command, check_readonly
from ai_sysadmin.safety.file_policy import check_read

PROGRAMS = ["systemctl", "journalctl", "ls", "ps", "ip", "find", "du", "df", "ss", "kill",
            "reboot", "nix-env", "nixos-rebuild", "nix-collect-garbage", "apt-get", "dnf",
            "yum", "rpm-ostree", "pacman", "dmesg", "getent", "stat", "bash", "less", "/bin/ls",
            "vmstat"]
TOKENS = ["status", "show", "restart", "stop", "start", "mask", "disable", "kill", "isolate",
          "reboot", "poweroff", "reset-failed", "list-units", "cat", "--no-pager", "-H", "host",
          "--root=/mnt", "-M", "--vacuum-size=1M", "--vacuum-size=500M", "--vac=1M", "-f",
          "-fn", "-n", "50", "-b", "-1", "--", "-", "-u", "--unit=sshd", "sshd", "ssh", "nginx",
          "nginx.service", "sshd@.service", "-.slice", "multi-user.target", "ssh*", "/etc",
          "/etc/shadow", "/etc/../root", "..", "-TERM", "-KILL", "1", "4242", "-1", "0",
          "switch", "--rollback", "-p", "/nix/var/nix/profiles/system", "upgrade", "-y",
          "-Syu", "--noconfirm", "update", "--reboot", "install", "-o", "pid,environ", "aux",
          "eww", "addr", "link", "set",
          "-exec", "-delete", "-name", "*.log", "shadow", "passwd", "a\x00b", "\u0455shd",
          "x" * 300, "", "--property=MainPID", "-p", "--lines=15", "-e", "--rotate",
          "--delete-older-than", "14d", "-d", "--now", "--force", "$(reboot)", "a;b"]


def _sample(seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(PROGRAMS)] + [rng.choice(TOKENS) for _ in range(rng.randint(0, 6))]


SAMPLE = [_sample(seed) for seed in range(3000)]


def test_no_argv_makes_the_policy_raise() -> None:
    weird: list = [None, "", "ls", b"ls", 42, [], [""], [None], ["ls", None], ["ls", b"x"],
                   ("uname", "-a"), ["ls", ["nested"]], [object()]]
    for argv in weird + SAMPLE:
        for purpose in ("investigate", "remediate", "other"):
            decision = check_command(argv, purpose)  # type: ignore[arg-type]
            assert isinstance(decision, Decision) and decision.risk in RISKS
            assert decision.reason


def test_a_read_is_a_read_whatever_the_purpose() -> None:
    reads = 0
    for argv in SAMPLE:
        investigate = check_command(argv, "investigate")
        if investigate.allowed:
            reads += 1
            assert investigate.risk == "none"
            remediate = check_command(argv, "remediate")
            assert remediate.allowed and remediate.risk == "none", argv
    assert reads > 30  # the sample does reach the allowed space


def test_what_changes_the_host_is_never_allowed_while_investigating() -> None:
    changes = 0
    for argv in SAMPLE:
        remediate = check_command(argv, "remediate")
        if remediate.allowed and remediate.risk != "none":
            changes += 1
            investigate = check_readonly(argv)
            assert not investigate.allowed, argv
            assert "not allowed while investigating" in investigate.reason
    assert changes > 15  # the sample does reach the allowed space


def test_nul_and_non_ascii_are_never_allowed() -> None:
    for argv in SAMPLE:
        if any("\x00" in a or not a.isascii() for a in argv):
            assert not check_command(argv, "investigate").allowed
            assert not check_command(argv, "remediate").allowed


PROTECTED = ["sshd", "ssh", "ssh.socket", "sshd@.service", "sshd@1-2.service", "dbus",
             "dbus-broker", "systemd-journald", "journald", "systemd-journald.socket",
             "systemd-logind", "systemd-networkd", "NetworkManager", "systemd-resolved",
             "ai-sysadmin", "ai-sysadmin-web.service", "multi-user.target", "SSHD",
             "ssh\\x64.service"]


@pytest.mark.parametrize("unit", PROTECTED)
@pytest.mark.parametrize("verb", ["stop", "disable", "mask", "kill", "isolate"])
def test_protected_units_are_never_stopped_masked_disabled_or_killed(unit, verb) -> None:
    for argv in (["systemctl", verb, unit], ["systemctl", verb, "--", unit],
                 ["systemctl", "--no-ask-password", verb, unit]):
        decision = check_command(argv, "remediate")
        assert not decision.allowed and "protected" in decision.reason, decision


@pytest.mark.parametrize("unit", [u for u in PROTECTED if not u.endswith("@.service")])
@pytest.mark.parametrize("verb", ["restart", "reload", "start"])
def test_restarting_a_protected_unit_always_needs_a_person(unit, verb) -> None:
    decision = check_command(["systemctl", verb, unit], "remediate")
    assert decision.allowed and decision.risk == "high", decision
    assert "protected unit: needs a person" in decision.reason


def test_check_read_never_raises() -> None:
    rng = random.Random(7)
    parts = ["", "/", "..", ".", "etc", "shadow", "proc", "self", "1", "environ", "\x00", "\n",
             "\u200b", "\uff53", "caf\u00e9", "x" * 300, "dev", "sda", "//"]
    for _ in range(3000):
        path = "".join(rng.choice(parts) + rng.choice(["/", ""]) for _ in range(rng.randint(0, 6)))
        resolved = rng.choice([None, path, "/etc/shadow", "", "relative", "/tmp/x"])
        decision = check_read(path, resolved, [rng.choice(["/tmp/x", "", "relative"])])
        assert decision.reason
        if decision.allowed:
            assert "\x00" not in path and ".." not in path.split("/") and path.startswith("/")
