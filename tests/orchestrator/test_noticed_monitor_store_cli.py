"""An incident's whole life in the audit log, its opening included; ``issues --all`` lists
resolved and closed incidents too, as ``issues list --all`` does."""

from __future__ import annotations

import json
from collections.abc import Callable

from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import IncidentStore

Cli = Callable[..., tuple[int, str, str]]


def _open(store: IncidentStore, subject: str) -> int:
    finding = Finding("web1", "disk_space", subject, Severity.CRITICAL,
                      f"{subject} is 97% full", (f"{subject}: 97 of 100 bytes used",))
    # judged by no rule: the others stay as they are
    return store.record_check("web1", [finding], set()).opened[0]


def test_an_opening_is_audited_like_every_other_change_of_state(cli: Cli,
                                                               store: IncidentStore) -> None:
    number = _open(store, "/var")
    store.record_check("web1", [], {"disk_space"})  # gone: resolved by the monitor
    code, out, _ = cli("logs", "audit", "--json")
    said = [r["msg"] for r in json.loads(out)]
    assert code == 0 and said == [
        f"monitor incident.open incident:{number}: /var is 97% full",
        f"monitor incident.resolved incident:{number}: a fresh collection no longer shows "
        "the finding",
    ]


def test_issues_all_lists_resolved_and_closed_incidents_too(cli: Cli,
                                                            store: IncidentStore) -> None:
    live, resolved, closed = (_open(store, path) for path in ("/var", "/srv", "/home"))
    store.transition(resolved, "resolved", "operator", "cleaned up")
    store.transition(closed, "closed", "operator", "not ours")
    code, out, _ = cli("issues", "--all", "--json")
    assert code == 0
    assert {(i["id"], i["state"]) for i in json.loads(out)} == {
        (live, "open"), (resolved, "resolved"), (closed, "closed")}
    code, out, _ = cli("issues", "--all")
    assert code == 0 and "3 incident(s)" in out and "resolved" in out and "closed" in out
    # without it, the live ones only, however the list is asked for
    for asked in (("issues", "--json"), ("issues", "list", "--json"), ("--json", "issues")):
        code, out, _ = cli(*asked)
        assert code == 0 and [i["id"] for i in json.loads(out)] == [live], asked
    code, out, _ = cli("issues", "--all", "--host", "web1", "--json")
    assert code == 0 and {i["id"] for i in json.loads(out)} == {live, resolved, closed}
    # a host never checked here is said so, not listed as one with nothing wrong
    code, _, err = cli("issues", "--all", "--host", "web2", "--json")
    assert code == 2 and "no host 'web2' was ever checked here" in err
    # an option of the list given to another command is said, not dropped
    code, _, err = cli("issues", "--all", "show", str(live))
    assert code == 2 and "unexpected extra argument" in err
