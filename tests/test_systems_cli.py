"""``{name}-systems`` without any remote host reachable: the inventory's bookkeeping."""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import time
from pathlib import Path

from ai_sysadmin.config import short_hostname
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.llm.queue import open_queue
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.snapshot import JournalEntry, Snapshot
from ai_sysadmin.orchestrator.checker import HostChecker
from ai_sysadmin.orchestrator.fleet import stop_managing
from ai_sysadmin.store import ActionStore, HostStore
from tests.conftest import BIN
from tests.support.needs_root import needs_root
from tests.support.tcp import OneWayServer


def names(cli, *extra: str) -> dict[str, str]:
    code, out, _ = cli("systems", "list", "--json", *extra)
    assert code == 0
    return {r["name"]: r["status"] for r in json.loads(out)}


def test_add_remove_and_the_local_host(cli) -> None:
    assert names(cli) == {short_hostname(): "managed"}
    code, out, _ = cli("systems", "add", "--no-probe", "ops@web1:2222")
    assert code == 0 and "web1 (ops@web1:2222) is managed now" in out
    code, out, _ = cli("systems", "add", "--no-probe", "web2")
    assert code == 0 and out.startswith("web2 is managed now; ")
    assert names(cli)["web1"] == "managed"
    code, _, _ = cli("systems", "remove", "web1")
    assert code == 0 and "web1" not in names(cli)
    assert names(cli, "--all")["web1"] == "removed"
    code, _, err = cli("systems", "add", "--no-probe", "web1;reboot")
    assert code == 2 and "cannot add 'web1;reboot'" in err and "is not a host name" in err
    # the target is named once by the command and once by what is wrong with it, not three times
    assert err.startswith("error: cannot add 'web1;reboot': 'web1;reboot' is not a host name")
    assert err.count("web1;reboot") == 2
    code, _, err = cli("systems", "add", "--no-probe", "ops@web 1:22")
    assert code == 2 and err.startswith("error: cannot add 'ops@web 1:22': 'ops@web 1:22': "
                                        "'web 1' is not a host name")


def test_config_hosts_can_only_be_removed_in_the_config(cli, config_file) -> None:
    path = config_file('remote_systems = ["db1", {host = "10.9.0.2", name = "db2"}]\n')
    assert {"db1", "db2"} <= set(names(cli))
    code, _, err = cli("systems", "remove", "db2")
    assert code == 2 and str(path) in err


def test_hosts_seen_in_the_journal_wait_to_be_accepted(cli, settings, store) -> None:
    checker = HostChecker(LocalTransport("logserver"), settings, store)
    entries = [JournalEntry(f"c{i}", 1.0, 4, "hi", hostname=h)
               for i, h in enumerate(["logserver", "web7.lab", "web8", "web7"])]
    checker.discover_hosts(Snapshot("logserver", 1.0, journal=entries))
    hosts = HostStore(store.db)
    assert {h["name"]: h["status"] for h in hosts.all()} == {"web7": "discovered",
                                                             "web8": "discovered"}
    assert names(cli, "--all")["web7"] == "discovered" and "web7" not in names(cli)
    code, out, _ = cli("systems", "accept", "web7")
    assert code == 0 and names(cli)["web7"] == "managed"
    assert any(e["action"] == "host.discovered" for e in store.audit_log())


def test_a_removed_host_s_journal_puts_no_host_in_the_inventory(cli, settings, store) -> None:
    # its check was under way when the operator removed it: what its journal names waits for
    # nobody's acceptance
    assert cli("systems", "add", "--no-probe", "logserver")[0] == 0
    assert cli("systems", "remove", "logserver")[0] == 0
    checker = HostChecker(LocalTransport("logserver"), settings, store)
    entries = [JournalEntry(f"c{i}", 1.0, 4, "hi", hostname=h)
               for i, h in enumerate(["logserver", "web7", "web8"])]
    checker.discover_hosts(Snapshot("logserver", 1.0, journal=entries))
    assert names(cli, "--all") == {short_hostname(): "managed", "logserver": "removed"}


def test_a_host_removed_while_its_checks_fail_is_failing_no_more(cli, store) -> None:
    # nobody checks a removed host: it is not "failing" for ever, and added again (another
    # machine, months later) it is neither shown failing before its first check nor said to
    # be back from an outage of long ago
    from ai_sysadmin.store.outbox import EVENT_STATES, Outbox, checks_of

    assert cli("systems", "add", "--no-probe", "web9")[0] == 0
    store.record_check_failed("web9", "the check failed: ValueError: x (a bug in ai-sysadmin)")
    store.tell_down({"host": "web9", "since": 1.0, "error": "ValueError: x"}, checks_of("web9"))
    code, out, _ = cli("systems", "list")
    assert code == 0 and "web9 is not watched" in out
    assert cli("systems", "remove", "web9")[0] == 0
    for listed in (cli("systems", "list", "--all"), cli("systems", "add", "--no-probe", "web9"),
                   cli("systems", "list")):
        assert listed[0] == 0 and "failing" not in listed[1] and "not watched" not in listed[1]
    with store.db.transaction() as conn:
        said = {e.kind: e.state for e in Outbox.events(conn, EVENT_STATES)
                if e.fingerprint == checks_of("web9").fingerprint}
    # the failing not yet told is no longer true: the dispatcher drops it
    assert said == {"check_failing": "new", "check_back": "skipped"}
    assert not store.tell_back({"host": "web9"}, checks_of("web9"))


