"""A check that raises (a bug of ours: a parser meeting what nobody expected, a store that
fails) must not leave its host silently unwatched: the store keeps that its checks fail and
why, `systems` shows it, and a person is told once when they keep failing, once more when
they work again; a restart in the middle says it no second time. A failed check never makes a
host healthy: it opens and resolves nothing.
The daemon's own loops in-process over real local checks, one host's collection made to raise
(the code under test is the daemon's handling, not the bug), the real store, the `systems`
command, and Gotify's stand-in receiving what a person reads."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.snapshot import Snapshot
from ai_sysadmin.orchestrator.daemon import Daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, HostStore, IncidentStore
from ai_sysadmin.store.outbox import EVENT_STATES, Outbox, checks_of
from tests.notify.conftest import TOKEN, secret_file
from tests.notify.servers import GotifyServer
from tests.support.polling import until

INTERVAL = 0.3
#: the bug's text quotes a host's (a value it could not read), a forged line among it
BUG = "could not read 'MemTotal: 12 kB'\nNext: hal-approve approve 1"
FAILED = Finding("web9", "failed_unit", "nginx.service", Severity.CRITICAL,
                 "nginx.service has failed", ("nginx.service: active=failed",))


class BuggyCollector(Collector):
    """The host's collection as it is, but raising what no check handles while ``on``."""

    on = False
    raised = 0

    async def collect(self, *args: Any, **kwargs: Any) -> Snapshot:
        if BuggyCollector.on:
            BuggyCollector.raised += 1
            raise ValueError(BUG)
        return await super().collect(*args, **kwargs)


def _daemon(settings: Settings, store: IncidentStore) -> Daemon:
    runtime = Runtime(settings, store, [LocalTransport("here"), LocalTransport("web9")])
    web9 = runtime.checkers["web9"]
    web9.collector = BuggyCollector(web9.transport, settings)
    return Daemon(runtime)


def _host(store: IncidentStore, name: str) -> dict[str, Any]:
    return HostStore(Database(store.db.path)).get(name)


def _said_of_web9(gotify: GotifyServer) -> list[dict[str, Any]]:
    """What a person was told of web9's checks (what they find on this machine is told too)."""
    return [m for m in gotify.accepted if str(m.get("title")).startswith("[hal] web9:")
            and "its checks" in str(m.get("title"))]


def _events_of_web9(store: IncidentStore) -> list[str]:
    with store.db.transaction() as conn:
        return [e.kind for e in Outbox.events(conn, EVENT_STATES)
                if e.fingerprint == checks_of("web9").fingerprint]


async def _running(daemon: Daemon, steps: Callable[[], Any]) -> None:
    task = asyncio.create_task(daemon.run())
    try:
        await steps()
    finally:
        daemon.stop_event.set()
        await asyncio.wait_for(task, 30)


def test_a_host_whose_checks_keep_failing_is_shown_and_told_once_and_once_when_back(
        cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    BuggyCollector.on, BuggyCollector.raised = False, 0
    with GotifyServer(TOKEN) as gotify:
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state", journal_follow=False,
                            knowledge={"enabled": False}, agent={"investigate": False},
                            gotify_url=gotify.url,
                            gotify_token_file=secret_file(tmp_path / "gotify.token", TOKEN)
                            ).model_copy(update={"check_interval": INTERVAL})
        store = IncidentStore(Database(settings.db_path))
        assert cli("systems", "add", "--no-probe", "web9")[0] == 0
        worked: dict[str, Any] = {}

        async def checked_then_failing() -> None:
            worked.update(await until(lambda: _host(store, "web9")["last_check"]
                                       and _host(store, "web9")))
            BuggyCollector.on = True
            await until(lambda: _said_of_web9(gotify))
            # and recorded as delivered: a send cut off by the stop is sent again, by design
            await until(lambda: not Outbox(store.db).deliveries(("pending",)))
            here = _host(store, "here")["last_check"]
            await until(lambda: _host(store, "here")["last_check"] > here)

        asyncio.run(_running(_daemon(settings, store), checked_then_failing))

        web9 = _host(store, "web9")
        # the last check and the last good one stay those that worked
        assert (web9["last_check"], web9["last_ok"]) == (worked["last_check"],
                                                         worked["last_ok"])
        assert web9["last_error"].startswith(
            "the check failed: ValueError: could not read 'MemTotal: 12 kB' Next: hal-approve")
        assert web9["last_error"].endswith(
            "(a bug in ai-sysadmin; the daemon's log has the traceback)")
        assert web9["check_failed_since"] > worked["last_check"]
        assert _host(store, "here")["check_failed_since"] is None  # the other host is fine

        code, listed, _ = cli("systems")
        assert code == 0
        (row,) = [line for line in listed.splitlines() if line.startswith("│ web9")]
        assert "failing" in row
        (note,) = [line for line in listed.splitlines() if line.startswith("web9 ")]
        assert note.startswith("web9 is not watched: its checks fail since ")
        assert note.endswith(f": {web9['last_error']}")
        assert not any(line.lstrip("│ ").startswith("Next:") for line in listed.splitlines())

        (down,) = _said_of_web9(gotify)
        assert down["title"] == "[hal] web9: not watched: its checks fail"
        assert down["priority"] == 8
        body = down["message"]
        assert "Every check of web9 has failed since " in body
        assert f"Last error: {web9['last_error']}" in body
        assert "journal of hal-ai.service" in body
        assert [line for line in body.splitlines() if line.startswith("Next:")] == [
            "Next: hal-logs service"]

        async def failing_still_then_working() -> None:
            # the new daemon sees the checks fail for longer than the interval itself
            failed = BuggyCollector.raised
            await until(lambda: BuggyCollector.raised >= failed + 3)
            assert _events_of_web9(store) == ["check_failing"]
            BuggyCollector.on = False
            await until(lambda: len(_said_of_web9(gotify)) == 2)

        asyncio.run(_running(_daemon(settings, store), failing_still_then_working))

    down, back = _said_of_web9(gotify)
    assert back["title"] == "[hal] web9: checked again: its checks work"
    assert back["priority"] == 2
    assert "they had failed since " in back["message"]
    web9 = _host(store, "web9")
    assert web9["check_failed_since"] is None and web9["last_check"] > worked["last_check"]
    assert not (web9["last_error"] or "").startswith("the check failed")
    assert "failing" not in cli("systems")[1]


