"""A Gotify token file that cannot give a token: said at once, by `notify` and `notify status`,
naming the key, the path and why; the daemon's queued notifications wait for the file to be
mended (no attempts spent, none given up) and are delivered then; the failure is logged once."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.notify import Notifier
from ai_sysadmin.store import Database, IncidentStore
from tests.notify.conftest import TOKEN, failed, make_settings, run_notifier, secret_file
from tests.notify.servers import GotifyServer


def _config(tmp_path: Path, gotify: GotifyServer, token_file: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'ai_name = "hal"\ngotify_url = "{gotify.url}"\n'
                    f'gotify_token_file = "{token_file}"\n')
    return path


BROKEN: dict[str, tuple[Callable[[Path], object], str]] = {
    "missing": (lambda path: None, "No such file or directory"),
    "empty": (lambda path: secret_file(path, "\n"), "empty"),
    "directory": (lambda path: path.mkdir(), "is a directory, not a file"),
    # read as it was, a FIFO blocked the command (and the daemon's event loop) for good
    "fifo": (os.mkfifo, "not a regular file"),
    # sent as it was, the HTTP library's error quoted the header, token and comment, into the
    # output, the state database and the log
    "two lines": (lambda path: secret_file(path, f"{TOKEN}\n# app token of hal\n"),
                  "holds more than the token (a second line or a space): the file must hold "
                  "the token alone"),
    # sent as it was, each message failed on it and was given up after max_attempts
    "non-ASCII": (lambda path: secret_file(path, f"{TOKEN}\u00a0x\n"),
                  "holds a character that is not visible ASCII (a token is letters, digits "
                  "and punctuation)"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_notify_and_status_name_the_token_file_and_why(tmp_path, gotify, cli, monkeypatch,
                                                        kind) -> None:
    token_file = tmp_path / "token"
    make, why = BROKEN[kind]
    make(token_file)
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(_config(tmp_path, gotify, token_file)))
    line = f"gotify_token_file {token_file}: {why}"
    code, out, _ = cli("notify", "backup done", "all 3 volumes")
    assert (code, out) == (1, f"gotify: not accepted: {line}\n")
    assert gotify.requests == []
    code, _, err = cli("notify", "status")
    assert (code, err) == (0, f"{line}\n")
    code, shown, _ = cli("notify", "status", "--json")
    assert json.loads(shown)["problems"] == [line]
    assert TOKEN not in out + err + shown


def test_a_token_file_saved_with_a_bom_gives_the_token(tmp_path, gotify, cli,
                                                       monkeypatch) -> None:
    # Notepad and PowerShell 5's `Out-File -Encoding utf8` write one before the token
    token_file = tmp_path / "token"
    token_file.write_text(f"\ufeff{TOKEN}\r\n", encoding="utf-8")
    token_file.chmod(0o600)  # a world-readable one is said on stderr
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(_config(tmp_path, gotify, token_file)))
    code, out, _ = cli("notify", "backup done", "all 3 volumes")
    assert (code, out) == (0, "gotify: accepted\n")
    assert [r.headers["x-gotify-key"] for r in gotify.requests] == [TOKEN]
    code, _, err = cli("notify", "status")
    assert (code, err) == (0, "")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["missing", "two lines", "non-ASCII"])
def test_a_mended_token_file_delivers_what_waited_and_is_logged_once(tmp_path, gotify,
                                                                     caplog, kind) -> None:
    settings = make_settings(tmp_path, gotify, retry_backoff_seconds=0.05, max_attempts=2)
    token_file = settings.gotify_token_file
    assert token_file is not None
    token_file.unlink()
    make, why = BROKEN[kind]
    make(token_file)
    store = IncidentStore(Database(settings.db_path))
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    notifier = Notifier(settings, store.db)
    started = time.monotonic()
    mended: list[bool] = []

    def mend_after_many_retries() -> object:
        if not mended and time.monotonic() - started > 1.0:
            # twenty backoffs past max_attempts: still waiting, nothing spent, nothing sent
            waiting = notifier.outbox.deliveries(("pending",))
            assert [r["attempts"] for r in waiting] == [0], notifier.outbox.deliveries(
                ("pending", "failed"))
            assert why in waiting[0]["last_error"]
            assert gotify.requests == []
            secret_file(token_file, TOKEN + "\n")
            mended.append(True)
        return notifier.outbox.deliveries(("delivered",))

    with caplog.at_level("INFO", logger="ai_sysadmin"):
        (delivered,) = run_notifier(notifier, mend_after_many_retries)
    assert delivered["attempts"] == 1
    assert gotify.titles() == ["[hal] web1: nginx.service has failed"]
    said = [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")]
    assert [r.getMessage() for r in said] == [
        f"gotify_token_file {token_file}: {why}: notifications to Gotify wait in the outbox "
        "until it is mended"]
    assert any("gives a token again" in r.getMessage() for r in caplog.records)
    assert TOKEN not in caplog.text
