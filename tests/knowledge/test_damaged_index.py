"""An embedded knowledge base whose vector index is damaged (a file of ChromaDB's HNSW index
cut short: a full disk, a crash in the middle of a write, a bad copy) is refused with one
line that says what and what to do, exit 2: hnswlib reads those files without a check, and a
search crashed the process (SIGSEGV), hung it with SIGTERM unheard, or failed with a sentence
about numpy. The daemon keeps running without recall, and says so once in its log.

A store of more than a thousand entries (ChromaDB writes its index files only then) is made
once for the module, with real vectors of a few texts, slightly moved apart: embedding each
of a thousand texts costs seconds. Each test damages a copy of it.

Run as a script, this file is the daemon on such a store: ``python THIS_FILE STATE_DIR``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.embeddings import MiniLMEmbedding
from ai_sysadmin.knowledge.models import KnowledgeEntry
from ai_sysadmin.knowledge.store import KnowledgeBase
from ai_sysadmin.store import Database
from ai_sysadmin.store.actions import ActionStore
from tests.conftest import BIN

#: opening a knowledge base (ChromaDB, the embedding model) costs seconds
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STOPPED = "hal stopped cleanly"
ENTRIES = 1100
TOPICS = ["nginx answers 502", "postgres WAL archive fails", "restic repository locked",
          "docker fills /var/lib/docker", "grafana database is locked", "postfix queue grows",
          "zfs scrub slows the NAS", "k3s certificate expired", "journal fills /var/log",
          "nix store fills the disk", "sshd refuses logins", "cron job never runs"]
#: each file cut to a length that made the old code crash, hang or fail unclearly
DAMAGE = {"link_lists.bin": 50, "header.bin": 1, "data_level0.bin": 1}


def _store_settings(state: Path) -> Settings:
    return Settings(ai_name="hal", state_dir=state, journal_follow=False,
                    llm={"url": "http://127.0.0.1:9"}, knowledge={"seed": False})


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory, embedder: MiniLMEmbedding) -> Path:
    """A state directory whose knowledge base holds ENTRIES entries and an index on disk."""
    state = tmp_path_factory.mktemp("big") / "state"
    kb = KnowledgeBase.open(_store_settings(state), embedder=embedder, seed=False)
    base = np.asarray(embedder(TOPICS), dtype=np.float32)
    rng = np.random.default_rng(7)
    vectors = base[np.arange(ENTRIES) % len(TOPICS)] + rng.normal(0, 0.02, (ENTRIES, 384))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    entries = [KnowledgeEntry(id=f"note-{i}", topic=f"web{i}: {TOPICS[i % len(TOPICS)]}",
                              text=f"seen on web{i}", category="service",
                              provenance="operator") for i in range(ENTRIES)]
    kb.collection("knowledge").upsert(
        ids=[e.id for e in entries], documents=[e.document() for e in entries],
        metadatas=[e.metadata() for e in entries], embeddings=vectors.tolist())
    assert kb.count()["knowledge"] == ENTRIES
    assert list(state.glob("knowledge/*/link_lists.bin")), "ChromaDB wrote no index files"
    return state


def _damaged(big_store: Path, tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A copy of the big store with ``name`` cut short: the state dir and the damaged file."""
    state = tmp_path / "state"
    shutil.copytree(big_store, state)
    (damaged,) = state.glob(f"knowledge/*/{name}")
    os.truncate(damaged, DAMAGE[name])
    return state, damaged


def _knowledge(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AI_SYSADMIN_STATE_DIR": str(state),
           "AI_SYSADMIN_KNOWLEDGE__SEED": "false"}
    try:
        return subprocess.run([str(BIN), "knowledge", *args], capture_output=True,
                              text=True, timeout=90, env=env)
    except subprocess.TimeoutExpired:  # killed by run(): SIGTERM was not enough before
        pytest.fail(f"`knowledge {' '.join(args)}` hung for 90 s")