def test_a_journal_sender_cannot_put_a_name_that_is_no_host_in_the_inventory(
        cli, settings, store) -> None:
    # journal-remote takes _HOSTNAME from its senders: "evil host" broke every later command
    checker = HostChecker(LocalTransport("logserver"), settings, store)
    entries = [JournalEntry(f"c{i}", 1.0, 4, "hi", hostname=h)
               for i, h in enumerate(["logserver", "evil host", "-oProxyCommand=x", "web9"])]
    checker.discover_hosts(Snapshot("logserver", 1.0, journal=entries))
    assert {h["name"] for h in HostStore(store.db).all()} == {"web9"}
    # one such name recorded before (by an older version) is refused on accepting it
    HostStore(store.db).discover("bad name", "an older version")
    code, _, err = cli("systems", "accept", "bad name")
    assert code == 2 and "cannot accept 'bad name'" in err
    assert names(cli, "--all")["bad name"] == "discovered"
    assert cli("systems", "list")[0] == 0


def test_refresh_checks_the_local_host(cli) -> None:
    code, out, _ = cli("systems", "refresh", "--json")
    (row,) = json.loads(out)
    assert code == 0 and row["name"] == short_hostname() and row["reachable"] is True


def test_ipv6_literals_are_added_and_every_command_still_reads_them(cli) -> None:
    # (never probed: no packet leaves this machine)
    code, out, _ = cli("systems", "add", "--no-probe", "[fd00::5]:22")
    # a port written stays written (it wins over ~/.ssh/config)
    assert code == 0 and "fd00::5 ([fd00::5]:22) is managed now" in out
    code, out, _ = cli("systems", "add", "--no-probe", "admin@[::1]:2222", "--name", "loop6")
    assert code == 0 and "loop6 (admin@[::1]:2222) is managed now" in out
    assert {"fd00::5", "loop6"} <= set(names(cli))
    rows = {r["name"]: r for r in json.loads(cli("systems", "list", "--json")[1])}
    assert rows["loop6"]["target"] == "admin@[::1]:2222"


def test_a_host_name_of_300_characters_is_refused(cli) -> None:
    code, _, err = cli("systems", "add", "--no-probe", "a" * 300)
    assert code == 2 and "a host name is 1-253 characters (got 300)" in err
    code, _, err = cli("systems", "add", "--no-probe", "web1", "--name", "b" * 300)
    assert code == 2 and "(got 300)" in err
    assert "web1" not in names(cli, "--all")


def test_adding_a_name_twice_refuses_instead_of_replacing(cli) -> None:
    assert cli("systems", "add", "--no-probe", "ops@web1:2222")[0] == 0
    code, _, err = cli("systems", "add", "--no-probe", "root@web1")
    assert code == 2 and "web1 is already managed (ops@web1:2222)" in err
    rows = {r["name"]: r for r in json.loads(cli("systems", "list", "--json")[1])}
    assert rows["web1"]["target"] == "ops@web1:2222"
    # once removed, the name may be added again with another target
    assert cli("systems", "remove", "web1")[0] == 0
    assert cli("systems", "add", "--no-probe", "root@web1")[0] == 0


def test_this_machine_cannot_be_added(cli) -> None:
    code, _, err = cli("systems", "add", "--no-probe", short_hostname())
    assert code == 2 and "already managed" in err


def test_this_machine_in_capitals_with_a_root_dot_or_under_another_name_cannot_be_added(
        cli) -> None:
    # DNS names are case-insensitive and a rooted "vm." is "vm": each was managed beside
    # the local host, and the one machine checked twice
    here = short_hostname()
    for args in ([here.upper()], [f"{here}."], [f"root@{here.upper()}.", "--name", "box"],
                 # and so are localhost and a loopback address at ssh's own port
                 ["localhost", "--name", "lo"], ["root@127.0.0.1", "--name", "lo4"],
                 ["[::1]", "--name", "lo6"], ["127.0.1.1:22", "--name", "lo22"]):
        code, _, err = cli("systems", "add", "--no-probe", *args)
        assert code == 2 and "already managed (this machine" in err
    assert names(cli, "--all") == {here: "managed"}


