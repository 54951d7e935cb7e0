"""A model whose fix is turned down (parameters out of range) and which then names that fix in
its diagnosis: the person reading the incident learns why nothing waits for approval, where
"ended without a proposal" under a diagnosis saying "PROPOSALS: clean_directory" read as a
contradiction; the decisions log says why the call failed too."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import Database, IncidentStore
from tests.conftest import BIN
from tests.support.investigations import sweep_until
from tests.support.scripted_model import ScriptedModel, call, say

FULL = Finding("web1", "disk_space", "/srv", Severity.CRITICAL, "/srv is 100% full",
               ("/srv (ext4 on /dev/vdb): 25.0 MiB of 25.0 MiB used, 0 B free",))
REFUSED = "invalid parameters for clean_directory: older_than_days"


def _hal(state: Path, *args: str) -> str:
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(state / "none.toml"),
           "AI_SYSADMIN_STATE_DIR": str(state), "COLUMNS": "400"}
    (state / "none.toml").write_text('ai_name = "hal"\n')
    done = subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split())


def test_why_the_models_fix_was_refused_is_in_the_incident_and_the_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ai_sysadmin.decisions")
    script = [call("propose_action", kind="clean_directory",
                   parameters={"path": "/var/cache", "older_than_days": 0},
                   rationale="old cache files fill the disk"),
              say("DIAGNOSIS: the cache filled /srv.\nPROPOSALS: clean_directory")]
    with ScriptedModel(script) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path,
                            agent={"retry_backoff_seconds": 3600},
                            llm={"backend": "ollama", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FULL], {"disk_space"}).opened
        asyncio.run(sweep_until(settings, store, incident_id,
                                lambda: store.get(incident_id).diagnosis is not None))
    shown = _hal(tmp_path, "issues", "show", str(incident_id))
    assert ("the investigation ended without a proposal (the model's proposal was refused: "
            f"{REFUSED}") in shown, shown
    (logged,) = [r.getMessage() for r in caplog.records
                 if r.getMessage().startswith("tool propose_action")]
    assert f"ms: {REFUSED}" in logged, logged