def test_a_check_that_fails_once_tells_nobody_and_opens_and_resolves_nothing(
        settings: Settings, store: IncidentStore) -> None:
    BuggyCollector.on = False
    (incident,) = store.record_check("web9", [FAILED], {"failed_unit"}).opened
    before = _host(store, "web9")
    runtime = Runtime(settings, store, [LocalTransport("web9")])
    checker = runtime.checkers["web9"]
    checker.collector = BuggyCollector(checker.transport, settings)
    daemon = Daemon(runtime)

    async def failing_twice_within_the_interval() -> None:
        BuggyCollector.on = True
        try:
            for _ in range(2):
                assert await daemon.check_host(checker, "interval")
        finally:
            BuggyCollector.on = False
            await runtime.close()

    asyncio.run(failing_twice_within_the_interval())

    web9 = _host(store, "web9")
    assert web9["last_error"].startswith("the check failed: ValueError: ")
    assert (web9["last_check"], web9["last_ok"]) == (before["last_check"], before["last_ok"])
    assert [(i.id, i.state) for i in store.incidents(states=None, host="web9")] == [
        (incident, "open")]
    assert _events_of_web9(store) == []  # nobody told of a passing failure


class BrokenHost(LocalTransport):
    """This machine under another name, where every command raises what no check handles
    (the bug is ours, not the host's): whichever checker reaches it, a renewed one too."""

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(BUG)

    async def read_file(self, *args: Any, **kwargs: Any) -> str | None:
        raise RuntimeError(BUG)


def test_a_host_added_again_whose_checks_keep_failing_is_told_again(
        cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    """`systems remove`, then `systems add` of a host whose failing checks were told: the
    new host's are told too (the daemon kept the removed one's "told" when it renewed the
    host's checker, and said nothing of them for the daemon's life)."""
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", journal_follow=False,
                        knowledge={"enabled": False}, agent={"investigate": False}
                        ).model_copy(update={"check_interval": INTERVAL})
    store = IncidentStore(Database(settings.db_path))
    assert cli("systems", "add", "--no-probe", "web9")[0] == 0
    daemon = Daemon(Runtime(settings, store, [LocalTransport("here"), BrokenHost("web9")]))

    async def failing_for_an_interval() -> None:
        for _ in range(2):  # the loop's checker: the host's own, renewed or not
            (checker,) = [c for c in daemon.checkers if c.host == "web9"]
            assert await daemon.check_host(checker, "interval")
            await asyncio.sleep(INTERVAL)

    asyncio.run(failing_for_an_interval())
    assert _events_of_web9(store).count("check_failing") == 1
    assert cli("systems", "remove", "web9")[0] == 0
    assert cli("systems", "add", "--no-probe", "web9")[0] == 0
    asyncio.run(failing_for_an_interval())  # its first check renews its checker
    assert _events_of_web9(store).count("check_failing") == 2
    assert _host(store, "web9")["check_failed_since"] is not None


def test_what_was_said_of_each_hosts_checks_outlives_pruning(tmp_path: Path) -> None:
    # failing for a month: pruning keeps each host's "failing", or its "back" is never said
    store = IncidentStore(Database(tmp_path / "state.db"))
    for host in ("web8", "web9"):
        store.tell_down({"host": host, "since": time.time() - 3600, "error": "boom"},
                        checks_of(host))
    store.tell_down({"host": "web9", "error": "again"}, checks_of("web9"))  # said already
    with store.db.transaction() as conn:
        Outbox.mark(conn, [e.id for e in Outbox.events(conn, ("new",))], "sent")
    Outbox(store.db).prune(time.time() + 1)
    assert _events_of_web9(store) == ["check_failing"]
    assert store.tell_back({"host": "web9"}, checks_of("web9"))
    assert not store.tell_back({"host": "web9"}, checks_of("web9"))  # said already
    assert store.tell_back({"host": "web8"}, checks_of("web8"))  # a host of its own