#: a machine of its own network (a namespace): its one address, a neighbour's, and the
#: names a private /etc/hosts gives them (nothing is asked of DNS: that network has no route)
HERE, THERE = "192.0.2.7", "192.0.2.8"
HOSTS = f"127.0.0.1 localhost\n{HERE} box.example.org box-alias\n{THERE} web7.example.org\n"


def _systems_in_a_network_of_its_own(tmp_path: Path, *adds: list[str],
                                     command: str = "add --no-probe") -> list[str]:
    """`systems add --no-probe` (``command``) of each of ``adds``, then `systems list`, in a
    network namespace whose machine has the address HERE alone, its /etc/hosts
    :data:`HOSTS`: what each printed on stderr, and the names managed after."""
    needs_root("a network and /etc/hosts of its own")
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS)
    script = ("set -e; ip link set lo up; ip link add v0 type veth peer name v1; "
              f"ip addr add {HERE}/24 dev v0; ip link set v0 up; ip link set v1 up; "
              f"mount --bind {hosts} /etc/hosts; set +e; "
              'for args in "$@"; do eval "set -- $args"; "$BIN" systems $COMMAND "$@" '
              '>/dev/null 2>>"$ERR"; echo "exit $?" >>"$ERR"; done; '
              '"$BIN" systems list --json')
    err = tmp_path / "stderr"
    done = subprocess.run(
        ["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c", script,
         "sh", *(" ".join(a) for a in adds)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "BIN": str(BIN), "ERR": str(err), "COMMAND": command})
    assert done.returncode == 0, done.stderr
    return [*err.read_text().splitlines(), *(r["name"] for r in json.loads(done.stdout))]


def test_this_machine_under_its_fqdn_or_address_cannot_be_added(tmp_path: Path) -> None:
    """This machine's FQDN, another name of it and its address were added as remote systems,
    and the one machine checked twice under two names: what decides is the address a name
    resolves to (here from /etc/hosts), one of this machine's, not the name. A neighbour, by
    name or address, is added; this machine's sshd at another port is, under a name of its
    own."""
    said = _systems_in_a_network_of_its_own(
        tmp_path, ["box.example.org"], ["root@box-alias", "--name", "b2"], [HERE],
        ["web7.example.org"], [THERE, "--name", "eight"],
        ["box.example.org:2222", "--name", "box-vm"])
    tunnel = ("; where ~/.ssh/config sends {} to another port (a tunnel, a VM's forward), "
              "write the port: systems add {}:PORT --name NAME")
    assert said[:2] == [f"error: box.example.org is already managed (this machine: "
                        f"box.example.org is its address {HERE})"
                        + tunnel.format("box.example.org", "box.example.org"), "exit 2"], said
    assert said[2:4] == [f"error: b2 is already managed (this machine: box-alias is its "
                         f"address {HERE})" + tunnel.format("box-alias", "box-alias"),
                         "exit 2"], said
    assert said[4:6] == [f"error: {HERE} is already managed (this machine: {HERE} is its "
                         "address)" + tunnel.format(HERE, HERE), "exit 2"], said
    assert said[6:9] == ["exit 0"] * 3, said
    assert set(said[9:]) == {short_hostname(), "web7.example.org", "eight", "box-vm"}, said


def test_a_discovered_name_of_this_machine_cannot_be_accepted(tmp_path: Path, store) -> None:
    """A name another machine's journal or ~/.ssh/config gave this one, accepted, had it
    checked twice as `systems add` of it would."""
    hosts = HostStore(store.db)
    for name in ("box-alias", "web7.example.org"):
        hosts.discover(name, "ssh config")
    said = _systems_in_a_network_of_its_own(tmp_path, ["box-alias"], ["web7.example.org"],
                                            command="accept")
    assert said[:2] == [f"error: box-alias is already managed (this machine: box-alias is "
                        f"its address {HERE})", "exit 2"], said
    assert said[2:3] == ["exit 0"], said
    assert set(said[3:]) == {short_hostname(), "web7.example.org"}, said


