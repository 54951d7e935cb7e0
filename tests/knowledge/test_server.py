"""A real ``chroma run`` server on 127.0.0.1 with token auth on: the right token works and
what it stores is on the server; a wrong or missing token, a stopped server, a server that
never answers and one that hangs once opened are each one clear sentence, quickly, and the
token is never in it."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import KnowledgeError
from ai_sysadmin.knowledge import store
from ai_sysadmin.knowledge.embeddings import MiniLMEmbedding
from ai_sysadmin.knowledge.models import IncidentRecord, KnowledgeEntry
from ai_sysadmin.knowledge.store import KnowledgeBase
from ai_sysadmin.knowledge.telemetry_off import DOTTED

pytestmark = pytest.mark.slow

CHROMA = Path(sys.executable).parent / "chroma"
TOKEN = "s3cr3t-token-for-the-test"


def _free_port(host: str = "127.0.0.1", family: socket.AddressFamily = socket.AF_INET) -> int:
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _wait_up(url: str, process: subprocess.Popen[bytes], log: Path, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"chroma run exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"chroma run did not answer within {deadline_s} s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def _chroma_run(root: Path, host: str, token_file: Path | None = None
                ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """(url, process) of a ChromaDB server listening on ``host``, with its own directory
    under ``root``; token-protected with ``token_file``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    port = _free_port(host, family)
    log = root / "server.out"
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False",
           "CHROMA_PRODUCT_TELEMETRY_IMPL": DOTTED}
    if token_file is not None:
        env |= {"CHROMA_SERVER_AUTHN_PROVIDER":
                "chromadb.auth.token_authn.TokenAuthenticationServerProvider",
                "CHROMA_SERVER_AUTHN_CREDENTIALS_FILE": str(token_file)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(root / "data"), "--host", host,
             "--port", str(port), "--log-path", str(root / "chroma.log")],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://[{host}]:{port}" if family == socket.AF_INET6 else f"http://{host}:{port}"
    try:
        _wait_up(url, process, log, 120)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """(url, token file, process) of a token-protected ChromaDB server with its own
    directory."""
    root = tmp_path_factory.mktemp("chroma-server")
    token_file = root / "token"
    # chromadb 0.6's server takes the file's line as it is: no trailing newline
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    with _chroma_run(root, "127.0.0.1", token_file) as (url, process):
        yield url, token_file, process


@pytest.fixture
def server(chroma: tuple[str, Path, subprocess.Popen[bytes]]) -> tuple[str, Path]:
    """(url, token file) of the module's server."""
    return chroma[0], chroma[1]


def _settings(tmp_path: Path, url: str, token_file: Path | None, timeout: float = 10
              ) -> Settings:
    return Settings(state_dir=tmp_path / "state",
                    knowledge={"url": url, "token_file": token_file, "timeout": timeout})


def test_the_right_token_stores_and_finds_on_the_server(
        server: tuple[str, Path], tmp_path: Path, embedder: MiniLMEmbedding) -> None:
    url, token_file = server
    kb = KnowledgeBase.open(_settings(tmp_path, url, token_file), embedder=embedder,
                            seed=False)
    entry = KnowledgeEntry(id="op-server-1", topic="postgres on db1",
                           text="db1's postgres needs its WAL archive mounted first")
    kb.add(entry)
    kb.record_incident(IncidentRecord(id="incident:5", host="db1", rule="unit-failed",
                                      subject="postgresql.service",
                                      symptoms="postgresql failed: archive dir missing",
                                      outcome="verified"))
    # a second client (another worker) sees it: the data lives on the server
    other = KnowledgeBase.open(_settings(tmp_path, url, token_file), embedder=embedder,
                               seed=False)
    assert other.get("op-server-1") == entry
    assert other.search("database write-ahead log archive", n=1)[0].item.id == "op-server-1"
    assert other.similar_incidents("postgresql.service will not start")[0].item.id == \
        "incident:5"
    assert not (tmp_path / "state" / "knowledge").exists()


