"""A Gotify that hangs holds up neither the daemon's checks nor the other channels; its
message is sent again once the send times out."""

from __future__ import annotations

import asyncio

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.orchestrator.daemon import build_daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, IncidentStore
from ai_sysadmin.store.outbox import Outbox
from tests.lab.daemon_runner import QUIET_HOST_WIDE
from tests.notify.conftest import TOKEN, apprise_url, failed, secret_file
from tests.support.polling import until


def test_a_hang_blocks_no_check_and_no_other_channel(tmp_path, gotify, endpoint) -> None:
    gotify.then("hang")
    settings = Settings(
        ai_name="hal", state_dir=tmp_path / "state", check_interval=1, journal_follow=False,
        agent={"investigate": False}, thresholds=QUIET_HOST_WIDE, gotify_url=gotify.url,
        gotify_token_file=secret_file(tmp_path / "token", TOKEN),
        notify={"timeout": 5, "retry_backoff_seconds": 0.2,
                "apprise_urls_file": secret_file(tmp_path / "urls", apprise_url(endpoint))})
    store = IncidentStore(Database(settings.db_path))
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    checks_while_hanging: list[int] = []

    async def go() -> None:
        daemon = build_daemon(Runtime(settings, store, [LocalTransport("testhost")]))
        daemon.checkers[0].listeners.append(lambda _: checks_while_hanging.append(
            gotify.hanging))
        running = asyncio.create_task(daemon.run())
        try:
            await until(lambda: gotify.hanging and endpoint.accepted)
            await until(lambda: checks_while_hanging.count(1) >= 2)
            assert gotify.hanging == 1  # still hanging: the checks went on meanwhile
            await until(lambda: [r for r in Outbox(store.db).deliveries(("delivered",))
                                 if r["channel"] == "gotify" and r["message_id"] == 1])
        finally:
            daemon.stop_event.set()
            await asyncio.wait_for(running, 30)

    asyncio.run(go())
    assert gotify.titles() == endpoint.titles()[:1] == ["[hal] web1: nginx.service has failed"]
    gotify_row = [r for r in Outbox(store.db).deliveries(("delivered",))
                  if r["channel"] == "gotify" and r["message_id"] == 1]
    assert gotify_row[0]["attempts"] == 2