def test_removing_a_host_closes_its_incidents_and_cancels_their_llm_work(
        cli, settings, store) -> None:
    assert cli("systems", "add", "--no-probe", "web1")[0] == 0
    finding = Finding("web1", "failed_unit", "nginx.service", Severity.CRITICAL, "nginx failed")
    (incident_id,) = store.record_check("web1", [finding], {"failed_unit"}).opened
    elsewhere = Finding("web2", "failed_unit", "nginx.service", Severity.CRITICAL, "failed")
    (other_id,) = store.record_check("web2", [elsewhere], {"failed_unit"}).opened
    queue = open_queue(settings)
    queued = queue.submit("chat", {"turn": 1}, "autonomous", coalesce_key=f"incident:{incident_id}")
    kept = queue.submit("chat", {"turn": 1}, "autonomous", coalesce_key=f"incident:{other_id}")
    fix = ActionStore(store.db).create(
        incident_id=incident_id, proposal_id=None, host="web1", kind="restart_unit",
        params={"unit": "nginx.service"}, subject="nginx.service", risk="low", plan={},
        outcome="approval", reason="needs a person", state="pending")

    code, out, _ = cli("systems", "remove", "web1")

    assert code == 0
    assert "web1 is no longer managed; 1 open incident(s) closed, 1 queued LLM request(s) " \
        "cancelled, 1 undecided fix(es) withdrawn" in out
    assert ActionStore(store.db).get(fix.id).state == "not_needed"
    closed = store.get(incident_id)
    assert closed.state == "closed"
    assert closed.events[-1].detail == "web1 is no longer managed (systems remove)"
    assert store.get(other_id).state == "open"
    assert queue.get(queued.request_id).state == "cancelled"
    assert queue.get(kept.request_id).state == "pending"
    queue.close()


def test_this_machine_is_not_removed_and_says_why(cli) -> None:
    code, _, err = cli("systems", "remove", short_hostname())
    assert code == 2
    assert f"{short_hostname()} is this machine" in err and "systemctl disable --now" in err
    assert names(cli) == {short_hostname(): "managed"}


def targets(cli) -> dict[str, str]:
    code, out, _ = cli("systems", "list", "--json")
    assert code == 0
    return {r["name"]: r["target"] for r in json.loads(out)}


def refused(cli, *args: str) -> str:
    """The one line a refused `systems add` or `accept` prints, its exit code checked."""
    code, out, err = cli("systems", *args)
    assert code == 2 and "managed now" not in out
    assert len(err.strip().splitlines()) == 1
    return err


def test_the_same_machine_under_another_name_is_refused(cli) -> None:
    # the daemon would check it twice: two SSH sessions, every incident and fix twice
    assert cli("systems", "add", "--no-probe", "ops@web1.example:2222", "--name", "web1")[0] == 0
    for again in ("ops@web1.example:2222", "WEB1.Example.:2222"):
        err = refused(cli, "add", again, "--name", "other")
        assert "is already managed as web1 (ops@web1.example:2222)" in err
        assert "`systems remove web1` first" in err
    assert [t for t in targets(cli).values() if "web1" in t.lower()] == [
        "ops@web1.example:2222"]
    assert "other" not in names(cli, "--all")


def test_another_account_on_a_managed_machine_is_the_same_machine(cli) -> None:
    assert cli("systems", "add", "--no-probe", "web2")[0] == 0
    err = refused(cli, "add", "admin@web2", "--name", "web2-admin")
    assert "web2-admin (admin@web2) is already managed as web2 (web2)" in err
    assert "web2-admin" not in names(cli, "--all") and targets(cli)["web2"] == "web2"


def test_port_22_is_the_port_of_a_target_without_one(cli) -> None:
    assert cli("systems", "add", "--no-probe", "web3")[0] == 0
    assert "already managed as web3 (web3)" in refused(cli, "add", "web3:22", "--name", "w3")
    assert cli("systems", "add", "--no-probe", "root@web4:22")[0] == 0
    assert "already managed as web4 (root@web4:22)" in refused(cli, "add", "web4.", "--name", "w4")
    assert {"w3", "w4"}.isdisjoint(names(cli, "--all"))
    # another port is another sshd (a container, a VM behind a forward): not refused
    assert cli("systems", "add", "--no-probe", "web3:2222", "--name", "web3-vm")[0] == 0


def test_a_machine_of_remote_systems_is_not_added_again(cli, config_file) -> None:
    path = config_file('remote_systems = ["admin@db1:2222", '
                       '{host = "10.9.0.2", name = "db2", user = "ops"}]\n')
    err = refused(cli, "add", "root@10.9.0.2", "--name", "nas")
    assert "nas (root@10.9.0.2) is already managed as db2 (ops@10.9.0.2)" in err
    assert str(path) in err
    assert "already managed as db1 (admin@db1:2222)" in refused(cli, "add", "DB1:2222")
    assert "nas" not in names(cli, "--all")
    assert [n for n in names(cli) if n.lower() in ("db1", "db2")] == ["db1", "db2"]


def test_a_removed_or_discovered_host_does_not_block_its_machine(cli, store) -> None:
    assert cli("systems", "add", "--no-probe", "web1")[0] == 0
    assert cli("systems", "remove", "web1")[0] == 0
    code, out, _ = cli("systems", "add", "--no-probe", "root@web1", "--name", "web1b")
    assert code == 0 and "web1b (root@web1) is managed now" in out
    HostStore(store.db).discover("web5", "a test")
    assert cli("systems", "add", "--no-probe", "web5:22", "--name", "five")[0] == 0
    assert names(cli, "--all") == {short_hostname(): "managed", "web1": "removed",
                                   "web1b": "managed", "web5": "discovered",
                                   "five": "managed"}