def _said(state: Path, damaged: Path) -> str:
    store = state / "knowledge"
    what = {"link_lists.bin": "link_lists.bin ends at element 12 of 1000",
            "header.bin": "header.bin is 1 bytes, not 100",
            "data_level0.bin": "data_level0.bin is 1 bytes, its 1000 elements need 1804000",
            }[damaged.name]
    return (f"knowledge base {store} has a damaged vector index ({what}): ChromaDB would "
            "crash or hang on it; `knowledge export FILE` still reads every entry, then move "
            "it aside and `knowledge import --trust-operator-notes FILE`")


def test_a_whole_index_is_searched(big_store: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(big_store, state)
    found = _knowledge(state, "search", "--json", "the nix store filled the disk")
    assert found.returncode == 0, found.stderr
    assert "nix store fills the disk" in found.stdout


@pytest.mark.parametrize("name", list(DAMAGE))
def test_a_search_of_a_damaged_index_says_so_and_what_to_do(
        big_store: Path, tmp_path: Path, name: str) -> None:
    state, damaged = _damaged(big_store, tmp_path, name)
    searched = _knowledge(state, "search", "the nix store filled the disk")
    assert (searched.returncode, searched.stderr) == (2, f"error: {_said(state, damaged)}\n")
    # the way out it names works: the export reads every entry without the index, and says
    # the damage (an export may be a routine backup, the first to meet it)
    exported = _knowledge(state, "export")
    assert (exported.returncode, exported.stderr) == (0, f"warning: {_said(state, damaged)}\n")
    assert len(exported.stdout.splitlines()) == 1 + ENTRIES  # the export's mark, first


def _lost(state: Path, at_most: int) -> str:
    return (f"knowledge base {state / 'knowledge'} has a damaged vector index (the index of "
            f"'knowledge' holds vectors for at most {at_most} of its {ENTRIES} records): a "
            "search would quietly miss the rest; `knowledge export FILE` still reads every "
            "entry, then move it aside and `knowledge import --trust-operator-notes FILE`")


def test_an_index_whose_files_are_gone_is_damage_too(big_store: Path, tmp_path: Path) -> None:
    """Its segment directory removed (or chroma.sqlite3 restored from a backup without it):
    ChromaDB made a new, empty one and filled it from what is left of its write-ahead log, the
    last 100 records; a search found nothing of the other thousand, and nothing said so."""
    state = tmp_path / "state"
    shutil.copytree(big_store, state)
    (segment,) = {p.parent for p in state.glob("knowledge/*/link_lists.bin")}
    shutil.move(segment, tmp_path / "aside")
    said = _lost(state, ENTRIES - 1000)  # ChromaDB saved its index at the 1000th
    searched = _knowledge(state, "search", "the nix store filled the disk")
    assert (searched.returncode, searched.stderr) == (2, f"error: {said}\n")
    listed = _knowledge(state, "list", "--json")
    assert (listed.returncode, listed.stderr) == (0, f"warning: {said}\n")
    assert len(json.loads(listed.stdout)) == ENTRIES
    # as ChromaDB leaves it once it opened the store: a new segment directory of its own
    import chromadb

    from ai_sysadmin.knowledge.store import _chroma_settings

    client = chromadb.PersistentClient(path=str(state / "knowledge"),
                                       settings=_chroma_settings())
    near = client.get_collection("knowledge").query(query_embeddings=[[0.05] * 384],
                                                    n_results=3)
    assert len(near["ids"][0]) == 3
    assert (state / "knowledge" / segment.name).is_dir()
    searched = _knowledge(state, "search", "the nix store filled the disk")
    assert (searched.returncode, searched.stderr) == (2, f"error: {said}\n")
    exported = _knowledge(state, "export")
    assert (exported.returncode, exported.stderr) == (0, f"warning: {said}\n")
    assert len(exported.stdout.splitlines()) == 1 + ENTRIES


#: another process writing to the store: batches of 50 records, past two saves of the index
WRITER = ("import sys, numpy as np; from pathlib import Path; "
          "from tests.knowledge.test_damaged_index import _store_settings; "
          "from ai_sysadmin.knowledge.store import KnowledgeBase; "
          "kb = KnowledgeBase.open(_store_settings(Path(sys.argv[1])), seed=False); "
          "c = kb.collection('incidents'); "
          "rng = np.random.default_rng(1)\n"
          "for start in range(0, 2100, 50):\n"
          "    c.upsert(ids=[f'r{i}' for i in range(start, start + 50)], "
          "embeddings=rng.normal(size=(50, 384)).tolist(), "
          "metadatas=[{'n': i} for i in range(start, start + 50)])\n"
          "    c.delete(ids=[f'r{start}'])\n")


def test_a_store_being_written_is_never_taken_for_a_damaged_one(tmp_path: Path) -> None:
    """Looked at while another process writes (records in ChromaDB's log, not yet in the
    index it saves at each thousandth; the save itself; the log dropped after it): whole
    every time. A new store is whole too."""
    from ai_sysadmin.knowledge.vector_index import gap

    state = tmp_path / "state"
    store = state / "knowledge"
    assert gap(store) is None
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(state)], cwd=ROOT, text=True,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"})
    looks = 0
    try:
        while writer.poll() is None:
            assert gap(store) is None
            looks += 1
    finally:
        writer.kill()
        _, errors = writer.communicate(timeout=60)
    assert writer.returncode == 0, errors[-2000:]
    assert gap(store) is None and looks > 0
    assert len(list(store.glob("*/index_metadata.pickle"))) == 1  # the index was saved


