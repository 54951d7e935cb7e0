"""The host-side collector, run into a lab exactly as into any host."""

from __future__ import annotations

import asyncio
import time

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.rules import RuleContext, evaluate

from .conftest import judged_in

pytestmark = pytest.mark.lab

LONG_COMMAND = "while :; do sleep 1; done # " + "x" * 120



def test_every_section_collects_and_every_rule_judges(
    sandbox: Sandbox, lab_settings: Settings
) -> None:
    earlier = asyncio.run(Collector(SandboxTransport(sandbox), lab_settings).collect())
    snapshot = asyncio.run(Collector(SandboxTransport(sandbox), lab_settings).collect())
    assert snapshot.errors == {}
    assert snapshot.host == "sdtest" and snapshot.systemd_running
    assert any(u.name == "systemd-journald.service" for u in snapshot.units or [])
    assert {m.target for m in snapshot.mounts or []} >= {"/", "/run", "/tmp"}
    # judged against a look runaway_min_seconds (a second at the least) earlier, as every
    # interval check is once the checker has looked that long
    earlier.taken_at -= max(lab_settings.thresholds.runaway_min_seconds, 1.0)
    _findings, judged = evaluate(RuleContext(snapshot, lab_settings.thresholds,
                                             previous=earlier))
    assert judged == judged_in(sandbox)
    # a service's tasks are read where there is a pids controller, and only there
    assert (snapshot.service_tasks is not None) == ("tasks_exhausted" in judged)


def test_command_lines_do_not_depend_on_the_callers_terminal(
    sandbox: Sandbox, lab_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.exec(["systemd-run", "--unit=long-cmdline.service", "sh", "-c", LONG_COMMAND],
                 check=True)
    monkeypatch.setenv("COLUMNS", "80")
    try:
        snapshot = asyncio.run(Collector(SandboxTransport(sandbox), lab_settings).collect())
    finally:
        sandbox.exec(["systemctl", "stop", "long-cmdline.service"])
    commands = [p.command for p in snapshot.processes or []]
    assert any(LONG_COMMAND in c for c in commands), commands
    # the same listing names each process's unit, as the host's systemd knows it
    units = {p.unit for p in snapshot.processes or [] if LONG_COMMAND in p.command}
    assert units == {"long-cmdline.service"}


def test_a_long_message_is_read_as_text_not_as_nothing(
    sandbox: Sandbox, lab_settings: Settings
) -> None:
    # a traceback logged as one message: journalctl's JSON gives a field of 4096 bytes or more
    # as null unless asked for all of it
    trace = "Traceback (most recent call last): " + "frame " * 1200
    sandbox.exec(["sh", "-c", 'printf "%s\\n" "$0" | systemd-cat -p err -t longapp', trace],
                 check=True)

    def logged() -> list[str]:
        snapshot = asyncio.run(Collector(SandboxTransport(sandbox), lab_settings).collect())
        assert "journal" not in snapshot.errors
        return [e.message for e in snapshot.journal or [] if e.identifier == "longapp"]

    deadline = time.monotonic() + 30
    while not (messages := logged()):
        assert time.monotonic() < deadline, "the message never reached the journal"
    [message] = messages
    assert message.startswith("Traceback (most recent call last): frame frame")
    assert 4096 < len(message) <= 8192


class AsUser(SandboxTransport):
    """The lab, with every command run as another user (as an SSH login without root is)."""

    runs_as_root = False

    def __init__(self, sandbox: Sandbox, uid: int, one_round_trip: bool) -> None:
        super().__init__(sandbox)
        self.uid = uid
        self.one_round_trip = one_round_trip

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        return super().wrap(("setpriv", f"--reuid={self.uid}", f"--regid={self.uid}",
                             "--clear-groups", *argv))


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
@pytest.mark.parametrize(("uid", "why"), [
    (1000, "shows this user's own messages only"),
    (65534, "the system journal is not readable by this user"),
])
def test_a_user_who_cannot_read_the_system_journal_is_told_not_judged_healthy(
    sandbox: Sandbox, lab_settings: Settings, uid: int, why: str, one_round_trip: bool
) -> None:
    # a user with a journal file of its own sees just that, and journalctl still exits 0
    sandbox.exec(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "logger",
                  "-p", "user.warning", "a warning of the user's own"], check=True)
    sandbox.exec(["logger", "-p", "user.err", "a system error the user cannot see"], check=True)
    snapshot = asyncio.run(Collector(AsUser(sandbox, uid, one_round_trip),
                                       lab_settings).collect())
    assert why in snapshot.errors["journal"] and "systemd-journal" in snapshot.errors["journal"]
    assert not [e for e in snapshot.journal or [] if "cannot see" in e.message]
    _findings, judged = evaluate(RuleContext(snapshot, lab_settings.thresholds))
    assert "journal_error_burst" not in judged  # no verdict on what was not read
    assert snapshot.units  # the other sections still came in


