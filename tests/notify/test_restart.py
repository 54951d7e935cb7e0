"""The outbox is durable: what one process queued (a message whose channel failed, an event it
never got to) a new `ai-sysadmin run` delivers, once each; and no credential of a channel
appears in the logs, the daemon's output, the database or `notify status`."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

from ai_sysadmin.config import load_settings
from ai_sysadmin.notify import Notifier
from ai_sysadmin.store import Database, IncidentStore
from ai_sysadmin.store.outbox import Outbox
from tests.conftest import BIN, run_program
from tests.lab.daemon_runner import QUIET_HOST_WIDE
from tests.notify.conftest import (
    APPRISE_PASSWORD,
    TOKEN,
    apprise_url,
    failed,
    run_notifier,
    secret_file,
)

URL_PASSWORD = "UrlPw-77c1e0d9"


def write_config(tmp_path: Path, gotify, endpoint) -> Path:
    url = gotify.url.replace("http://", f"http://pusher:{URL_PASSWORD}@")
    thresholds = "\n".join(f"{k} = {v}" for k, v in QUIET_HOST_WIDE.items())
    config = tmp_path / "config.toml"
    config.write_text(f"""ai_name = "hal"
state_dir = "{tmp_path / 'state'}"
check_interval = 3600
journal_follow = false
gotify_url = "{url}"
gotify_token_file = "{secret_file(tmp_path / 'token', TOKEN)}"
[agent]
investigate = false
[notify]
retry_backoff_seconds = 0.2
apprise_urls_file = "{secret_file(tmp_path / 'urls', apprise_url(endpoint))}"
[thresholds]
{thresholds}
""")
    config.chmod(0o600)
    return config


def test_a_new_process_delivers_what_the_old_one_queued(tmp_path, gotify, endpoint) -> None:
    gotify.then(500)
    endpoint.then(500)
    config = write_config(tmp_path, gotify, endpoint)
    settings = load_settings(config, {}).settings
    store = IncidentStore(Database(settings.db_path))
    # the old daemon: one message failed once on each channel, then it stopped
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    old = Notifier(settings, store.db)
    run_notifier(old, lambda: {r["attempts"] for r in old.outbox.deliveries(("pending",))}
                 == {1})
    # ... and one event it never got to
    store.record_check("web2", [failed("web2", "b.service")], {"failed_unit"})
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config)}
    daemon = subprocess.Popen([str(BIN), "run"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    expected = ["[hal] web1: a.service has failed", "[hal] web2: b.service has failed"]
    outbox = Outbox(store.db)
    channels = {"gotify", f"apprise:json://127.0.0.1:{endpoint.port}"}
    wanted = {(c, t) for c in channels for t in expected}
    try:  # delivered: accepted, and recorded as such
        gotify.wait_for(lambda: wanted <= {(r["channel"], r["title"]) for r in
                                           outbox.deliveries(("delivered",), 100)}, 60)
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, stderr
    for receiver in (gotify, endpoint):
        assert [t for t in receiver.titles() if t in expected] == expected  # once each
    status = run_program(str(BIN), "notify", "status", "--json", env=env)
    shown = json.loads(status.stdout)
    assert set(shown["channels"]) == channels and not shown["pending"] + shown["failed"]
    logs = "".join(p.read_text() for p in (settings.log_dir).glob("*.jsonl"))
    assert "notification 1 to gotify failed (attempt" not in logs  # that was the old one
    assert "notification 1 delivered to gotify" in logs
    dump = "\n".join(sqlite3.connect(settings.db_path).iterdump())
    for secret in (TOKEN, APPRISE_PASSWORD, URL_PASSWORD):
        for text in (logs, stderr, dump, status.stdout, status.stderr):
            assert secret not in text
    # as `notify status` shows it: the mask of the URL, not masked again
    assert f"gotify http://pusher:****@127.0.0.1:{gotify.port}" in stderr
