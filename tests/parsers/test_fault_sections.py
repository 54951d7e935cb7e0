"""The rows of the collection table behind the certificate, core dump and zombie rules: what
each command's answer, good or bad, becomes in the Snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import CommandRefused, ProgramMissing, TransportError
from ai_sysadmin.hosts.transport import CommandResult, LocalTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.parsers import x509_failure
from ai_sysadmin.monitor.remote_script import RoundTrip
from ai_sysadmin.monitor.sections import SECTIONS_BY_NAME, JournalQuery, Plan
from ai_sysadmin.monitor.snapshot import Certificate, Snapshot

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "parsers"
CERT = "/etc/lab-tls/cert.pem"
#: openssl 3.0's words, as the fault lab's openssl printed them
MISSING = ("Could not open file or uri for loading certificate from /etc/lab-tls/gone.pem\n"
           "807B3A78C87F0000:error:80000002:system library:file_open:No such file or directory:"
           "../providers/implementations/storemgmt/file_store.c:266:calling stat(/etc/lab-"
           "tls/gone.pem)\nUnable to load certificate\n")
NOT_PEM = ("Could not read certificate from /etc/lab-tls/key.pem\n80DB9700BC7F0000:error:"
           "1608010C:STORE routines:ossl_store_handle_load_result:unsupported:../crypto/store/"
           "store_result.c:149:\nUnable to load certificate\n")
DENIED = ("Could not open file or uri for loading certificate from /tmp/certtest/c.pem\n"
          "804B6977697F0000:error:8000000D:system library:BIO_new_file:Permission denied:"
          "../crypto/bio/bss_file.c:67:calling fopen(/tmp/certtest/c.pem, rb)\n"
          "Unable to load certificate\n")


def raw(name: str) -> str:
    return str(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))["raw"])


def plan(tmp_path: Path, certificates: list[str] | None = None) -> Plan:
    settings = Settings(ai_name="hal", state_dir=tmp_path, certificates=certificates or [])
    return Plan(settings, JournalQuery(), runs_as_root=True)


def done(returncode: int, stdout: str = "", stderr: str = "") -> CommandResult:
    return CommandResult(("x",), returncode, stdout, stderr, 0.01)


def test_each_configured_certificate_is_one_openssl_command(tmp_path: Path) -> None:
    sources = SECTIONS_BY_NAME["certificates"].sources(plan(tmp_path, [CERT, "/etc/b.pem"]))
    assert [s.argv for s in sources] == [
        ("openssl", "crl2pkcs7", "-nocrl", "-certfile", CERT),
        ("openssl", "crl2pkcs7", "-nocrl", "-certfile", "/etc/b.pem")]
    assert SECTIONS_BY_NAME["certificates"].sources(plan(tmp_path)) == ()


def test_a_relative_certificate_path_is_refused_in_the_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be an absolute path"):
        Settings(state_dir=tmp_path, certificates=["ssl/web.pem"])


def test_certificates_read_or_not_each_say_so(tmp_path: Path) -> None:
    paths = [CERT, "/etc/lab-tls/gone.pem", "/etc/lab-tls/key.pem"]
    snap = Snapshot("h", 1.0)

    SECTIONS_BY_NAME["certificates"].take(
        [done(0, raw("x509_dates")), done(1, stderr=MISSING), done(1, stderr=NOT_PEM)],
        snap, plan(tmp_path, paths))

    assert snap.certificates == [
        Certificate(CERT, 1738368000.0, "Feb  1 00:00:00 2025 GMT", "CN = shop.lab.example"),
        Certificate("/etc/lab-tls/gone.pem", error="no such file"),
        Certificate("/etc/lab-tls/key.pem", error="no PEM certificate in it"),
    ]


@pytest.mark.parametrize("answer", [
    done(127, stderr="nsenter: failed to execute openssl: No such file or directory"),
    ProgramMissing("web1: cannot start 'openssl': No such file or directory", "openssl"),
])
def test_no_openssl_on_the_host_is_a_section_error_not_a_finding(
    tmp_path: Path, answer: CommandResult | TransportError
) -> None:
    with pytest.raises(TransportError, match="openssl cannot run here"):
        SECTIONS_BY_NAME["certificates"].take([answer], Snapshot("h", 1.0),
                                              plan(tmp_path, [CERT]))


def test_a_host_that_does_not_answer_leaves_the_certificates_unknown(tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="timed out"):
        SECTIONS_BY_NAME["certificates"].take(
            [TransportError("web1: 'openssl' timed out after 20 s")], Snapshot("h", 1.0),
            plan(tmp_path, [CERT]))


def test_openssl_failures_in_a_few_words() -> None:
    assert x509_failure(MISSING) == "no such file"
    assert x509_failure(DENIED) == "permission denied"
    assert x509_failure(NOT_PEM) == "no PEM certificate in it"
    # openssl 1.1
    assert x509_failure("unable to load certificate\n140:error:0909006C:PEM routines:"
                        "get_name:no start line:Expecting: TRUSTED CERTIFICATE\n") == (
        "no PEM certificate in it")
    assert x509_failure("") == "openssl read no certificate"


def test_the_one_systemctl_show_gives_restart_counts_and_how_services_ended(
    tmp_path: Path
) -> None:
    snap = Snapshot("h", 1.0, systemd_running=True)
    SECTIONS_BY_NAME["restarts"].take([done(0, raw("show_results"))], snap, plan(tmp_path))
    assert snap.restarts and snap.restarts["dumper.service"] == 0
    assert snap.service_results is not None
    assert snap.service_results["dumper.service"].result == "core-dump"
    assert snap.service_results["dumper.service"].main_code == "dumped"
    assert "zomb.service" not in snap.service_results  # still running, nothing to tell
    argv = SECTIONS_BY_NAME["restarts"].sources(plan(tmp_path))[0].argv
    assert argv[-2] == ("--property=Id,NRestarts,Result,ExecMainCode,ExecMainStatus,"
                        "ExecMainPID,Restart,NeedDaemonReload")


def test_the_same_systemctl_show_says_which_services_run_a_definition_changed_on_disk(
    tmp_path: Path
) -> None:
    snap = Snapshot("h", 1.0, systemd_running=True)
    SECTIONS_BY_NAME["restarts"].take([done(0, raw("show_need_reload"))], snap, plan(tmp_path))
    assert snap.needs_reload == {"webapp.service", "worker@2.service"}
    no_systemd = Snapshot("h", 1.0, systemd_running=False)
    SECTIONS_BY_NAME["restarts"].take([done(0, "")], no_systemd, plan(tmp_path))
    assert no_systemd.needs_reload == frozenset()  # judged: no unit loaded, none stale


@pytest.mark.parametrize("answer", [
    done(1, stderr="No coredumps found.\n"),
    done(127, stderr="nsenter: failed to execute coredumpctl: No such file or directory\n"),
    ProgramMissing("web1: cannot start 'coredumpctl': sh: 1: coredumpctl: not found",
                   "coredumpctl"),
    done(1, stderr="coredumpctl: unrecognized option '--json=short'\n"),
], ids=["none-recorded", "not-installed-lab", "not-installed-ssh", "before-json"])
def test_no_dump_recorded_or_no_systemd_coredump_is_an_empty_list(
    tmp_path: Path, answer: CommandResult | TransportError
) -> None:
    snap = Snapshot("h", 1.0, systemd_running=True)
    SECTIONS_BY_NAME["core_dumps"].take([answer], snap, plan(tmp_path))
    assert snap.core_dumps == []


def test_recorded_dumps_are_listed(tmp_path: Path) -> None:
    snap = Snapshot("h", 1.0, systemd_running=True)
    SECTIONS_BY_NAME["core_dumps"].take([done(0, raw("coredumpctl_list"))], snap, plan(tmp_path))
    assert [(d.pid, d.exe, d.signal) for d in snap.core_dumps or []] == [
        (73, "/usr/bin/dash", 11), (812, "/usr/sbin/nginx", 6)]


def test_a_coredumpctl_that_fails_otherwise_is_a_section_error(tmp_path: Path) -> None:
    # a journal entry without COREDUMP_UID (anyone may log one) aborts systemd 252's
    with pytest.raises(TransportError, match="Assertion 's' failed"):
        SECTIONS_BY_NAME["core_dumps"].take(
            [done(134, stderr="Assertion 's' failed at src/basic/user-util.c:50, function "
                  "parse_uid(). Aborting.\n")],
            Snapshot("h", 1.0, systemd_running=True), plan(tmp_path))


def test_zombies_are_counted_per_parent_with_its_unit(tmp_path: Path) -> None:
    snap = Snapshot("h", 1.0)
    SECTIONS_BY_NAME["zombies"].take([done(0, raw("ps_zombies"))], snap, plan(tmp_path))
    assert [(z.pid, z.zombies, z.command, z.unit) for z in snap.zombies or []] == [
        (77, 3, "/usr/bin/python3 /usr/local/bin/zomb.py", "zomb.service")]


def test_zombies_and_processes_cost_a_remote_check_one_ps(tmp_path: Path) -> None:
    # the zombie row reads the processes' listing: one ps in the script serves both
    sources = Collector(LocalTransport("here"), plan(tmp_path).settings).sources()
    listings = [s.argv for s in sources if s.argv[0] == "ps"]
    assert len(listings) == 2 and len(set(listings)) == 1  # two rows, the same command
    trip = RoundTrip.plan(listings, 20.0)
    assert len(trip.commands) == 1
    assert trip.script.count("cgroup:") == 1


@pytest.mark.parametrize("stderr", [
    "System has not been booted with systemd as init system (PID 1). Can't operate.\n"
    "Failed to connect to bus: Host is down\n",  # a container: no systemd, a fact
])
def test_no_systemd_is_a_fact_and_no_units(tmp_path: Path, stderr: str) -> None:
    snap = Snapshot("h", 1.0)
    SECTIONS_BY_NAME["units"].take([done(1, stderr=stderr)], snap, plan(tmp_path))
    assert snap.systemd_running is False and snap.units == []


def test_a_bus_that_does_not_answer_is_a_section_error_not_no_units(tmp_path: Path) -> None:
    # systemd runs, but its bus (or PID 1) does not answer now: read as "no systemd, no
    # units", every unit incident of the host resolved
    with pytest.raises(TransportError, match="Failed to connect to bus: Connection refused"):
        SECTIONS_BY_NAME["units"].take(
            [done(1, stderr="Failed to connect to bus: Connection refused\n")],
            Snapshot("h", 1.0), plan(tmp_path))


#: a systemd program that did not start, for no want of it on the host: the words say so
#: whatever they hold
_NOT_STARTED = [
    TransportError("web1: cannot start 'systemctl': Resource temporarily unavailable"),
    TransportError("web1: cannot start 'systemctl': sh: 1: systemctl: Permission denied"),
    CommandRefused("web1: the login shell of monitor refuses to run commands: it ended with "
                   "exit 1 before running any, saying: cannot start a session", 1,
                   "cannot start a session"),
]


@pytest.mark.parametrize("answer", _NOT_STARTED, ids=["eagain", "exit-126", "refused"])
def test_a_systemctl_that_did_not_start_is_a_section_error_not_no_systemd(
    tmp_path: Path, answer: TransportError
) -> None:
    for name in ("units", "unit_files"):
        with pytest.raises(TransportError, match="cannot start"):
            SECTIONS_BY_NAME[name].take([answer], Snapshot("h", 1.0), plan(tmp_path))


@pytest.mark.parametrize("answer", _NOT_STARTED, ids=["eagain", "exit-126", "refused"])
def test_a_coredumpctl_that_did_not_start_is_a_section_error_not_no_dumps(
    tmp_path: Path, answer: TransportError
) -> None:
    with pytest.raises(TransportError, match="cannot start"):
        SECTIONS_BY_NAME["core_dumps"].take([answer], Snapshot("h", 1.0, systemd_running=True),
                                            plan(tmp_path))


def test_no_systemctl_on_the_host_is_no_systemd(tmp_path: Path) -> None:
    snap = Snapshot("h", 1.0)
    SECTIONS_BY_NAME["units"].take(
        [ProgramMissing("web1: cannot start 'systemctl': No such file or directory",
                        "systemctl")], snap, plan(tmp_path))
    assert snap.systemd_running is False and snap.units == []


def _journal_line(cursor: str, message: str, priority: int = 4) -> str:
    # as journalctl 252 writes it: U+2028 and U+2029 stay raw inside the JSON string
    return json.dumps({"__CURSOR": cursor, "__REALTIME_TIMESTAMP": "1700000000000000",
                       "PRIORITY": str(priority), "MESSAGE": message,
                       "SYSLOG_IDENTIFIER": "evil", "_PID": "4242"}, ensure_ascii=False)


def test_a_line_separator_inside_a_message_neither_hides_it_nor_stalls_the_cursor(
        tmp_path: Path) -> None:
    # any local user: `printf 'flood\342\200\250x' | systemd-cat -p warning` 2000 times
    text = "\n".join([*(_journal_line(f"c{n}", f"flood {n}\u2028x") for n in range(3)),
                      _journal_line("c3", "EXT4-fs error real after flood", 3)]) + "\n"
    snap = Snapshot("h", 1.0, systemd_running=True)
    SECTIONS_BY_NAME["journal"].take([done(0, text)], snap, plan(tmp_path))
    assert [e.message for e in snap.journal or []] == [
        "flood 0\u2028x", "flood 1\u2028x", "flood 2\u2028x", "EXT4-fs error real after flood"]
    assert snap.journal_cursor == "c3" and "journal" not in snap.errors


def test_journal_lines_that_cannot_be_read_are_a_section_error_not_a_quiet_host(
        tmp_path: Path) -> None:
    text = _journal_line("c0", "fine") + "\n" + '{"__CURSOR": "c1", "MESSAGE": "cut\n'
    snap = Snapshot("h", 1.0, systemd_running=True)
    SECTIONS_BY_NAME["journal"].take([done(0, text)], snap, plan(tmp_path))
    assert snap.errors["journal"] == "1 of the lines journalctl printed could not be read as " \
        "entries"


def test_a_process_with_huge_arguments_is_kept_with_their_beginning() -> None:
    # 128 KiB of arguments, as any user may start a process with
    from ai_sysadmin.monitor.parsers import parse_ps_top

    line = ("  4242     1 S    mallory                          99.0  0.1  1024   600   "
            "   30 0::/user.slice/user-1000.slice/session-3.scope sleep " + "A" * 131072)
    [hog] = parse_ps_top(line + "\n", cgroups=True, count=1)
    assert hog.pid == 4242 and hog.command.startswith("sleep AAAA")
    assert len(hog.command) < 4096 and hog.unit == "session-3.scope"


def test_a_journal_entry_with_an_infinite_priority_loses_none_of_the_others(
        tmp_path: Path) -> None:
    # it raised OverflowError out of the section: the host lost every section of its check,
    # and its journal position never moved past the entry, so the host stayed unwatched
    odd = '{"__CURSOR": "c1", "PRIORITY": Infinity, "__REALTIME_TIMESTAMP": 1e400}'
    deep = '{"__CURSOR": "c2", "MESSAGE": ' + "[" * 100_000 + "]" * 100_000 + "}"
    text = "\n".join([_journal_line("c0", "before"), odd, deep,
                      _journal_line("c3", "EXT4-fs error after", 3)]) + "\n"
    snap = Snapshot("h", 1.0, systemd_running=True)
    SECTIONS_BY_NAME["journal"].take([done(0, text)], snap, plan(tmp_path))
    assert [(e.cursor, e.priority) for e in snap.journal or []] == [
        ("c0", 4), ("c1", 6), ("c3", 3)]
    assert snap.journal_cursor == "c3"
    assert snap.errors["journal"] == "1 of the lines journalctl printed could not be read " \
        "as entries"