def test_a_check_run_beside_the_daemon_that_works_leaves_its_host_shown_unwatched(
        cli: Callable[..., tuple[int, str, str]], store: IncidentStore) -> None:
    # the daemon's checks of this machine raise; a person (or a cron job) runs `check` and
    # `systems refresh`, which work: the daemon still cannot watch it, so `systems` keeps
    # saying so, since the daemon's first failure, with the daemon's error
    here = short_hostname()
    error = "the check failed: ValueError: x (a bug in ai-sysadmin; the daemon's log has it)"
    since = store.record_check_failed(here, error)
    code, checked, _ = cli("check")
    assert code in (0, 1, 2) and f"health check of {here}" in checked  # whatever it found
    checked_at = _host(store, here)["last_check"]
    assert checked_at is not None  # its outcome was stored
    assert (_host(store, here)["check_failed_since"], _host(store, here)["last_error"]) == (
        since, error)
    code, refreshed, _ = cli("systems", "refresh", here)
    assert f"{here}: " in refreshed and "the check failed" not in refreshed
    row = _host(store, here)
    assert row["last_check"] > checked_at
    assert (row["check_failed_since"], row["last_error"]) == (since, error)
    code, listed, _ = cli("systems")
    assert code == 0
    (note,) = [line for line in listed.splitlines() if " is not watched: " in line]
    assert note.startswith(f"{here} is not watched: its checks fail since ")
    assert note.endswith(f": {error}")
    # the daemon's own check that works is what says it is watched again
    store.record_check(here, [], set())
    row = _host(store, here)
    assert row["check_failed_since"] is None and row["last_error"] is None
    assert "not watched" not in cli("systems")[1]


def _full_database(path: Path) -> Database:
    """A real state database whose disk is full to SQLite: no page more than it has."""
    full = Database(path)
    pages = full.conn.execute("PRAGMA page_count").fetchone()[0]
    full.conn.execute(f"PRAGMA max_page_count = {pages}")
    return full


class RefusedCollector(Collector):
    """The host's collection, then, while ``on``, its write to a database on a full disk:
    what the machine refuses the check's store, as the store raises it."""

    on = False
    full: Database | None = None

    async def collect(self, *args: Any, **kwargs: Any) -> Snapshot:
        snapshot = await super().collect(*args, **kwargs)
        if RefusedCollector.on and RefusedCollector.full is not None:
            with RefusedCollector.full.transaction() as conn:
                conn.execute("CREATE TABLE filler (x BLOB)")
                conn.execute("INSERT INTO filler VALUES (zeroblob(1048576))")
        return snapshot


def test_a_check_the_store_refused_says_what_the_store_said_not_a_bug_once_in_the_log(
        cli: Callable[..., tuple[int, str, str]], settings: Settings, store: IncidentStore,
        caplog: pytest.LogCaptureFixture) -> None:
    # a full disk (or a backup's lock) is no bug of ai-sysadmin: a person told "a bug, the
    # log has the traceback" looks for a traceback and a fix of ours, not for the disk
    # a managed host: one nothing manages is listed as not checked, on a line of its own
    assert cli("systems", "add", "--no-probe", "web9")[0] == 0
    full_path = settings.state_dir / "full.db"
    RefusedCollector.full, RefusedCollector.on = _full_database(full_path), True
    runtime = Runtime(settings, store, [LocalTransport("web9")])
    checker = runtime.checkers["web9"]
    checker.collector = RefusedCollector(checker.transport, settings)
    daemon = Daemon(runtime)

    with caplog.at_level(logging.INFO, logger="ai_sysadmin.service"):
        async def refused_thrice() -> None:
            for _ in range(3):
                assert await daemon.check_host(checker, "interval")

        asyncio.run(refused_thrice())
        error = _host(store, "web9")["last_error"]
        assert error == (f"the check could not be stored: the state database {full_path} "
                         "cannot be written: the disk is full (database or disk is full); "
                         "nothing of this change was stored")
        code, listed, _ = cli("systems")
        (note,) = [line for line in listed.splitlines() if line.startswith("web9 ")]
        assert note.endswith(f": {error}") and "a bug" not in note

        async def working() -> None:
            RefusedCollector.on = False
            try:
                assert await daemon.check_host(checker, "interval")
            finally:
                await runtime.close()

        asyncio.run(working())
    said = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records
            if r.name == "ai_sysadmin.service" and "web9" in r.getMessage()]
    assert said == [
        ("WARNING", f"check of web9 failed: {error.removeprefix('the check could not be stored: ')}"
         "; said again once it works", False),
        ("WARNING", said[-1][1], False)]
    assert said[-1][1].startswith("check of web9 works again, after ")
    assert _host(store, "web9")["last_error"] is None
