"""The daemon opens its knowledge base (a real embedded ChromaDB and its ONNX embedding model)
at its first use: here the lesson of a fix that ran, learned at its first housekeeping.
Stopped while that opening is under way, it waits for it to end: the store it was opening is
whole, and the process ends cleanly. Cut off by the process's exit instead, the opening was
lost, and a thread left in the middle of ONNX's work could abort the process (SIGABRT: a
service manager saw a crash and a core dump).

Run as a script, this file is the daemon: ``python THIS_FILE STATE_DIR``. The stop comes as
a service manager sends it (SIGTERM), as the embedding model begins its first run (the new
store's seed): the daemon stops in a few milliseconds, the run takes a second or more."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from ai_sysadmin.config import Settings

ROOT = Path(__file__).resolve().parents[2]
STOPPED = "hal stopped cleanly"


def _settings(state_dir: str) -> Settings:
    # no host to check: nothing but the daemon's own start and its housekeeping (every
    # second), which learns the lesson due and so opens the knowledge base
    return Settings(ai_name="hal", state_dir=state_dir, journal_follow=False,
                    check_interval=1, llm={"url": "http://127.0.0.1:9"})


def test_a_daemon_stopped_while_its_knowledge_base_opens_waits_for_it(tmp_path: Path) -> None:
    from ai_sysadmin.knowledge.seed import seed_entries
    from ai_sysadmin.knowledge.store import KnowledgeBase

    state = str(tmp_path / "state")
    done = subprocess.run(
        [sys.executable, __file__, state], cwd=ROOT, text=True, capture_output=True,
        timeout=180, env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.rstrip().endswith(STOPPED), done.stderr[-2000:]
    # what the opening did is there: the notes the project ships, all of them, and said so,
    # and the lesson whose learning opened it
    kb = KnowledgeBase.open(_settings(state), seed=False)
    assert kb.count()["knowledge"] == len(seed_entries()) + 1 and kb.seeded() is not None
    assert kb.count()["incidents"] == 1


def main() -> None:
    import onnxruntime

    from ai_sysadmin.monitor.findings import Finding, Severity
    from ai_sysadmin.orchestrator import daemon
    from ai_sysadmin.orchestrator.runtime import Runtime
    from ai_sysadmin.store import Database, IncidentStore
    from ai_sysadmin.store.actions import ActionStore

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("httpx", "chromadb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    run, stop = onnxruntime.InferenceSession.run, threading.Event()

    def running(session: onnxruntime.InferenceSession, *args: Any, **kwargs: Any) -> Any:
        if not stop.is_set():
            stop.set()
            os.kill(os.getpid(), signal.SIGTERM)
        return run(session, *args, **kwargs)  # the real work, while the daemon stops

    onnxruntime.InferenceSession.run = running  # type: ignore[method-assign]
    settings = _settings(sys.argv[1])
    store = IncidentStore(Database(settings.db_path))
    finding = Finding("here", "failed_unit", "demo.service", Severity.CRITICAL,
                      "demo.service has failed", ("demo.service: active=failed",))
    (fixed,) = store.record_check("here", [finding], {"failed_unit"}).opened
    actions = ActionStore(store.db)
    actions.lesson_due(actions.create(
        incident_id=fixed, proposal_id=None, host="here", kind="restart_unit",
        params={"unit": "demo.service"}, subject="demo.service", risk="low", plan={},
        outcome="approval", reason="restart it", state="succeeded").id)
    asyncio.run(daemon.build_daemon(Runtime(settings, store, [])).run())


if __name__ == "__main__":
    main()