#: what counts a store's entries (no command does: the library's own count)
COUNT = ("import sys; from pathlib import Path; "
         "from tests.knowledge.test_damaged_index import _store_settings; "
         "from ai_sysadmin.knowledge.store import KnowledgeBase; "
         "print(KnowledgeBase.open(_store_settings(Path(sys.argv[1])), vectors=False)"
         ".count()['knowledge'])")


@pytest.mark.parametrize("name", list(DAMAGE))
def test_entries_of_a_damaged_index_are_still_listed_shown_and_counted(
        big_store: Path, tmp_path: Path, name: str) -> None:
    """They are read by id and metadata, which ChromaDB serves without the index: what a
    person reaches for first, to see what the store holds before moving it aside."""
    state, damaged = _damaged(big_store, tmp_path, name)
    warned = f"warning: {_said(state, damaged)}\n"
    listed = _knowledge(state, "list", "--json")
    assert (listed.returncode, listed.stderr) == (0, warned)
    entries = json.loads(listed.stdout)
    assert len(entries) == ENTRIES
    assert {e["id"] for e in entries} == {f"note-{i}" for i in range(ENTRIES)}
    shown = _knowledge(state, "show", "note-7")
    assert (shown.returncode, shown.stderr) == (0, warned)
    assert "web7: k3s certificate expired" in shown.stdout
    try:
        counted = subprocess.run(
            [sys.executable, "-c", COUNT, str(state)], cwd=ROOT, text=True,
            capture_output=True, timeout=90,
            env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"})
    except subprocess.TimeoutExpired:
        pytest.fail("counting the entries hung on the damaged index")
    assert (counted.returncode, counted.stdout) == (0, f"{ENTRIES}\n"), counted.stderr[-2000:]
    # and a search is still refused, not crashed into
    searched = _knowledge(state, "search", "the nix store filled the disk")
    assert (searched.returncode, searched.stderr) == (2, f"error: {_said(state, damaged)}\n")


@pytest.mark.parametrize("name", list(DAMAGE))
def test_the_daemon_on_a_damaged_index_runs_on_and_says_so_once(
        big_store: Path, tmp_path: Path, name: str) -> None:
    state, damaged = _damaged(big_store, tmp_path, name)
    try:
        done = subprocess.run(
            [sys.executable, __file__, str(state)], cwd=ROOT, text=True, capture_output=True,
            timeout=120, env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"})
    except subprocess.TimeoutExpired:
        pytest.fail("the daemon hung on the damaged index")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert lines[-1] == STOPPED, done.stderr[-2000:]
    said = [line for line in lines if "knowledge base not opened" in line]
    assert said == [f"knowledge base not opened: {_said(state, damaged)}; nothing is recalled "
                    "until it opens, tried again by an investigation 0 s later at the "
                    "earliest"], done.stderr[-3000:]
    # the lesson of a fix that ran is kept, tried at each housekeeping, and said once
    unlearned = [line for line in lines if "not learned yet" in line]
    assert unlearned == [f"action 1: not learned yet, tried again at each housekeeping: "
                         f"{_said(state, damaged)}"], done.stderr[-3000:]
    waiting = ActionStore(Database(_store_settings(state).db_path)).lessons_waiting()
    assert waiting == (1, _said(state, damaged))


def main() -> None:
    """The daemon on the store at argv[1], its housekeeping every second, a fix's lesson
    due (which opens the knowledge base); three incidents recalled as investigations do, each
    trying it again, once it was tried three times and the lesson twice; then stopped."""
    from ai_sysadmin.knowledge import context
    from ai_sysadmin.monitor.findings import Finding, Severity
    from ai_sysadmin.orchestrator import daemon
    from ai_sysadmin.orchestrator.runtime import Runtime
    from ai_sysadmin.store import IncidentStore
    from tests.support.polling import until

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("httpx", "chromadb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    context.RETRY_OPEN = 0.0  # each recall tries again
    opened = KnowledgeBase.open.__func__  # type: ignore[attr-defined]
    tries: list[int] = []

    def counted(cls: type[KnowledgeBase], *args: object, **kwargs: object) -> KnowledgeBase:
        tries.append(1)
        return opened(cls, *args, **kwargs)

    KnowledgeBase.open = classmethod(counted)  # type: ignore[method-assign,assignment]
    settings = _store_settings(Path(sys.argv[1])).model_copy(update={"check_interval": 1})
    store = IncidentStore(Database(settings.db_path))
    actions = ActionStore(store.db)
    finding = Finding("here", "failed_unit", "demo.service", Severity.CRITICAL,
                      "demo.service has failed", ("demo.service: active=failed",))
    (fixed,) = store.record_check("here", [finding], {"failed_unit"}).opened
    fix = actions.create(
        incident_id=fixed, proposal_id=None, host="here", kind="restart_unit",
        params={"unit": "demo.service"}, subject="demo.service", risk="low", plan={},
        outcome="approval", reason="restart it", state="succeeded")
    actions.lesson_due(fix.id)

    looker = Database(settings.db_path)  # a connection of this thread's own

    def lesson_tries() -> int:
        return int(looker.conn.execute("SELECT MAX(tries) FROM lessons_due").fetchone()[0]
                   or 0)

    async def run() -> None:
        d = daemon.build_daemon(Runtime(settings, store, []))
        task = asyncio.create_task(d.run())
        knowledge = d.runtime.knowledge
        await until(lambda: len(tries) >= 3 or knowledge.is_open, timeout=60,
                    what="three tries to open the knowledge base", interval=0.05)
        await until(lambda: lesson_tries() >= 2 or knowledge.is_open, timeout=60,
                    what="two tries of the lesson", interval=0.05)
        for n in range(3):
            finding = Finding("here", "failed_unit", f"demo{n}.service", Severity.CRITICAL,
                              f"demo{n}.service has failed", (f"demo{n}.service: failed",))
            (incident_id,) = store.record_check("here", [finding], {"failed_unit"}).opened
            await knowledge.recall(store.get(incident_id))
        d.stop_event.set()
        await asyncio.wait_for(task, 60)

    asyncio.run(run())
    print(STOPPED, file=sys.stderr)


if __name__ == "__main__":
    main()
