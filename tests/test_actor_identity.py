"""Who a decision is recorded as: the account of the real uid, whatever LOGNAME and USER say,
and under sudo also who ran it, as sudo's environment claims (anyone can set SUDO_USER)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from ai_sysadmin.cli.identity import actor
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import ActionStore, Database, IncidentStore

REAL = pwd.getpwuid(os.getuid()).pw_name
#: a name that is not this process's account, whoever runs the tests
OTHER = "mallory" if REAL != "mallory" else "alice"


@pytest.fixture
def spoofed(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(var, OTHER)
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.delenv("SUDO_UID", raising=False)


def _stores(tmp_path: Path) -> tuple[IncidentStore, ActionStore]:
    db = Database(tmp_path / "state" / "state.db")
    return IncidentStore(db), ActionStore(db)


def _pending(tmp_path: Path) -> tuple[int, int]:
    store, actions = _stores(tmp_path)
    finding = Finding("web1", "disk_space", "/var", Severity.CRITICAL, "/var is 97% full")
    incident = store.record_check("web1", [finding], {"disk_space"}).opened[0]
    action = actions.create(incident_id=incident, proposal_id=None, host="web1",
                            kind="vacuum_journal", params={"max_size": "500M"},
                            subject="journal", risk="medium", plan={}, outcome="approval",
                            reason="waits for a person", state="pending", ttl_seconds=3600)
    return incident, action.id


def _actors(tmp_path: Path, subject: str) -> list[str]:
    with Database(tmp_path / "state" / "state.db").transaction() as conn:
        return [r[0] for r in conn.execute("SELECT actor FROM audit WHERE subject=?",
                                           (subject,))]


def test_reject_records_the_real_account_not_logname(cli, tmp_path: Path, spoofed) -> None:
    _, action_id = _pending(tmp_path)
    code, out, err = cli("approve", "reject", str(action_id), "--reason", "no")
    assert code == 0, err
    _, actions = _stores(tmp_path)
    assert actions.get(action_id).decided_by == REAL
    assert _actors(tmp_path, f"action:{action_id}")[-1] == REAL
    assert OTHER not in " ".join(_actors(tmp_path, f"action:{action_id}"))
    code, out, _ = cli("approve", "show", str(action_id))
    assert f"decided by {REAL} " in out
    # the person's reason, once: it was also the "why:" line above it
    assert out.count(": no\n") == 1 and "why: no" not in out, out


def test_closing_an_incident_names_the_real_account(cli, tmp_path: Path, spoofed) -> None:
    incident, action_id = _pending(tmp_path)
    assert cli("issues", "close", str(incident))[0] == 0
    assert _actors(tmp_path, f"incident:{incident}")[-1] == REAL
    # the fix it withdrew, too
    assert _actors(tmp_path, f"action:{action_id}")[-1] == REAL


def test_systems_add_and_remove_name_the_real_account(cli, tmp_path: Path, spoofed) -> None:
    assert cli("systems", "add", "root@127.0.0.1:1", "--name", "spoofweb")[0] in (0, 1)
    assert cli("systems", "remove", "spoofweb")[0] == 0
    assert set(_actors(tmp_path, "host:spoofweb")) == {REAL}


def test_under_sudo_who_ran_it_is_said_as_sudo_claims_it(cli, tmp_path: Path, spoofed,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_USER", OTHER)
    monkeypatch.setenv("SUDO_UID", "1000")
    _, action_id = _pending(tmp_path)
    assert cli("approve", "reject", str(action_id))[0] == 0
    assert _actors(tmp_path, f"action:{action_id}")[-1] == (
        f"{REAL} (sudo from {OTHER} uid 1000, as SUDO_USER says)")


@pytest.mark.parametrize(("env", "said"), [
    ({}, "root"),
    ({"SUDO_USER": "bob", "SUDO_UID": "1000"}, "root (sudo from bob uid 1000, as SUDO_USER says)"),
    # environment text is untrusted: no line breaks or markup into the audit log
    ({"SUDO_USER": "bob\naction.approved", "SUDO_UID": "1e3"},
     "root (sudo from ? uid ?, as SUDO_USER says)"),
    ({"SUDO_UID": "0"}, "root (sudo from ? uid 0, as SUDO_USER says)"),
])
def test_actor_reads_the_real_uid_and_bounds_sudos_claim(env: dict[str, str], said: str) -> None:
    assert actor({"LOGNAME": "alice", "USER": "alice", **env}, uid=0) == said


def test_a_uid_without_an_account_is_said_by_number() -> None:
    unused = next(u for u in range(4_000_000, 4_100_000) if not _has_account(u))
    assert actor({}, uid=unused) == f"uid {unused}"


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True
