"""A host the config's remote_systems listed, then dropped (the admin decommissioned it, edited
the config and restarted the daemon), is managed no more from the daemon's next start, as
`systems remove` leaves one: nothing checks it, so its incidents would stay open and its fixes
wait for an approval forever. Hosts `systems add` manages, and this machine, are the store's
and stay; the host listed again later is managed again, as a new host."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings, load_settings, short_hostname
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.daemon import Daemon, build_daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import ActionStore, Database, HostStore, IncidentStore
from ai_sysadmin.store.incidents import LIVE_STATES

Cli = Callable[..., tuple[int, str, str]]

#: nothing listens on port 1: web3 is a decommissioned machine, unreachable
WEB3 = '[{host = "127.0.0.1", port = 1, name = "web3"}]'


def _config(config_file: Callable[[str], Path], remote_systems: str) -> Settings:
    config_file(f"remote_systems = {remote_systems}\n"
                'ai_name = "hal"\ncheck_interval = 3600\n'
                "[ssh]\nuse_ssh_config = false\nconnect_timeout = 2\n"
                "[agent]\ninvestigate = false\n[knowledge]\nenabled = false\n")
    return load_settings().settings


def _start(settings: Settings, store: IncidentStore) -> Daemon:
    """The daemon as `run` builds it at its start (the config read then)."""
    return build_daemon(Runtime(settings, store, consumer="daemon"))


def _said(caplog: pytest.LogCaptureFixture, event: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if getattr(r, "event", None) == event]


def _failed(host: str) -> Finding:
    return Finding(host, "failed_unit", "nginx.service", Severity.CRITICAL,
                   "nginx.service has failed")


def _listed(cli: Cli, *extra: str) -> dict[str, dict]:
    code, out, _ = cli("systems", "list", "--json", *extra)
    assert code == 0
    return {r["name"]: r for r in json.loads(out)}


def _live_hosts(cli: Cli) -> set[str]:
    code, out, _ = cli("issues", "--json")
    assert code == 0
    return {i["host"] for i in json.loads(out)}


def test_a_host_dropped_from_the_config_is_managed_no_more_from_the_next_start(
        cli: Cli, config_file: Callable[[str], Path],
        caplog: pytest.LogCaptureFixture) -> None:
    settings = _config(config_file, WEB3)
    store = IncidentStore(Database(settings.db_path))
    # a real check of web3 opens its incident; a fix of another waits for a person
    assert cli("systems", "refresh", "web3")[0] == 1
    (unreachable,) = store.incidents(LIVE_STATES, "web3")
    (failed,) = store.record_check("web3", [_failed("web3")], {"failed_unit"}).opened
    fix = ActionStore(store.db).create(
        incident_id=failed, proposal_id=None, host="web3", kind="restart_unit",
        params={"unit": "nginx.service"}, subject="nginx.service", risk="low", plan={},
        outcome="approval", reason="needs a person", state="pending")
    # the store's hosts: one added with `systems add`, and this machine
    assert cli("systems", "add", "--no-probe", "web1")[0] == 0
    (added,) = store.record_check("web1", [_failed("web1")], {"failed_unit"}).opened
    (here,) = store.record_check(short_hostname(), [_failed(short_hostname())],
                                 {"failed_unit"}).opened
    assert _listed(cli)["web3"]["status"] == "managed"
    _start(settings, store)  # the daemon runs with web3 listed: web3 is the config's
    # a row of this machine under a name it had before (a rename, a hostname not set yet at
    # a boot): written by its checks, never listed, it is no host the config dropped
    store.record_check("oldname", [_failed("oldname")], {"failed_unit"})

    settings = _config(config_file, "[]")  # the admin drops web3, then restarts the daemon
    with caplog.at_level(logging.INFO, logger="ai_sysadmin.service"):
        _start(settings, store)
    for incident in (unreachable.id, failed):
        closed = store.get(incident)
        assert closed.state == "closed"  # kept, with why
        assert closed.events[-1].detail == "web3 is no longer managed (not in remote_systems)"
    assert ActionStore(store.db).get(fix.id).state == "not_needed"
    # said once, in the daemon's log
    assert _said(caplog, "host_unlisted") == [
        "web3 is no longer in the config's remote_systems: no longer managed; 2 open "
        "incident(s) closed, 1 undecided fix(es) withdrawn"]
    assert "web3" not in _listed(cli)
    assert _listed(cli, "--all")["web3"]["status"] == "removed"
    assert _live_hosts(cli) == {"web1", short_hostname(), "oldname"}
    code, out, _ = cli("approve", "list", "--json")
    assert code == 0 and json.loads(out) == []
    # the store's hosts are untouched; the old name, which nothing checks, is listed so
    assert {n: r["status"] for n, r in _listed(cli).items()} == {
        "web1": "managed", short_hostname(): "managed", "oldname": "unchecked"}
    assert HostStore(store.db).get("oldname")["status"] == "managed"
    assert store.get(added).state == store.get(here).state == "open"
    assert [i.state for i in store.incidents(LIVE_STATES, "oldname")] == ["open"]

    # a second start changes nothing and says nothing
    events = len(store.get(failed, history=None).events)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ai_sysadmin.service"):
        _start(settings, store)
    assert not _said(caplog, "host_unlisted") and not _said(caplog, "host_listed_again")
    assert len(store.get(failed, history=None).events) == events
    assert _live_hosts(cli) == {"web1", short_hostname(), "oldname"}


def test_a_dropped_host_listed_again_is_managed_again_as_a_new_host(
        cli: Cli, config_file: Callable[[str], Path],
        caplog: pytest.LogCaptureFixture) -> None:
    settings = _config(config_file, WEB3)
    store = IncidentStore(Database(settings.db_path))
    assert cli("systems", "refresh", "web3")[0] == 1
    first = HostStore(store.db).get("web3")
    _start(settings, store)
    _start(_config(config_file, "[]"), store)
    assert _listed(cli, "--all")["web3"]["status"] == "removed"

    settings = _config(config_file, WEB3)
    with caplog.at_level(logging.INFO, logger="ai_sysadmin.service"):
        daemon = _start(settings, store)
    assert _said(caplog, "host_listed_again") == [
        "web3 is in the config's remote_systems again: managed again, as a new host"]
    row = HostStore(store.db).get("web3")
    # a new registration: maybe another machine, nothing the old one reported is its
    assert (row["status"], row["source"]) == ("managed", "config")
    assert row["first_seen"] > first["first_seen"] and row["last_check"] is None
    assert "web3" in daemon.runtime.checkers  # checked from this start
    assert _listed(cli)["web3"]["status"] == "managed"
    # and the config dropping it again ends it again
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ai_sysadmin.service"):
        _start(_config(config_file, "[]"), store)
    assert _said(caplog, "host_unlisted") == [
        "web3 is no longer in the config's remote_systems: no longer managed; 0 open "
        "incident(s) closed"]


def test_a_start_without_its_config_file_lets_no_host_go(
        cli: Cli, config_file: Callable[[str], Path]) -> None:
    """The file gone (deleted, a mount missing): the daemon runs on the defaults, which list
    no remote host, and that is no admin dropping them all. `run` builds the daemon with
    ``follow_config`` set to whether it read a config file."""
    settings = _config(config_file, WEB3)
    store = IncidentStore(Database(settings.db_path))
    assert cli("systems", "refresh", "web3")[0] == 1
    _start(settings, store)
    defaults = _config(config_file, "[]")  # as the defaults list them: none
    build_daemon(Runtime(defaults, store, consumer="daemon"), follow_config=False)
    assert _listed(cli)["web3"]["status"] == "managed"
    assert [i.state for i in store.incidents(LIVE_STATES, "web3")] == ["open"]


def test_a_host_listed_for_one_run_only_is_managed_no_more_once_dropped(
        config_file: Callable[[str], Path]) -> None:
    """Listed, started once (its row then made by that run's own checks), dropped and started
    again: the host the config listed is the config's to let go, though no row of it was
    there when the daemon started with it."""
    settings = _config(config_file, WEB3)
    store = IncidentStore(Database(settings.db_path))
    _start(settings, store)
    (failed,) = store.record_check("web3", [_failed("web3")], {"failed_unit"}).opened
    daemon = _start(_config(config_file, "[]"), store)
    assert "web3" not in daemon.runtime.checkers
    assert HostStore(store.db).get("web3")["status"] == "removed"
    assert store.get(failed).state == "closed"


def test_a_host_a_command_checked_before_any_start_is_let_go_once_dropped(
        cli: Cli, config_file: Callable[[str], Path]) -> None:
    """Listed, checked from the command line before any daemon ran (its row made by that
    check), then dropped: it stayed managed in `systems list` with its incident open, and
    `check web3` called it no managed host."""
    settings = _config(config_file, WEB3)
    store = IncidentStore(Database(settings.db_path))
    assert cli("check", "web3")[0] == 1  # unreachable: its incident opens
    (unreachable,) = store.incidents(LIVE_STATES, "web3")
    _start(_config(config_file, "[]"), store)
    assert "web3" not in _listed(cli)
    assert store.get(unreachable.id).state == "closed"


def test_a_dropped_host_accepted_again_is_checked_and_stays_the_operators(
        cli: Cli, config_file: Callable[[str], Path]) -> None:
    """The config dropped web3 and a start let it go; the operator accepts it back. It said
    "managed now", yet nothing checked it (no target of its own) and the next start let it
    go again (still the config's)."""
    settings = _config(config_file, WEB3)
    store = IncidentStore(Database(settings.db_path))
    _start(settings, store)
    settings = _config(config_file, "[]")
    _start(settings, store)
    assert _listed(cli, "--all")["web3"]["status"] == "removed"
    code, out, _ = cli("systems", "accept", "web3")
    assert code == 0 and out.startswith("web3 is managed now")
    daemon = _start(settings, store)
    assert "web3" in daemon.runtime.checkers
    assert _listed(cli)["web3"]["status"] == "managed"
    _start(settings, store)  # the next start keeps it
    assert _listed(cli)["web3"]["status"] == "managed"


def test_a_host_the_environment_no_longer_lists_is_let_go_without_a_config_file(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No config file, the fleet in AI_SYSADMIN_REMOTE_SYSTEMS (a container's way): the
    start after web3 left that list did not let it go, as it does one a file drops, and its
    incident stayed open for good, checked by nothing. A start on no file and no such
    variable still takes no host for dropped."""
    monkeypatch.setattr("ai_sysadmin.config.default_config_path",
                        lambda: tmp_path / "absent.toml")
    base = {"AI_SYSADMIN_STATE_DIR": str(tmp_path / "state"),
            "AI_SYSADMIN_AGENT__INVESTIGATE": "false",
            "AI_SYSADMIN_KNOWLEDGE__ENABLED": "false"}

    def start(**env: str) -> IncidentStore:
        loaded = load_settings(environ={**base, **env})
        store = IncidentStore(Database(loaded.settings.db_path))
        # as `run` starts it
        build_daemon(Runtime(loaded.settings, store, consumer="daemon"),
                     follow_config=loaded.lists_the_fleet)
        return store

    store = start(AI_SYSADMIN_REMOTE_SYSTEMS=json.dumps(
        [{"host": "127.0.0.1", "port": 1, "name": "web3"}]))
    (failed,) = store.record_check("web3", [_failed("web3")], {"failed_unit"}).opened
    start()  # defaults alone: nothing says web3 is gone
    assert store.get(failed).state == "open"
    start(AI_SYSADMIN_REMOTE_SYSTEMS="[]")
    assert store.get(failed).state == "closed"
    assert HostStore(store.db).get("web3")["status"] == "removed"