class Scripted(SandboxTransport):
    """The lab, collected by one remote script (as an SSH host is) or command by command."""

    def __init__(self, sandbox: Sandbox, one_round_trip: bool) -> None:
        super().__init__(sandbox)
        self.one_round_trip = one_round_trip


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_checks_that_may_keep_the_unit_files_read_them_only_every_so_often(
    sandbox: Sandbox, lab_settings: Settings, one_round_trip: bool
) -> None:
    """systemctl list-unit-files makes systemd work out every unit file's state (about half a
    second of its CPU here); a check that may keep it (the daemon's own) keeps the last
    reading for ``unit_files_every`` seconds, unless that shows a file systemd cannot parse;
    any other check reads them."""
    reads = f"/run/unit-file-reads-{one_round_trip}"
    counted = f"/usr/local/bin/counted-systemctl-{one_round_trip}"
    sandbox.write_file(counted, f'#!/bin/sh\n[ "$1" = list-unit-files ] && echo read >> {reads}'
                                '\nexec systemctl "$@"\n', 0o755)
    orphan = f"/etc/systemd/system/orphan-{one_round_trip}.service"

    def collector(every: float) -> Collector:
        settings = lab_settings.model_copy(update={
            "unit_files_every": every,
            "programs": lab_settings.programs.model_copy(update={"systemctl": counted})})
        return Collector(Scripted(sandbox, one_round_trip), settings)

    def read_so_far() -> int:
        return len(sandbox.exec(["sh", "-c", f"cat {reads} 2>/dev/null; true"]).stdout.split())

    hourly = collector(3600)
    first = asyncio.run(hourly.collect(keep=True))  # nothing kept yet: read
    assert read_so_far() == 1 and first.unit_files and "unit_files" not in first.errors
    sandbox.write_file(orphan, "[Unit\nDescription=a header without its bracket\n")
    try:
        kept = asyncio.run(hourly.collect(keep=True))
        assert read_so_far() == 1
        assert kept.unit_files == first.unit_files and "unit_files" not in kept.errors
        _findings, judged = evaluate(RuleContext(kept, lab_settings.thresholds))
        assert "unit_load_error" in judged  # a kept reading is a reading
        fresh = asyncio.run(hourly.collect())
        assert read_so_far() == 2
        assert (fresh.unit_files or {}).get(orphan.rsplit("/", 1)[1]) == "bad"
        # a broken file in the reading: the next check reads them again, and sees it mended
        sandbox.exec(["rm", "-f", orphan], check=True)
        mended = asyncio.run(hourly.collect(keep=True))
        assert read_so_far() == 3
        assert orphan.rsplit("/", 1)[1] not in (mended.unit_files or {})
        # 0: every check reads them
        every_check = collector(0)
        for _ in range(2):
            asyncio.run(every_check.collect(keep=True))
        assert read_so_far() == 5
    finally:
        sandbox.exec(["rm", "-f", orphan])
