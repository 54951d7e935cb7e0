"""The daemon opens its knowledge base (a real embedded ChromaDB and its ONNX embedding model)
a little after its start. Stopped while that opening is under way, it waits for it to end: the
store it was opening is whole, and the process ends cleanly. Cut off by the process's exit
instead, the opening was lost, and a thread left in the middle of ONNX's work could abort the
process (SIGABRT: a service manager saw a crash and a core dump).

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
    # no host to check: nothing but the daemon's own start and its knowledge base
    return Settings(ai_name="hal", state_dir=state_dir, journal_follow=False,
                    llm={"url": "http://127.0.0.1:9"})


def test_a_daemon_stopped_while_its_knowledge_base_opens_waits_for_it(tmp_path: Path) -> None:
    from ai_sysadmin.knowledge.seed import seed_entries
    from ai_sysadmin.knowledge.store import KnowledgeBase

    state = str(tmp_path / "state")
    done = subprocess.run(
        [sys.executable, __file__, state], cwd=ROOT, text=True, capture_output=True,
        timeout=180, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.rstrip().endswith(STOPPED), done.stderr[-2000:]
    # what the opening did is there: the notes the project ships, all of them, and said so
    kb = KnowledgeBase.open(_settings(state), seed=False)
    assert kb.count()["knowledge"] == len(seed_entries()) and kb.seeded() is not None


def main() -> None:
    import onnxruntime

    from ai_sysadmin.orchestrator import daemon
    from ai_sysadmin.orchestrator.runtime import Runtime
    from ai_sysadmin.store import Database, IncidentStore

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("httpx", "chromadb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    daemon.KNOWLEDGE_WARMUP_SECONDS = 0.0  # at once: the test waits for nothing else
    run, stop = onnxruntime.InferenceSession.run, threading.Event()

    def running(session: onnxruntime.InferenceSession, *args: Any, **kwargs: Any) -> Any:
        if not stop.is_set():
            stop.set()
            os.kill(os.getpid(), signal.SIGTERM)
        return run(session, *args, **kwargs)  # the real work, while the daemon stops

    onnxruntime.InferenceSession.run = running  # type: ignore[method-assign]
    settings = _settings(sys.argv[1])
    store = IncidentStore(Database(settings.db_path))
    asyncio.run(daemon.build_daemon(Runtime(settings, store, [])).run())


if __name__ == "__main__":
    main()
