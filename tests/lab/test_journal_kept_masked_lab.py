"""The journal entries a check keeps in the state database (the burst window's) are host text
any local user writes: kept masked, as the evidence quoting them is."""

from __future__ import annotations

import asyncio

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.orchestrator.checker import HostChecker
from ai_sysadmin.store import Database, IncidentStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE
from tests.support.polling import poll_until

pytestmark = pytest.mark.lab

SECRET = "hunter2hunter2"


def test_a_journal_entry_is_kept_in_the_store_masked(tmp_path) -> None:
    settings = Settings(ai_name="labtest", state_dir=tmp_path, thresholds=QUIET_HOST_WIDE)
    store = IncidentStore(Database(settings.db_path))
    with Sandbox() as sb:
        checker = HostChecker(SandboxTransport(sb), settings, store)
        asyncio.run(checker.check("interval"))  # the journal's position is stored
        sb.exec(["logger", "-t", "billing", "-p", "user.err",
                 f"cannot reach db: DB_PASSWORD={SECRET} refused"], check=True)

        def kept() -> list[str]:
            asyncio.run(checker.check("interval"))
            return [e["message"] for e in store.journal_entries(checker.host)
                    if e["source"] == "billing"]

        messages = poll_until(kept, what="the entry kept by a check")
    assert messages == ["cannot reach db: DB_PASSWORD=[redacted] refused"]
    for path in settings.db_path.parent.glob(settings.db_path.name + "*"):  # its WAL too
        assert SECRET.encode() not in path.read_bytes(), path