def test_a_server_at_an_ipv6_address_stores_and_finds(
        tmp_path: Path, embedder: MiniLMEmbedding) -> None:
    """knowledge.url = "http://[::1]:PORT" is accepted by the config: it must reach the
    server, not fail on a URL without the address's brackets."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    (tmp_path / "server").mkdir()
    with _chroma_run(tmp_path / "server", "::1") as (url, _process):
        kb = KnowledgeBase.open(_settings(tmp_path, url, None), embedder=embedder, seed=False)
        entry = KnowledgeEntry(id="op-v6-1", topic="nginx on web1",
                               text="web1's nginx listens on the IPv6 loopback too")
        kb.add(entry)
        again = KnowledgeBase.open(_settings(tmp_path, url, None), embedder=embedder,
                                   seed=False)
        assert again.get("op-v6-1") == entry


def test_a_wrong_or_missing_token_is_refused_clearly(
        server: tuple[str, Path], tmp_path: Path, embedder: MiniLMEmbedding) -> None:
    url, _ = server
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token")
    with pytest.raises(KnowledgeError) as refused:
        KnowledgeBase.open(_settings(tmp_path, url, wrong), embedder=embedder, seed=False)
    assert str(refused.value) == f"ChromaDB server {url} refused the token in " \
        "knowledge.token_file"
    with pytest.raises(KnowledgeError, match="requires a token: set knowledge.token_file"):
        KnowledgeBase.open(_settings(tmp_path, url, None), embedder=embedder, seed=False)
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    with pytest.raises(KnowledgeError, match=r"knowledge.token_file .*: empty"):
        KnowledgeBase.open(_settings(tmp_path, url, empty), embedder=embedder, seed=False)
    # the token and a comment: in a header, the HTTP library's error would quote them
    commented = tmp_path / "commented-token"
    commented.write_text(f"{TOKEN}\n# the chroma server's token\n")
    with pytest.raises(KnowledgeError) as refused:
        KnowledgeBase.open(_settings(tmp_path, url, commented), embedder=embedder, seed=False)
    assert "a second line or a space" in str(refused.value)
    assert TOKEN not in str(refused.value)


def test_a_stopped_server_is_a_clear_error_not_a_hang(
        tmp_path: Path, embedder: MiniLMEmbedding) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    url = f"http://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(KnowledgeError) as down:
        KnowledgeBase.open(_settings(tmp_path, url, token), embedder=embedder, seed=False)
    assert time.monotonic() - started < 5
    assert f"ChromaDB server {url} cannot be reached" in str(down.value)
    assert "chroma run" in str(down.value) and TOKEN not in str(down.value)


def test_a_server_that_never_answers_times_out(tmp_path: Path,
                                               embedder: MiniLMEmbedding) -> None:
    """A listener that accepts and says nothing (a hung server) costs knowledge.timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    started = time.monotonic()
    try:
        with pytest.raises(KnowledgeError, match="did not answer within 1 s"):
            KnowledgeBase.open(_settings(tmp_path, url, None, timeout=1), embedder=embedder,
                               seed=False)
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_a_server_that_hangs_once_opened_costs_a_caller_its_timeout_then_nothing(
        chroma: tuple[str, Path, subprocess.Popen[bytes]], tmp_path: Path,
        embedder: MiniLMEmbedding, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stopped ``chroma run`` (SIGSTOP: connections are accepted, nothing is answered) costs
    the first caller knowledge.timeout and every later one nothing for a minute, rather than
    holding each forever (a daemon would run out of worker threads); then a call tries again,
    with at most three left waiting (for half an hour); once the server runs again, so does
    the base, and what was asked of it before is there."""
    url, token_file, process = chroma
    kb = KnowledgeBase.open(_settings(tmp_path, url, token_file, timeout=2), embedder=embedder,
                            seed=False)
    entry = KnowledgeEntry(id="op-hang-1", topic="backups on db2",
                           text="db2's backup job needs the NFS share mounted")
    kb.add(entry)
    os.kill(process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(KnowledgeError) as hung:
            kb.search("nightly backup fails")
        assert 2 <= time.monotonic() - started < 5
        assert str(hung.value) == f"ChromaDB server {url} did not answer within 2 s"
        started = time.monotonic()
        with pytest.raises(KnowledgeError, match=f"ChromaDB server {url} has not answered a "
                           r"request it was sent \d+ s ago \(knowledge.timeout is 2 s\)"
                           ) as waiting:
            kb.record_incident(IncidentRecord(id="incident:9", host="db2", rule="unit-failed",
                                              subject="backup.service", symptoms="NFS gone",
                                              outcome="verified"))
        # its text embedded here, on a busy machine too: well under the 2 s a wait costs
        assert time.monotonic() - started < 1.5
        assert TOKEN not in str(hung.value) + str(waiting.value)
        # past the wait (here none) another call tries the server, up to three unanswered
        monkeypatch.setattr(store, "_RETRY_AFTER", 0.0)
        for _ in range(2):
            with pytest.raises(KnowledgeError, match="did not answer within 2 s"):
                kb.get("op-hang-1")
        started = time.monotonic()
        with pytest.raises(KnowledgeError, match="has not answered"):
            kb.get("op-hang-1")
        assert time.monotonic() - started < 0.5
        # calls that waited long enough count no more: three lost connections (a server
        # that rebooted) do not turn knowledge off until a restart
        monkeypatch.setattr(store, "_ABANDON_AFTER", 0.0)
        with pytest.raises(KnowledgeError, match="did not answer within 2 s"):
            kb.get("op-hang-1")
    finally:
        os.kill(process.pid, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while True:
        try:
            assert kb.get("op-hang-1") == entry
            break
        except KnowledgeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert kb.search("nightly backup fails", n=1)[0].item.id == "op-hang-1"


def test_a_server_that_hangs_after_its_heartbeat_is_a_timeout_when_opened(
        tmp_path: Path, embedder: MiniLMEmbedding) -> None:
    """Making chromadb's client asks the server more than its heartbeat (tenant, database):
    a server that answers the heartbeat and nothing else (its database stuck) costs
    knowledge.timeout, not a hang."""
    release = threading.Event()

    class HeartbeatOnly(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/api/v2/heartbeat":
                body = b'{"nanosecond heartbeat": 1}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            release.wait(30)  # hung: answers nothing until the test ends

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), HeartbeatOnly)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        started = time.monotonic()
        with pytest.raises(KnowledgeError) as hung:
            KnowledgeBase.open(_settings(tmp_path, url, None, timeout=1), embedder=embedder,
                               seed=False)
        assert time.monotonic() - started < 5
        assert str(hung.value) == f"ChromaDB server {url} did not answer within 1 s"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_the_cli_says_what_is_wrong_with_the_server(
        server: tuple[str, Path], tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    url, token_file = server
    monkeypatch.setenv("AI_SYSADMIN_KNOWLEDGE__URL", url)
    monkeypatch.setenv("AI_SYSADMIN_KNOWLEDGE__SEED", "false")
    monkeypatch.setenv("AI_SYSADMIN_KNOWLEDGE__TOKEN_FILE", str(token_file))
    code, out, err = cli("knowledge", "add", "--topic", "via the server", "--text", "stored "
                         "on the ChromaDB server", "--json")
    assert code == 0, err
    code, out, _ = cli("knowledge", "show", json.loads(out)["id"])
    assert code == 0 and "stored on the ChromaDB server" in out
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    wrong.chmod(0o600)  # one every user may read is warned of before
    monkeypatch.setenv("AI_SYSADMIN_KNOWLEDGE__TOKEN_FILE", str(wrong))
    code, out, err = cli("knowledge", "list")
    assert code == 2 and out == ""
    assert err.strip() == f"error: ChromaDB server {url} refused the token in " \
        "knowledge.token_file"


def test_a_token_file_every_user_can_read_is_warned_of_and_used(
        server: tuple[str, Path], tmp_path: Path, embedder: MiniLMEmbedding,
        caplog: pytest.LogCaptureFixture) -> None:
    # the LLM's key file and the notification channels' were warned of; this one was not
    url, token_file = server
    readable = tmp_path / "token"
    readable.write_text(token_file.read_text())
    readable.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="ai_sysadmin"):
        kb = KnowledgeBase.open(_settings(tmp_path, url, readable), embedder=embedder,
                                seed=False)
    assert isinstance(kb.search("postgres", n=1), list)  # used: said, not refused
    said = [r for r in caplog.records if getattr(r, "event", None) == "credential_readable"]
    assert [r.getMessage() for r in said] == [
        f"knowledge.token_file ({readable}) is readable by every user: chmod o-r it"]
    assert TOKEN not in caplog.text
