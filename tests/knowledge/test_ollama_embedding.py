"""``knowledge.embedding = "ollama:<model>"``: texts go to Ollama's ``/api/embed`` over real
HTTP (a stand-in server on 127.0.0.1 that embeds by words), and a server that is down or
answers nonsense is a clear error."""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import EmbeddingError, KnowledgeError
from ai_sysadmin.knowledge.embeddings import OllamaEmbedding, embedding_for
from ai_sysadmin.knowledge.models import KnowledgeEntry
from ai_sysadmin.knowledge.store import KnowledgeBase

DIMS = 64


def _vector(text: str) -> list[float]:
    """Words hashed into 64 buckets, L2-normalised: texts sharing words are close."""
    vector = [0.0] * DIMS
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIMS] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class _Ollama(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]]
    broken = False

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        path, _, query = self.path.partition("?")
        self.requests.append({"path": path, "query": query, **body})
        if path != "/api/embed":
            self.send_error(404)
            return
        reply = b'{"oops": 1}' if self.broken else json.dumps(
            {"model": body["model"], "embeddings": [_vector(t) for t in body["input"]]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def ollama() -> Iterator[tuple[str, type[_Ollama]]]:
    handler = type("Handler", (_Ollama,), {"requests": [], "broken": False})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _settings(tmp_path: Path, url: str) -> Settings:
    return Settings(state_dir=tmp_path / "state", llm={"url": "http://127.0.0.1:9"},
                    knowledge={"embedding": "ollama:nomic-embed-text", "ollama_url": url})


def test_an_ollama_model_embeds_what_is_stored_and_asked(
        tmp_path: Path, ollama: tuple[str, type[_Ollama]]) -> None:
    url, handler = ollama
    settings = _settings(tmp_path, url)
    assert isinstance(embedding_for(settings), OllamaEmbedding)
    kb = KnowledgeBase.open(settings, seed=False)
    kb.add_many([KnowledgeEntry(id="a", topic="nginx port", text="nginx port 80 in use"),
                 KnowledgeEntry(id="b", topic="journal", text="vacuum the journal")])
    assert kb.search("who holds port 80 for nginx", n=1, max_distance=2)[0].item.id == "a"
    assert {r["model"] for r in handler.requests} == {"nomic-embed-text"}
    assert {r["path"] for r in handler.requests} == {"/api/embed"}
    assert ["who holds port 80 for nginx"] in [r["input"] for r in handler.requests]


def test_ollama_down_or_confused_is_a_clear_error(
        tmp_path: Path, ollama: tuple[str, type[_Ollama]]) -> None:
    url, handler = ollama
    kb = KnowledgeBase.open(_settings(tmp_path, url), seed=False)
    handler.broken = True
    with pytest.raises(EmbeddingError, match=f"Ollama at {url} answered no embeddings"):
        kb.add(KnowledgeEntry(topic="x", text="y"))
    down = OllamaEmbedding("http://127.0.0.1:9", "nomic-embed-text", timeout=2)
    with pytest.raises(EmbeddingError, match="Ollama at http://127.0.0.1:9 cannot embed"):
        down(["anything"])
    assert kb.count()["knowledge"] == 0


def test_a_store_keeps_its_model(tmp_path: Path, ollama: tuple[str, type[_Ollama]]) -> None:
    url, _ = ollama
    KnowledgeBase.open(_settings(tmp_path, url), seed=False)
    with pytest.raises(KnowledgeError, match="made with the embedding 'ollama:nomic-embed-text'"
                       ".*export with the old setting"):
        KnowledgeBase.open(Settings(state_dir=tmp_path / "state"), seed=False)


def test_an_embedding_error_names_llm_url_without_its_secrets() -> None:
    """``knowledge.ollama_url`` defaults to ``llm.url``: a password or key in it stays out of
    the error, which the daemon logs."""
    down = OllamaEmbedding("http://bot:PWSECRET@127.0.0.1:9/?key=QSECRET", "nomic-embed-text",
                           timeout=2)
    with pytest.raises(EmbeddingError) as failed:
        down(["anything"])
    said = str(failed.value)
    assert said.startswith("Ollama at http://bot:****@127.0.0.1:9/?key=**** cannot embed")
    assert "PWSECRET" not in said and "QSECRET" not in said


def test_a_key_in_the_urls_query_goes_with_each_request(
        ollama: tuple[str, type[_Ollama]]) -> None:
    """A proxy that takes its key in the query (``llm.url = "https://gw/?key=..."``): the key
    is sent as the query of ``/api/embed``, not glued in front of the path."""
    url, handler = ollama
    vectors = OllamaEmbedding(f"{url}/?key=QSECRET", "nomic-embed-text", timeout=5)(["disk"])
    assert len(vectors) == 1
    assert [(r["path"], r["query"]) for r in handler.requests] == [("/api/embed", "key=QSECRET")]
