"""What the LLM backends cost a command: import, ``--help``, one ``ask``, one completion.

Every number is the median of several fresh runs on this machine, printed beside its baseline
from the same run:

1. import of ``ai_sysadmin.llm.backends`` in a fresh interpreter, against the import of
   ``httpx`` alone (the HTTP floor any backend needs) and, when they are installed, of the
   ``ollama`` and ``openai`` clients (what the backends cost while they were built on them);
2. ``ai-sysadmin --help`` and ``python -c pass`` (the interpreter's own start);
3. one ``ai-sysadmin ask --json`` against the scripted model (tests/support/scripted_model.py)
   on 127.0.0.1, answered without tools: the whole process, start to answer;
4. one ``backend.chat`` in a warm process, per backend, against a bare ``httpx`` POST of the
   same request body to the same server (the wire floor).

    .venv/bin/python bench/llm_backend.py [--runs 5]

Target (issue 11): ``--help`` under 0.25 s.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from ai_sysadmin.config import LLMSettings
from ai_sysadmin.llm.backends import make_backend
from ai_sysadmin.llm.types import Message

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.scripted_model import ScriptedModel, say

PYTHON = sys.executable
BIN = Path(PYTHON).parent / "ai-sysadmin"
BACKEND_MODULES = "ai_sysadmin.llm.backends.ollama, ai_sysadmin.llm.backends.openai_compat"
QUESTION = (Message("system", "You are hal."), Message("user", "Is nginx up?"))


def median_seconds(run: Callable[[], float | None], runs: int) -> float:
    """Median over ``runs`` of what ``run`` reports (or of its wall time when it reports
    nothing), after one unmeasured warm-up run that fills the page cache."""
    run()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        reported = run()
        samples.append(time.perf_counter() - started if reported is None else reported)
    return statistics.median(samples)


def import_seconds(modules: str) -> Callable[[], float]:
    """The import of ``modules`` alone, timed inside a fresh interpreter."""
    code = (f"import time; t = time.perf_counter(); import {modules}; "
            "print(time.perf_counter() - t)")

    def run() -> float:
        done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True)
        return float(done.stdout)

    return run


def process(argv: list[str], env: dict[str, str] | None = None) -> Callable[[], None]:
    def run() -> None:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")

    return run


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:7.1f} ms"


def installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def bench_imports(runs: int) -> None:
    print("1. import, in a fresh interpreter")
    floor = median_seconds(import_seconds("httpx"), runs)
    package = median_seconds(import_seconds("ai_sysadmin.llm.backends"), runs)
    modules = median_seconds(import_seconds(BACKEND_MODULES), runs)
    print(f"   httpx (baseline)                 {ms(floor)}")
    print(f"   ai_sysadmin.llm.backends         {ms(package)} = {package / floor:.2f}x httpx "
          "(what a command imports at start)")
    print(f"   + both backend modules           {ms(modules)} = {modules / floor:.2f}x httpx "
          "(what the first completion adds)")
    if installed("ollama", "openai"):
        clients = median_seconds(import_seconds("httpx, ollama, openai"), runs)
        print(f"   httpx + ollama + openai clients  {ms(clients)} = {clients / floor:.2f}x httpx;"
              f" the backend modules take {modules / clients:.2f}x of it")
    else:
        print("   (the ollama and openai clients are not installed: their row is left out)")


def bench_help(runs: int) -> None:
    print("\n2. start of a command")
    bare = median_seconds(process([PYTHON, "-c", "pass"]), runs)
    helped = median_seconds(process([str(BIN), "--help"]), runs)
    print(f"   python -c pass (baseline)        {ms(bare)}")
    print(f"   ai-sysadmin --help               {ms(helped)} = {helped / bare:.1f}x "
          f"(target 250 ms)")


def bench_ask(runs: int, model: ScriptedModel, state: Path) -> None:
    config = state / "config.toml"
    config.write_text('ai_name = "hal"\n')
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
           "AI_SYSADMIN_STATE_DIR": str(state / "state"),
           "AI_SYSADMIN_LLM__BACKEND": "openai", "AI_SYSADMIN_LLM__URL": model.url,
           "AI_SYSADMIN_LLM__MODEL": "scripted", "AI_SYSADMIN_LLM__TIMEOUT": "30"}
    model.add(*[say("nginx is up.")] * (runs + 1))
    helped = median_seconds(process([str(BIN), "--help"], env), runs)
    asked = median_seconds(process([str(BIN), "ask", "--json", "Is nginx up?"], env), runs)
    print("\n3. one `ask` against the scripted model (OpenAI protocol), no tools, whole process")
    print(f"   ai-sysadmin --help (baseline)    {ms(helped)}")
    print(f"   ai-sysadmin ask --json           {ms(asked)} = {asked / helped:.1f}x --help")


async def chat_seconds(settings: LLMSettings, count: int) -> float:
    backend = make_backend(settings)
    try:
        await backend.chat(QUESTION)  # warm: connection open, code loaded
        started = time.perf_counter()
        for _ in range(count):
            await backend.chat(QUESTION)
        return (time.perf_counter() - started) / count
    finally:
        await backend.aclose()


async def bare_seconds(url: str, body: dict[str, object], count: int) -> float:
    async with httpx.AsyncClient(timeout=30) as client:
        (await client.post(url, json=body)).raise_for_status()
        started = time.perf_counter()
        for _ in range(count):
            json.loads((await client.post(url, json=body)).content)
        return (time.perf_counter() - started) / count


def bench_chat(count: int, model: ScriptedModel) -> None:
    print(f"\n4. one completion in a warm process, mean of {count}, scripted model")
    messages = [{"role": m.role, "content": m.content} for m in QUESTION]
    for name, path, body in (
        ("ollama", "/api/chat", {"model": "scripted", "messages": messages, "stream": False}),
        ("openai", "/v1/chat/completions", {"model": "scripted", "messages": messages}),
    ):
        model.add(*[say("nginx is up.")] * (2 * count + 2))
        floor = asyncio.run(bare_seconds(model.url + path, body, count))
        settings = LLMSettings(backend=name, url=model.url, model="scripted", timeout=30)
        chat = asyncio.run(chat_seconds(settings, count))
        print(f"   {name:<6} bare httpx POST (baseline) {ms(floor)}")
        print(f"   {name:<6} backend.chat             {ms(chat)} = {chat / floor:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per row")
    parser.add_argument("--calls", type=int, default=200, help="completions per backend row")
    args = parser.parse_args()
    bench_imports(args.runs)
    bench_help(args.runs)
    with tempfile.TemporaryDirectory(prefix="llm-bench-") as tmp, ScriptedModel() as model:
        bench_ask(args.runs, model, Path(tmp))
        bench_chat(args.calls, model)


if __name__ == "__main__":
    main()
