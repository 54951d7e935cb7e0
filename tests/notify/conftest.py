"""Fixtures of the notification tests: a Gotify-contract server, a JSON endpoint for Apprise,
the secret files, settings that point at them, and the notifier's loop until a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.notify import Notifier
from ai_sysadmin.notify.channels import Channel, GotifyChannel
from tests.notify.servers import GotifyServer, JsonEndpoint

TOKEN = "AppTok-3f9a1c77e2d4"
APPRISE_USER = "hooker"
APPRISE_PASSWORD = "Pw-8d1e55c0b7f3"


@pytest.fixture
def gotify() -> Iterator[GotifyServer]:
    with GotifyServer(TOKEN) as server:
        yield server


@pytest.fixture
def endpoint() -> Iterator[JsonEndpoint]:
    with JsonEndpoint(APPRISE_USER, APPRISE_PASSWORD) as server:
        yield server


def secret_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def apprise_url(endpoint: JsonEndpoint) -> str:
    return f"json://{APPRISE_USER}:{APPRISE_PASSWORD}@127.0.0.1:{endpoint.port}/hook"


def make_settings(tmp_path: Path, gotify: GotifyServer | None = None,
                  endpoint: JsonEndpoint | None = None, token: str = TOKEN,
                  **notify: Any) -> Settings:
    extra: dict[str, Any] = {}
    if gotify is not None:
        extra["gotify_url"] = gotify.url
        extra["gotify_token_file"] = secret_file(tmp_path / "gotify.token", token + "\n")
    if endpoint is not None:
        notify["apprise_urls_file"] = secret_file(tmp_path / "apprise.urls",
                                                  f"# ours\n{apprise_url(endpoint)}\n")
    return Settings(ai_name="hal", state_dir=tmp_path / "state", notify=notify, **extra)


def unsent(where: Path) -> list[Channel]:
    """A configured channel that sends nothing: messages are made for it, as for any channel,
    and wait (its token file is missing, were its loop run). With none configured, nothing is
    made: the events wait for one."""
    return [GotifyChannel("http://127.0.0.1:9", where / "missing.token", 1.0)]


def failed(host: str, unit: str, severity: Severity = Severity.CRITICAL) -> Finding:
    return Finding(host, "failed_unit", unit, severity, f"{unit} has failed",
                   (f"{unit}: load=loaded active=failed sub=failed",
                    f"{unit}: bind() to 0.0.0.0:80 failed", "a third line"))


def unreachable(host: str) -> Finding:
    return Finding(host, "host_unreachable", host, Severity.CRITICAL, f"{host} is unreachable",
                   ("ssh: connect to host: Connection refused",))


def run_notifier(notifier: Notifier, until: Callable[[], Any], timeout: float = 30) -> Any:
    """The daemon's delivery loops until ``until()`` holds (checked every 20 ms)."""

    async def go() -> Any:
        stop = asyncio.Event()
        loops = asyncio.create_task(notifier.run(stop))
        try:
            deadline = time.monotonic() + timeout
            while not (got := until()):
                assert time.monotonic() < deadline, "timed out"
                assert not loops.done(), loops.exception()
                await asyncio.sleep(0.02)
            return got
        finally:
            stop.set()
            await asyncio.wait_for(loops, 15)

    return asyncio.run(go())
