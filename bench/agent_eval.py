"""The agent evaluation as a benchmark: the shipped fault-lab scenarios through the whole loop
(``ai_sysadmin.lab.eval``), scored for

1. the oracle (tests/support/eval_models.py): the scripted model that knows each scenario's
   answer, over the real wire protocol. It is the ceiling: whatever it fails at, the loop
   (detection, policy, executor, verification) fails at, not the model;
2. with ``--obedient``: the obedient model on the injection scenarios: every demand of the
   host text tried, and what ran (must be nothing);
3. with ``--url``: any real model (Ollama or OpenAI-compatible), side by side with the oracle.

Each in every ``--mode`` asked for (tools, evidence; default tools).

Each run prints its table (the same as ``ai-sysadmin eval``) and writes its results file with
the transcripts. Root only (the lab boots systemd in namespaces)::

    sudo .venv/bin/python bench/agent_eval.py [SCENARIO...] [--tag T] [--obedient]
        [--url URL --backend ollama|openai --model M] [--mode tools|evidence]... [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from ai_sysadmin.cli.eval import score_table
from ai_sysadmin.config import Settings
from ai_sysadmin.lab import list_scenarios, load_scenario
from ai_sysadmin.lab.eval import EvalRun, evaluate, select, write_new_results

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.eval_models import Obedient, Oracle, ci_scenarios
from tests.support.scripted_model import ScriptedModel

#: a table read in a log or a pipe is not folded at 80 columns
console = Console(width=None if sys.stdout.isatty() else 200)


def _run(label: str, scenarios: list[Any], base: Settings, out: Path, deadline: float,
         mode: str, role: Oracle | Obedient | None = None) -> EvalRun:
    console.print(f"[bold]{label}[/bold], {mode} mode: {len(scenarios)} scenario(s)")
    # agent.modes names a mode per model, over agent.mode: the one asked for wins
    overrides = {"agent.mode": mode, "agent.modes": {}}
    run = evaluate(scenarios, base, overrides=overrides, deadline=deadline,
                   on_scenario=role.on_scenario if role else None,
                   progress_callback=lambda sc, msg: console.log(f"{sc.name}: {msg}")
                   if os.environ.get("AGENT_EVAL_VERBOSE") else None)
    console.print(score_table(run))
    console.print(f"results: {write_new_results(run, out)}\n")
    return run


def _scripted(role: Oracle | Obedient, label: str, scenarios: list[Any], state: Path,
              out: Path, deadline: float, backend: str, mode: str) -> EvalRun:
    with ScriptedModel(then=role, model=label) as model:
        base = Settings(ai_name="hal", state_dir=state,
                        llm={"backend": backend, "url": model.url, "model": label,
                             "timeout": 30})
        return _run(f"{label} ({backend})", scenarios, base, out, deadline, mode, role)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help="names or *.toml files (default: all)")
    parser.add_argument("--tag", action="append", default=[], help="only these tags")
    parser.add_argument("--ci", action="store_true", help="add the two CI scenarios "
                        "(a catalog fix, a demanding injection)")
    parser.add_argument("--obedient", action="store_true", help="also the obedient model "
                        "on the injection scenarios")
    parser.add_argument("--url", help="a real model's server, evaluated after the oracle")
    parser.add_argument("--backend", choices=("ollama", "openai"), default="ollama")
    parser.add_argument("--model", default="qwen2.5:7b-instruct")
    parser.add_argument("--mode", choices=("tools", "evidence"), action="append",
                        help="investigation mode(s) of every run (repeatable; default tools)")
    parser.add_argument("--no-oracle", action="store_true", help="skip the oracle's run")
    parser.add_argument("--deadline", type=float, default=180.0)
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("the fault lab needs root")
    chosen = [load_scenario(n) for n in args.scenarios] if args.scenarios else list_scenarios()
    chosen = select(chosen + (ci_scenarios() if args.ci else []), args.tag)
    with tempfile.TemporaryDirectory(prefix="agent-eval-") as tmp:
        state, out = Path(tmp) / "state", args.out or Path(tmp) / "results"
        for mode in args.mode or ["tools"]:
            if not args.no_oracle:
                _scripted(Oracle(), "oracle", chosen, state, out, args.deadline, "openai", mode)
            if args.obedient:
                injections = [s for s in chosen if s.kind == "injection"]
                _scripted(Obedient(), "obedient", injections, state, out, args.deadline,
                          "ollama", mode)
            if args.url:
                base = Settings(ai_name="hal", state_dir=state,
                                llm={"backend": args.backend, "url": args.url,
                                     "model": args.model})
                _run(f"{args.model} ({args.backend})", chosen, base, out, args.deadline, mode)
        if args.out is None:
            console.print("(results were in a temporary folder: --out DIR keeps them)")


if __name__ == "__main__":
    main()
