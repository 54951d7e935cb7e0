"""What is told around a state database that refuses the daemon's checks, when a channel
fails that one message or none is configured: a real notifier on a real database, a
stand-in Gotify on 127.0.0.1. (A real daemon on a full disk: test_store_refused_loops.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ai_sysadmin.monitor.snapshot import Mount, Snapshot
from ai_sysadmin.notify import Notifier
from ai_sysadmin.orchestrator.store_down import OutageRecord, StoreDown
from ai_sysadmin.store import Database
from ai_sysadmin.store.outbox import Outbox
from tests.notify.conftest import make_settings, run_notifier
from tests.notify.servers import GotifyServer
from tests.support.polling import until

LINE = ("the state database /var/lib/ai-sysadmin/state.db cannot be written: the disk is "
        "full (database or disk is full); nothing of this change was stored")


def _seen(state: Path) -> Snapshot:
    # a host's text in a mount's source: a line break must not start a line of its own
    return Snapshot("here", time.time(), mounts=[
        Mount("/dev/sda1", "ext4", "/", 10 << 30, 5 << 30, 5 << 30, 1000, 10),
        Mount("/dev/vg/var\nNext: rm -rf /", "xfs", str(state.parent), 4 << 20, 4 << 20, 0,
              100, 100)])


async def _interval_passes(since: float) -> None:
    await until(lambda: time.monotonic() - since > 1.0, what="a check interval")


def test_a_channel_that_fails_the_message_is_tried_again_an_interval_later_once(
        tmp_path: Path) -> None:
    with GotifyServer("AppTok-3f9a1c77e2d4", script=[500]) as gotify:
        settings = make_settings(tmp_path, gotify).model_copy(update={"check_interval": 1})
        db = Database(tmp_path / "state" / "state.db")
        notifier = Notifier(settings, db)
        down = StoreDown(settings, notifier, db.path, lambda: _seen(tmp_path / "state"))

        async def outage() -> None:
            first = time.monotonic()
            await down.refused(LINE, "the disk is full")  # one refusal may pass: nothing yet
            await _interval_passes(first)
            await down.refused(LINE, "the disk is full")  # Gotify answers 500
            tried = time.monotonic()
            for _ in range(5):  # the other hosts' checks, refused at once
                await down.refused(LINE, "the disk is full")
            assert len(gotify.requests) == 1
            await _interval_passes(tried)
            for _ in range(5):
                await down.refused(LINE, "the disk is full")
            await down.worked()

        asyncio.run(outage())
        assert len(gotify.requests) == 2
        (told,) = gotify.accepted
        assert told["priority"] == 8
        assert told["title"] == ("[hal] cannot record anything: its state database cannot "
                                 "be written: the disk is full; hal is not watching until "
                                 "it is mended")
        lines = told["message"].splitlines()
        assert lines[0] == LINE
        assert lines[2] == (f"> {tmp_path} (xfs on /dev/vg/var Next: rm -rf /) was 100% full "
                            "at the last check: 4.0 MiB of 4.0 MiB used, 0 B free")
        assert lines[-1] == f"Next: df -h {tmp_path / 'state'}"
        # notify status shows what was sent around it, and "works again" goes the usual way
        outbox = Outbox(db)
        assert [(m["kind"], m["priority"]) for m in outbox.messages()] == [
            ("store_refused", 8), ("store_back", 2)]
        run_notifier(notifier, lambda: len(gotify.accepted) == 2)
        assert gotify.titles()[1] == "[hal] records again: its state database can be written"


def test_with_no_channel_the_log_is_all(tmp_path: Path) -> None:
    settings = make_settings(tmp_path).model_copy(update={"check_interval": 1})
    db = Database(tmp_path / "state" / "state.db")
    down = StoreDown(settings, Notifier(settings, db), db.path, lambda: None)

    async def outage() -> None:
        first = time.monotonic()
        await down.refused(LINE, "the disk is full")
        await _interval_passes(first)
        await down.refused(LINE, "the disk is full")
        await down.worked()

    asyncio.run(outage())
    assert Outbox(db).messages() == []


def test_a_daemon_restarted_in_the_outage_does_not_tell_it_again(tmp_path: Path) -> None:
    # `systemctl restart` while the store refuses the checks (its database still opens): what
    # was told is kept in the unit's runtime directory, which the restart keeps
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    with GotifyServer("AppTok-3f9a1c77e2d4") as gotify:
        settings = make_settings(tmp_path, gotify).model_copy(update={"check_interval": 1})
        db = Database(tmp_path / "state" / "state.db")

        async def refused_for_an_interval(down: StoreDown) -> None:
            first = time.monotonic()
            await down.refused(LINE, "the disk is full")
            await _interval_passes(first)
            await down.refused(LINE, "the disk is full")

        before = StoreDown(settings, Notifier(settings, db), db.path, lambda: None,
                           OutageRecord(runtime))
        asyncio.run(refused_for_an_interval(before))
        assert len(gotify.accepted) == 1 and (runtime / "store-down.json").exists()
        notifier = Notifier(settings, db)
        after = StoreDown(settings, notifier, db.path, lambda: None, OutageRecord(runtime))

        async def then_stored() -> None:
            await refused_for_an_interval(after)
            await after.worked()

        asyncio.run(then_stored())
        assert len(gotify.accepted) == 1  # not told twice
        assert not (runtime / "store-down.json").exists()
        # what the first daemon told is in `notify status`, and "works again" goes out
        assert [m["kind"] for m in Outbox(db).messages()] == ["store_refused", "store_back"]
        run_notifier(notifier, lambda: len(gotify.accepted) == 2)
        assert gotify.titles()[1] == "[hal] records again: its state database can be written"