def test_accepting_a_discovered_machine_managed_under_another_name_is_refused(
        cli, store, config_file) -> None:
    config_file('remote_systems = [{host = "web8", name = "eight"}]\n')
    hosts = HostStore(store.db)
    hosts.discover("web7", "a test")
    hosts.discover("web8", "a test")
    assert cli("systems", "add", "--no-probe", "ops@Web7.", "--name", "seven")[0] == 0
    err = refused(cli, "accept", "web7")
    assert "web7 (web7) is already managed as seven (ops@Web7.)" in err
    assert "already managed as eight (web8) in remote_systems" in refused(cli, "accept", "web8")
    assert names(cli, "--all")["web7"] == names(cli, "--all")["web8"] == "discovered"


def test_the_sections_a_check_could_not_collect_are_said_under_the_table(
        cli, tmp_path, config_file) -> None:
    # a bus that does not answer (its words, with a colour escape and a secret, are the
    # host's) and a df that is not there: the host answered, but half its check is missing
    systemctl = tmp_path / "systemctl"
    systemctl.write_text("#!/bin/sh\nprintf 'Failed to connect to bus: \\033[31mgone\\033[0m "
                         "password=hunter2\\n' >&2\nexit 1\n")
    systemctl.chmod(0o755)
    config_file(f'ai_name = "hal"\n[programs]\nsystemctl = "{systemctl}"\n'
                f'df = "{tmp_path / "no-df"}"\n')
    code, _, _ = cli("check")
    assert code in (1, 2)  # sections not collected (and whatever this machine has found)
    # check --all names them too, and why, as systems does below: not a count alone
    code, out, _ = cli("check", "--all")
    [named] = [line for line in out.splitlines() if "not collected" in line]
    assert "not collected: mounts: cannot start " in named
    assert "; restarts: systemctl show: Failed to connect to bus: gone password=" in named
    assert "hunter2" not in out and "\x1b" not in out
    code, out, _ = cli("systems")
    assert code == 0
    [said] = [line for line in out.splitlines() if "not collected" in line]
    here = short_hostname()
    assert said.startswith(f"{here}: not collected at the last check (")
    # each section that failed named, and why, on one bounded line
    assert "; restarts: systemctl show: Failed to connect to bus: gone password=" in said
    # the host named once, at the start: not again inside each section's error
    assert f"mounts: cannot start '{tmp_path / 'no-df'}'" in said and f": {here}: " not in said
    assert len(said) <= 400 and "\x1b" not in out and "hunter2" not in out
    # what --json said alone, and now names the sections too
    [row] = json.loads(cli("systems", "--json")[1])
    assert row["last_error"].startswith("mounts: ") and "; restarts: " in row["last_error"]
    code, out, _ = cli("systems", "refresh")
    assert code == 0
    assert re.match(rf"{re.escape(here)}: \d+ finding\(s\); not collected: mounts: ", out)
    assert "; restarts: systemctl show: Failed" in out and "\x1b" not in out
    assert "hunter2" not in out and len(out.splitlines()) == 1


def test_a_host_added_again_after_its_removal_starts_never_checked(cli, store) -> None:
    # the name may be another machine now: nothing the removed one reported is shown as its
    assert cli("systems", "add", "--no-probe", "web9")[0] == 0
    store.record_check("web9", [], set(), os_name="Debian 12", reachable=False,
                       last_error="ssh: connection refused")
    assert cli("systems", "remove", "web9")[0] == 0
    assert cli("systems", "add", "--no-probe", "ops@web9:2222")[0] == 0
    code, out, _ = cli("systems", "list", "--json")
    (row,) = [r for r in json.loads(out) if r["name"] == "web9"]
    assert code == 0 and row["target"] == "ops@web9:2222"
    assert (row["os"], row["last_check"], row["reachable"], row["last_error"]) == (
        None, None, None, None)
    assert HostStore(store.db).get("web9")["last_ok"] is None
    code, out, _ = cli("systems", "list")
    assert code == 0 and "web9" in out and "Debian" not in out and "refused" not in out


def test_a_discovered_host_accepted_by_add_keeps_what_its_checks_saw(cli, store) -> None:
    store.record_check("web8", [], set(), os_name="Debian 12")
    HostStore(store.db).upsert("web8", target=None, source="journal", status="discovered")
    assert cli("systems", "add", "--no-probe", "web8")[0] == 0
    (row,) = [r for r in json.loads(cli("systems", "list", "--json")[1])
              if r["name"] == "web8"]
    assert row["os"] == "Debian 12" and row["last_check"] is not None


