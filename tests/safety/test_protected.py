"""Protected units: the base set, alias groups, templates, look-alikes and configured units."""

from __future__ import annotations

import pytest

from ai_sysadmin.safety.protected import PROTECTED_BASE, configured_problem, protected_reason


@pytest.mark.parametrize(("unit", "group"), [
    ("ssh", "remote access"), ("sshd", "remote access"), ("sshd.service", "remote access"),
    ("ssh.socket", "remote access"), ("sshd.socket", "remote access"),
    ("sshd@.service", "remote access"), ("sshd@3-10.0.0.1:22-10.0.0.2:5.service", "remote access"),
    ("ssh@.service", "remote access"),
    ("dbus", "system bus"), ("dbus-broker", "system bus"), ("dbus.socket", "system bus"),
    ("systemd-journald", "journal"), ("journald", "journal"),
    ("systemd-journald.socket", "journal"), ("systemd-journald-dev-log.socket", "journal"),
    ("systemd-journald-audit.socket", "journal"), ("systemd-journald@netns.service", "journal"),
    ("systemd-journald-varlink@netns.socket", "journal"),
    ("systemd-logind", "logins"), ("logind", "logins"),
    ("systemd-networkd", "networking"), ("networkd", "networking"),
    ("systemd-networkd.socket", "networking"), ("NetworkManager", "networking"),
    ("network-manager", "networking"), ("networking", "networking"),
    ("systemd-resolved", "name resolution"), ("resolved", "name resolution"),
    ("multi-user.target", "a target"), ("default.target", "a target"),
    ("reboot.target", "a target"), ("anything-at-all.target", "a target"),
    ("init.scope", "PID 1"), ("-.slice", "root slice"), ("system.slice", "every system service"),
    ("-.mount", "root file system"),
    ("ai-sysadmin", "assistant's own"), ("ai-sysadmin-worker.service", "assistant's own"),
    ("ai-sysadmin@hourly.timer", "assistant's own"),
])
def test_the_base_set(unit: str, group: str) -> None:
    reason = protected_reason(unit)
    assert reason is not None and group in reason


@pytest.mark.parametrize("unit", [
    "nginx", "nginx.service", "sshguard.service", "ssh-agent.service", "sshd-keygen.service",
    "postgresql@14-main.service", "dbus-org.freedesktop.timedate1.service", "getty@tty1.service",
    "docker.socket", "user-1000.slice", "session-3.scope", "home.mount", "journal.service",
    "network-online-helper.service", "ai.service", "ai-sys.service",
])
def test_ordinary_units_are_not_protected(unit: str) -> None:
    assert protected_reason(unit) is None


@pytest.mark.parametrize("unit", [
    "SSHD.service", "Sshd", "SSH.socket", "DBUS", "networkmanager", "NETWORKMANAGER.service",
    "Systemd-Journald.service", "AI-SYSADMIN.service", "ssh\\x64.service", "\\x73shd.service",
    "System.slice", "sshd\\x40x.service",
])
def test_case_and_escape_look_alikes_are_protected(unit: str) -> None:
    reason = protected_reason(unit)
    assert reason is not None and reason.startswith("looks like a protected unit")


@pytest.mark.parametrize("unit", [
    "\u0455shd.service", "ssh\u200bd", "s\u0455hd", "\uff53\uff53\uff48\uff44", "sshd ",
    " sshd", "ss hd", "sshd\x00", "../sshd", "sshd/..", "/lib/systemd/system/sshd.service",
    "", "@.service", "a" * 300,
])
def test_invalid_names_are_refused_as_invalid(unit: str) -> None:
    reason = protected_reason(unit)
    assert reason is not None and reason.startswith("not a valid unit name")


def test_not_text_is_invalid() -> None:
    assert protected_reason(None).startswith("not a valid unit name")  # type: ignore[arg-type]


@pytest.mark.parametrize(("unit", "configured"), [
    ("db.service", ["db"]), ("db", ["db.service"]), ("db.socket", ["db.service"]),
    ("db@1.service", ["db"]), ("db@1.service", ["db@.service"]),
    ("postgresql@14-main.service", ["postgresql@14-main"]),
    ("docker.service", ["docker*"]), ("docker.socket", ["docker*"]),
    ("Db.service", ["db"]), ("d\\x62.service", ["db"]),
])
def test_configured_units(unit: str, configured: list[str]) -> None:
    reason = protected_reason(unit, configured)
    assert reason is not None and "configured as protected" in reason


@pytest.mark.parametrize(("unit", "configured"), [
    ("postgresql@15-main.service", ["postgresql@14-main.service"]),
    ("dbx.service", ["db"]), ("nginx", ["docker*"]), ("nginx", []),
])
def test_configured_units_protect_only_what_they_name(unit: str, configured) -> None:
    assert protected_reason(unit, configured) is None


def test_a_single_string_is_one_configured_unit() -> None:
    assert protected_reason("db", "db.service") is not None  # type: ignore[arg-type]
    assert protected_reason("d", "db.service") is None  # type: ignore[arg-type]


@pytest.mark.parametrize("entry", ["bad name", "", "\u0455shd", "a/b", "x" * 300])
def test_an_invalid_configured_entry_fails_closed(entry: str) -> None:
    assert configured_problem(entry) is not None
    reason = protected_reason("nginx.service", [entry])
    assert reason is not None and "fix safety.protected_units" in reason


def test_the_base_set_lists_the_named_units() -> None:
    for unit in ("sshd.service", "ssh.service", "dbus-broker.service", "systemd-journald.service",
                 "systemd-journald.socket", "systemd-logind.service", "init.scope", "-.slice",
                 "NetworkManager.service", "systemd-resolved.service", "sshd@.service"):
        assert unit in PROTECTED_BASE
        assert protected_reason(unit) is not None
