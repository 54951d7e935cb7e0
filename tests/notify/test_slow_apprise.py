"""An Apprise target that answers 200 and then trickles its body (a byte at a time, each read
within Apprise's read timeout, so none ends it) holds up nothing of the daemon's: its send
runs on a thread of its own, not a worker of the pool every ``asyncio.to_thread`` shares
(checks are stored, the daemon stops, through it); no second send starts on the channel while
that thread runs (its messages wait, spending no attempt); and the notifier's stop and
`notify` end without waiting for it."""

from __future__ import annotations

import asyncio
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from ai_sysadmin.notify import Message, Notifier, build_channels
from ai_sysadmin.notify.channels import Channel
from ai_sysadmin.store import Database, IncidentStore
from tests.conftest import BIN
from tests.notify.conftest import (
    APPRISE_PASSWORD,
    APPRISE_USER,
    apprise_url,
    failed,
    make_settings,
    secret_file,
)
from tests.notify.servers import JsonEndpoint
from tests.support.polling import until


class Counted:
    """A channel as built, counting the sends the notifier asks of it."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.name, self.formerly, self.shown = channel.name, channel.formerly, channel.shown
        self.sends = 0

    async def send(self, message: Message) -> None:
        self.sends += 1
        await self.channel.send(message)


@pytest.mark.timeout(100)
def test_a_trickled_answer_takes_no_worker_of_the_loops_pool(tmp_path, endpoint) -> None:
    endpoint.then(*["drip"] * 100)
    settings = make_settings(tmp_path, endpoint=endpoint, timeout=1,
                             retry_backoff_seconds=0.05, max_attempts=3)
    store = IncidentStore(Database(settings.db_path))
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    (built,) = build_channels(settings)
    channel = Counted(built)
    notifier = Notifier(settings, store.db, [channel])

    async def go() -> None:
        # the pool as small as a small host's, whatever this one's cores: each send left
        # running in it would take one of its workers for good
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=2))
        stop = asyncio.Event()
        loops = asyncio.create_task(notifier.run(stop))
        try:
            # many more tries than the pool has workers, the first still trickling
            await until(lambda: channel.sends >= 30 and endpoint.dripping, 60,
                        "30 tries of the channel")
            answered = await asyncio.wait_for(asyncio.to_thread(lambda: "answered"), 30)
            assert answered == "answered"
        finally:
            stop.set()
            await asyncio.wait_for(loops, 30)

    asyncio.run(go())  # returned: no thread of the loop's pool is left to join
    # one send reached the far end: the others waited for it, spending no attempt
    assert len(endpoint.requests) == 1 and endpoint.dripping == 1
    (waiting,) = notifier.outbox.deliveries(("pending",))
    assert waiting["attempts"] == 1
    assert "still sending an earlier message" in waiting["last_error"]


@pytest.mark.timeout(100)
def test_the_channel_sends_again_once_the_trickle_ends(tmp_path, endpoint) -> None:
    endpoint.then("drip")
    settings = make_settings(tmp_path, endpoint=endpoint, timeout=1,
                             retry_backoff_seconds=0.05, max_attempts=3)
    store = IncidentStore(Database(settings.db_path))
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    notifier = Notifier(settings, store.db)

    async def go() -> None:
        stop = asyncio.Event()
        loops = asyncio.create_task(notifier.run(stop))
        try:
            await until(lambda: any("still sending" in (r["last_error"] or "")
                                    for r in notifier.outbox.deliveries(("pending",))), 60,
                        "the channel read as busy")
            endpoint.release()  # the far end finishes its answer
            await until(lambda: notifier.outbox.deliveries(("delivered",)), 60,
                        "the message delivered")
        finally:
            stop.set()
            await asyncio.wait_for(loops, 30)

    asyncio.run(go())
    assert endpoint.titles() == ["[hal] web1: nginx.service has failed"]


@pytest.mark.timeout(100)
def test_a_stop_during_a_trickled_answer_ends_asyncio_run(tmp_path, endpoint) -> None:
    endpoint.then("drip")
    settings = make_settings(tmp_path, endpoint=endpoint, timeout=1)
    notifier = Notifier(settings, Database(settings.db_path))
    notifier.outbox.queue_message("manual", "[hal] test", "body", 5,
                                  [c.name for c in notifier.channels])

    async def go() -> None:
        stop = asyncio.Event()
        loops = asyncio.create_task(notifier.run(stop))
        await until(lambda: endpoint.dripping, 60, "the send in flight")
        stop.set()
        await asyncio.wait_for(loops, 30)

    asyncio.run(go())  # returned while the far end still trickles
    assert endpoint.dripping == 1
    (pending,) = notifier.outbox.deliveries(("pending",))
    assert pending["attempts"] == 0  # cut off by the stop: sent again after the restart


@pytest.mark.timeout(120)
def test_notify_send_ends_while_the_answer_still_trickles(tmp_path) -> None:
    with JsonEndpoint(APPRISE_USER, APPRISE_PASSWORD, ["drip"]) as endpoint:
        config = tmp_path / "config.toml"
        urls = secret_file(tmp_path / "urls", apprise_url(endpoint) + "\n")
        config.write_text(f'ai_name = "hal"\nstate_dir = "{tmp_path / "state"}"\n'
                          f'[notify]\napprise_urls_file = "{urls}"\ntimeout = 1\n')
        config.chmod(0o600)
        env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config)}
        # generous: it only runs out when the process waits for the trickle (120 s)
        done = subprocess.run([str(BIN), "notify", "test", "hello"], env=env,
                              capture_output=True, text=True, timeout=90)
        still = endpoint.dripping
    assert done.returncode == 1, done.stderr
    assert "did not answer within 3 s" in done.stdout
    assert still == 1  # it ended without waiting for the far end