def test_a_removed_host_accepted_again_starts_never_checked(cli, store) -> None:
    assert cli("systems", "add", "--no-probe", "web7")[0] == 0
    store.record_check("web7", [], set(), os_name="Debian 12")
    assert cli("systems", "remove", "web7")[0] == 0
    assert cli("systems", "accept", "web7")[0] == 0
    (row,) = [r for r in json.loads(cli("systems", "list", "--json")[1])
              if r["name"] == "web7"]
    assert row["status"] == "managed" and (row["os"], row["last_check"]) == (None, None)


def test_one_host_removed_from_two_terminals_at_once_is_removed_once(cli, store) -> None:
    """Both commands start together; the one that comes second is told who removed the host
    and when, where both said they removed it (and closed its incidents)."""
    assert cli("systems", "add", "--no-probe", "web1")[0] == 0
    store.record_check("web1", [Finding("web1", "failed_unit", "app.service", Severity.CRITICAL,
                                        "app.service failed")], {"failed_unit"})
    removing = [subprocess.Popen([str(BIN), "systems", "remove", "web1"], env=dict(os.environ),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    answers = sorted((p.wait(timeout=120), *p.communicate()) for p in removing)
    assert [code for code, _, _ in answers] == [0, 2], answers  # both said they removed it
    [said] = [e for e in store.audit_log(50) if e["action"] == "host.removed"]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(said["at"]))
    assert answers == [
        (0, "web1 is no longer managed; 1 open incident(s) closed\n", ""),
        (2, "", f"error: web1 is not managed: it was removed already by {said['actor']} at "
                f"{when}\n")], answers


def test_a_host_the_config_listed_once_is_accepted_by_its_name(cli, settings, store) -> None:
    # its row keeps no target (the config's entry was its target): accept failed with a
    # traceback on the missing target
    HostStore(store.db).mark_listed({"web9"})
    stop_managing(settings, store, "web9", "dropped from the config", "daemon")
    assert names(cli, "--all")["web9"] == "removed"
    code, out, err = cli("systems", "accept", "web9")
    assert (code, err) == (0, "") and "web9 is managed now" in out
    assert names(cli, "--all")["web9"] == "managed"


def test_this_machine_at_another_port_is_added_under_a_name_of_its_own(cli) -> None:
    # another sshd (a container, a VM behind a forward): "already managed" said it was this
    # machine's own, and nothing but --name told how to add it
    for target in ("localhost:2222", "127.0.0.1:2299", "root@[::1]:2299"):
        code, _, err = cli("systems", "add", "--no-probe", target)
        assert code == 2 and "needs a name of its own" in err and "--name NAME" in err, err
    assert cli("systems", "add", "--no-probe", "localhost:2222", "--name", "vm1")[0] == 0
    assert names(cli, "--all")["vm1"] == "managed"


class _DisconnectingServer(OneWayServer):
    """Whatever answers on an SSH port: the version line, then a disconnect whose reason (its
    own words) holds a newline and terminal escapes. Real TCP on 127.0.0.1."""

    REASON = ("Too many connections\x1b]0;TITLE\x07\x1b[2J\nweb9 answered and ran a command"
              "\u2028also this")

    def answer(self, conn: socket.socket) -> None:
        reason = self.REASON.encode()
        payload = bytes([1]) + struct.pack(">II", 2, len(reason)) + reason + struct.pack(">I", 0)
        pad = 8 - (len(payload) + 5) % 8
        pad += 8 if pad < 4 else 0
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        conn.recv(4096)
        conn.sendall(struct.pack(">IB", len(payload) + 1 + pad, pad) + payload + b"\0" * pad)
        conn.recv(65536)


def test_what_answers_on_the_port_prints_no_line_of_its_own_when_a_host_is_added(cli) -> None:
    """The SSH server's disconnect reason is its words: printed raw, its newline made a line
    that read as this program's own ("web9 answered and ran a command")."""
    server = _DisconnectingServer()
    try:
        code, out, err = cli("systems", "add", f"127.0.0.1:{server.port}", "--name", "web9")
    finally:
        server.close()
    assert code == 0, err
    assert out.startswith(f"web9 (127.0.0.1:{server.port}) is managed now")
    warning, *rest = err.splitlines()
    assert warning.startswith("warning: no command ran on web9: ") and "Too many" in warning
    assert "\x1b" not in err and "\u2028" not in err
    assert [line for line in rest if "answered and ran" in line] == [], err



def test_a_named_config_host_is_listed_with_its_target(cli, config_file) -> None:
    # its name is no target: `"target": "web-a"` reached nothing a person could ssh to
    config_file('remote_systems = [{host = "192.0.2.10", name = "web-a"}, '
                '{host = "192.0.2.11", name = "web-b", user = "ops", port = 2222}, "db9"]\n')
    assert {n: t for n, t in targets(cli).items() if n != short_hostname()} == {
        "web-a": "192.0.2.10", "web-b": "ops@192.0.2.11:2222", "db9": "db9"}


def test_a_machine_added_then_listed_in_remote_systems_is_checked_once(
        cli, config_file, store) -> None:
    # under two names, one machine was checked twice: two SSH sessions, every incident
    # twice, and two fixes could race on it. The config's name is the one checked.
    from ai_sysadmin.config import load_settings
    from ai_sysadmin.orchestrator.fleet import managed_specs

    assert cli("systems", "add", "--no-probe", "192.0.2.20", "--name", "db1")[0] == 0
    path = config_file('remote_systems = [{host = "192.0.2.20.", name = "database", '
                       'user = "ops"}]\n')
    settings = load_settings(path, environ={}).settings
    assert [s.name for s in managed_specs(settings, HostStore(store.db))] == ["database"]
    code, _, err = cli("systems", "list")
    assert code == 0
    assert ("warning: db1 is not checked: it is the machine of database in remote_systems, "
            "checked as database; `systems remove db1` lets it go") in err
    assert cli("systems", "remove", "db1")[0] == 0
    assert "db1" not in cli("systems", "list")[2]


def test_hosts_of_files_the_ssh_config_includes_are_offered(
        cli, config_file, tmp_path: Path, monkeypatch) -> None:
    """``Include config.d/*``, relative to ~/.ssh as ssh reads it: its hosts were never
    offered, only those of ~/.ssh/config itself."""
    monkeypatch.setenv("HOME", str(tmp_path))
    ssh = tmp_path / ".ssh"
    (ssh / "config.d").mkdir(parents=True)
    (ssh / "config").write_text("Include config.d/*\nHost bastion\n  HostName 10.0.0.1\n")
    (ssh / "config.d" / "web").write_text("Host web1 web2\n  User deploy\n")
    config_file("[ssh]\ndiscover_ssh_config = true\n")
    found = {name: status for name, status in names(cli, "--all").items()
             if status == "discovered"}
    assert set(found) == {"web1", "web2", "bastion"}


def test_a_name_this_machine_had_before_is_listed_as_not_checked(cli, store) -> None:
    # the first check ran before the hostname was set at a boot: its row is this machine's
    # old name, which nothing checks again, and which nothing lets go on its own
    old = "localhost" if short_hostname() != "localhost" else "localhost-before"
    found = Finding(old, "disk_space", "/", Severity.WARNING, "/ is 91% full", ("91%",))
    assert store.record_check(old, [found], {"disk_space"}, os_name="Debian 12",
                              reachable=True).opened
    code, out, _ = cli("systems", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows[short_hostname()]["status"] == "managed"
    assert (rows[old]["status"], rows[old]["open_incidents"]) == ("unchecked", 1)
    code, out, _ = cli("systems")
    assert code == 0
    assert (f"{old} is not checked: it is neither this machine's name now (a rename, a "
            f"hostname not yet set at a boot) nor a managed host's; `systems remove {old}` "
            "lets it go, closing its 1 open incident(s)") in " ".join(out.split())
    assert cli("systems", "remove", old)[0] == 0
    assert names(cli) == {short_hostname(): "managed"}
    assert [i.state for i in store.incidents(None) if i.host == old] == ["closed"]


def _ssh_config(home: Path, monkeypatch, text: str) -> None:
    """``text`` as the ~/.ssh/config of a home of the test's own."""
    monkeypatch.setenv("HOME", str(home))
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    (home / ".ssh" / "config").write_text(text)


def test_an_ssh_config_alias_of_this_machine_is_not_managed(
        cli, store, tmp_path: Path, monkeypatch) -> None:
    """``Host selfie / Hostname 127.0.0.1`` was managed as a remote host: this machine,
    checked twice, once over SSH. What ~/.ssh/config says decides, not the name; its port
    is another sshd, and its host behind a jump host is that host's."""
    _ssh_config(tmp_path, monkeypatch,
                "Host selfie\n  Hostname 127.0.0.1\n  User root\n"
                "Host guest\n  Hostname 127.0.0.1\n  Port 2222\n"
                "Host inner\n  Hostname localhost\n  ProxyJump bastion.example\n")
    err = refused(cli, "add", "--no-probe", "selfie")
    assert err.startswith("error: selfie is already managed (this machine: ~/.ssh/config "
                          "sends selfie to 127.0.0.1:22; 127.0.0.1 names it)"), err
    assert "selfie-b is already managed (this machine" in refused(
        cli, "add", "--no-probe", "ops@selfie", "--name", "selfie-b")
    HostStore(store.db).discover("selfie", "ssh config")
    assert "selfie is already managed (this machine" in refused(cli, "accept", "selfie")
    for target in ("guest", "inner"):
        assert cli("systems", "add", "--no-probe", target)[0] == 0, target
    assert names(cli, "--all") == {short_hostname(): "managed", "selfie": "discovered",
                                   "guest": "managed", "inner": "managed"}


def test_an_ssh_config_alias_of_a_listed_machine_is_neither_accepted_nor_added(
        cli, config_file, tmp_path: Path, monkeypatch) -> None:
    """remote_systems lists web1.example.com, ~/.ssh/config has ``Host web1 / Hostname
    web1.example.com``: discovery offered web1, and accepting it (or adding it) managed the
    machine twice, two incidents per problem and two fixes racing."""
    _ssh_config(tmp_path, monkeypatch,
                "Host web1\n  Hostname Web1.Example.com\n"
                "Host db-alias\n  Hostname 10.9.0.5\n  Port 2201\n")
    path = config_file('remote_systems = ["web1.example.com", "ops@10.9.0.5:2201"]\n'
                       "[ssh]\ndiscover_ssh_config = true\n")
    assert names(cli, "--all")["web1"] == "discovered"
    err = refused(cli, "accept", "web1")
    assert err.startswith("error: web1 (web1) is already managed as web1.example.com "
                          f"(web1.example.com) in remote_systems of {path}: ~/.ssh/config "
                          "sends both to web1.example.com:22"), err
    assert "already managed as web1.example.com" in refused(
        cli, "add", "--no-probe", "root@web1", "--name", "w1")
    assert "db-alias (db-alias) is already managed as 10.9.0.5 (ops@10.9.0.5:2201)" in refused(
        cli, "add", "--no-probe", "db-alias")
    # its port written: another sshd of that machine (a container), managed
    assert cli("systems", "add", "--no-probe", "web1:2222", "--name", "web1-vm")[0] == 0
    listed = names(cli, "--all")
    assert (listed["web1"], listed["web1.example.com"], listed["10.9.0.5"],
            listed["web1-vm"]) == ("discovered", "managed", "managed", "managed")
    assert "w1" not in listed and listed["db-alias"] == "discovered"


def test_an_alias_added_beside_its_machine_by_an_older_version_is_checked_once(
        cli, config_file, store, tmp_path: Path, monkeypatch) -> None:
    """Hosts an older version let in (two names of one sshd through ~/.ssh/config, and this
    machine under an alias): the config's entry, else the one added first, is checked;
    `systems list` and the daemon's log say why each other is not."""
    from ai_sysadmin.config import load_settings
    from ai_sysadmin.orchestrator.fleet import managed_specs

    _ssh_config(tmp_path, monkeypatch,
                "Host web-alias\n  Hostname 127.0.0.1\n  Port 22301\n"
                "Host selfie\n  Hostname 127.0.0.1\n"
                "Host nas nas-b\n  Hostname 10.9.0.9\n")
    path = config_file('remote_systems = ["root@127.0.0.1:22301"]\n')
    hosts = HostStore(store.db)
    # as written, each is a machine of its own: what the store saw as it added them
    for name, target in (("web-alias", "web-alias"), ("web2", "web-alias:22301"),
                         ("selfie", "selfie"), ("nas", "nas"), ("nas-b", "nas-b")):
        hosts.add(name, target=target, source="added")
    settings = load_settings(path, environ={}).settings
    assert [s.name for s in managed_specs(settings, hosts)] == ["127.0.0.1", "nas"]
    code, _, err = cli("systems", "list")
    assert code == 0
    warned = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warned == [
        "warning: web-alias is not checked: it is the machine of 127.0.0.1 in remote_systems "
        "(~/.ssh/config sends both to 127.0.0.1:22301), checked as 127.0.0.1; `systems "
        "remove web-alias` lets it go",
        "warning: web2 is not checked: it is the machine of 127.0.0.1 in remote_systems "
        "(~/.ssh/config sends both to 127.0.0.1:22301), checked as 127.0.0.1; `systems "
        "remove web2` lets it go",
        "warning: selfie is not checked: it is this machine (~/.ssh/config sends selfie to "
        "127.0.0.1:22; 127.0.0.1 names it), which every check watches already; "
        "`systems remove selfie` lets it go",
        "warning: nas-b is not checked: it is the machine of nas (~/.ssh/config sends both "
        "to 10.9.0.9:22), checked as nas; `systems remove nas-b` lets it go"], err


def test_an_ssh_config_that_includes_itself_lists_the_hosts_as_written(
        cli, config_file, tmp_path: Path, monkeypatch) -> None:
    """A ~/.ssh/config that includes itself (ssh stops at 16 deep; asyncssh follows it
    without end) made `systems list` a RecursionError traceback: the hosts are listed as
    their names are written, and the connection says what is wrong with the settings."""
    _ssh_config(tmp_path, monkeypatch, "Host web1\n  HostName 10.0.0.5\nInclude ~/.ssh/config\n")
    config_file('remote_systems = ["web1", "db1"]\n')
    code, out, err = cli("systems", "list")
    assert code == 0 and "Traceback" not in err, err
    assert {"web1", "db1"} <= set(names(cli, "--all")), out
