"""What the model writes when it proposes a fix is masked as its diagnosis is: the rationale
in the store and in the decisions log; a secret in what a fix would run is refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from ai_sysadmin import logs
from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.llm.backends import make_backend
from ai_sysadmin.llm.client import DirectLLM
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.investigator import Investigator
from ai_sysadmin.redact import redact
from ai_sysadmin.store import Database, IncidentStore
from tests.support.scripted_model import ScriptedModel, call, say

SECRET = "DB_PASSWORD=Hunter2-s3cr3t-Xy9"
FAILED = Finding("web1", "failed_unit", "app.service", Severity.CRITICAL,
                 "app.service has failed", ("app.service: active=failed",))


def test_a_proposals_words_are_masked_and_a_secret_in_what_it_runs_is_refused(
        tmp_path: Path) -> None:
    assert SECRET not in redact(SECRET)
    script = [
        call("propose_action", kind="run_command",
             parameters={"argv": ["systemctl", "set-environment", SECRET]},
             rationale="set it again"),
        call("propose_action", kind="restart_unit", parameters={"unit": "app.service"},
             rationale=f"it exits on start: {SECRET} was rejected by the database"),
        say(f"DIAGNOSIS: app.service fails: {SECRET} rejected.\nPROPOSALS: restart_unit"),
    ]
    with logs.kept(), ScriptedModel(script) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            llm={"backend": "ollama", "url": model.url, "model": "scripted"})
        logs.configure(tmp_path / "logs", "hal", mask=redact)
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened

        async def investigate() -> None:
            investigator = Investigator(settings, store, {},
                                        lambda _: DirectLLM(make_backend(settings.llm)),
                                        knowledge=KnowledgeRecall(settings))
            investigator.schedule(incident_id, again=False)
            await asyncio.wait_for(asyncio.shield(investigator.running[incident_id]), 30)
            await investigator.close()

        asyncio.run(investigate())
        refused = json.dumps(model.requests[1])
    assert "looks like a secret" in refused
    (proposal,) = store.proposals(incident_id)
    assert proposal["kind"] == "restart_unit"
    assert SECRET not in proposal["rationale"] and "[redacted]" in proposal["rationale"]
    written = [(tmp_path / "logs" / name).read_text()
               for name in ("decisions.jsonl", "orchestrator.jsonl")
               if (tmp_path / "logs" / name).exists()]
    investigated = [json.loads(line) for text in written for line in text.splitlines()
                    if '"investigated"' in line]
    assert investigated and investigated[0]["proposals"][0]["kind"] == "restart_unit"
    assert all(SECRET not in text for text in written)
    assert SECRET not in json.dumps(store.audit_log(100), default=str)
