"""Journal entries of megabytes, which any local user logs (`logger --journald`), cost a remote
check none of its other sections: a check reads at most so much of the journal, and the entries
after those it read whole are read by the next checks. They had cost every section of the host
at every check, the journal's position unable to pass them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.ssh import SshTransport
from ai_sysadmin.monitor.collector import SINCE_PREFIX, JournalQuery

from .conftest import LabHost, wait_until
from .test_remote_collect import collect

REAL = "EXT4-fs error (device vdb1): a real error after the big ones"
#: enough for what JOURNAL_MAX_BYTES lets each check read of the huge entries, and the rest
CHECKS = 12


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(ai_name="sshtest", state_dir=tmp_path / "state")


def _log(lab_host: LabHost, count: int, size: int, byte: str) -> None:
    """``count`` entries of ``size`` bytes of ``byte`` at err, then one real error line."""
    sb = lab_host.sandbox
    sb.exec(["sh", "-c", f"printf 'PRIORITY=3\\nSYSLOG_IDENTIFIER=huge{count}\\nMESSAGE=' "
             "> /tmp/huge; "
             f"head -c {size} /dev/zero | tr '\\0' '{byte}' >> /tmp/huge; echo >> /tmp/huge; "
             f"for i in $(seq {count}); do logger --journald=/tmp/huge || exit; done; "
             f"logger -p user.err -t disk-watch '{REAL}'"], check=True, timeout=60)

    def journald_has_them() -> bool:  # two sockets: journald may write them in any order
        out = sb.exec(["journalctl", "--output=cat", "--output-fields=SYSLOG_IDENTIFIER",
                       f"--identifier=huge{count}", "--identifier=disk-watch"]).stdout
        return out.split().count(f"huge{count}") == count and "disk-watch" in out

    wait_until(journald_has_them, "the entries in the lab's journal", timeout=60)


@pytest.mark.lab
@pytest.mark.slow
def test_megabytes_of_journal_cost_no_section_and_are_read_on(
        lab_host: LabHost, known_hosts: Path, settings: Settings) -> None:
    # 4 MB of a control character: journalctl writes such a field as a list of byte values,
    # 8 MB of JSON, and nine of them pass what a check's reply may hold (64 MiB)
    count = 9
    target = lab_host.ssh.target(lab_host.ssh.write_known_hosts(known_hosts))
    position = f"{SINCE_PREFIX}{time.time():.6f}"  # what the tests before logged is not read
    _log(lab_host, count, 4_000_000, "\\1")
    read: list[str] = []
    big: list[str] = []
    for _ in range(CHECKS):
        snap = collect(SshTransport(target, name="sshlab"), settings,
                       JournalQuery(after_cursor=position))
        assert snap.errors == {}, snap.errors
        read += [e.message for e in snap.journal or []]
        big += [e.message for e in snap.journal or [] if e.identifier == f"huge{count}"]
        assert snap.journal_cursor != position, "the journal's position is stuck"
        position = snap.journal_cursor
        if REAL in read and len(big) == count:
            break
    assert REAL in read
    # each of the huge ones, cut to what an entry keeps
    assert len(big) == count and all(len(m) == 8192 for m in big)


@pytest.mark.lab
@pytest.mark.slow
def test_an_entry_larger_than_a_check_reads_is_passed_over_and_said(
        lab_host: LabHost, known_hosts: Path, settings: Settings) -> None:
    # 6.5 MB of bytes that are no UTF-8: 26 MB of JSON each, more than a check reads of the
    # journal; three pass what a reply may hold
    count = 3
    target = lab_host.ssh.target(lab_host.ssh.write_known_hosts(known_hosts))
    position = f"{SINCE_PREFIX}{time.time():.6f}"
    _log(lab_host, count, 6_500_000, "\\377")
    read: list[str] = []
    passed_over = 0
    for _ in range(CHECKS):
        snap = collect(SshTransport(target, name="sshlab"), settings,
                       JournalQuery(after_cursor=position))
        errors = dict(snap.errors)
        said = errors.pop("journal", None)
        assert errors == {}, errors  # every other section, at every check
        if said is not None:
            # the journal's rules judge none of this check: an error, not a note
            assert "was passed over unread" in said and "priority 3" in said, said
            passed_over += 1
        read += [e.message for e in snap.journal or []]
        assert snap.journal_cursor != position, "the journal's position is stuck"
        position = snap.journal_cursor
        if REAL in read and passed_over == count:
            break
    assert REAL in read and passed_over == count
