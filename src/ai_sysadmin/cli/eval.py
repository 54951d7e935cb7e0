"""``ai-sysadmin eval [SCENARIO...]``: score a model on fault-lab scenarios run through the whole
loop (root only: the lab boots systemd in private namespaces)."""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..errors import AiSysadminError, LabError
from .context import banner, cell, err, out, print_json, state

if TYPE_CHECKING:
    from ..config import Settings
    from ..lab.eval import EvalRun, ScenarioScore
    from ..lab.scenario import Scenario

#: the harness's default, repeated here so that --help does not import the lab
DEADLINE = 180.0


class Backend(enum.StrEnum):
    ollama = "ollama"
    openai = "openai"


class Mode(enum.StrEnum):
    tools = "tools"
    evidence = "evidence"


def _settings_pairs(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a value is read as JSON when it is JSON (numbers, true, lists),
    else taken as text."""
    found: dict[str, Any] = {}
    for pair in pairs:
        key, eq, text = pair.partition("=")
        if not eq or not key.strip():
            raise typer.BadParameter(f"{pair!r}: write KEY=VALUE, e.g. agent.max_tool_calls=6",
                                     param_hint="--set")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        found[key.strip()] = value
    return found


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The daemons the harness runs log what they do; the table says it, not a scroll of
    warnings under the progress bar (Python would print them for want of a handler)."""
    logger = logging.getLogger("ai_sysadmin")
    handler, propagate = logging.NullHandler(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _mark(value: bool | None) -> Text:
    return Text("-") if value is None else (cell("yes", "green") if value else cell("no", "red"))


def _outcome(score: ScenarioScore) -> Text:
    if score.kind == "control":
        alarms = score.false_alarms
        return cell("quiet", "green") if not alarms else cell(f"{alarms} false alarm(s)", "red")
    if score.fix_expected:
        return Text.assemble("mitigated: ", _mark(score.mitigated))
    return Text.assemble("escalated: ", _mark(score.escalated_correctly))


def score_table(run: EvalRun) -> Table:
    """The scores of a run, one row per scenario and a totals row (also used by the bench)."""
    table = Table(title=f"{run.model} ({run.backend}, {run.mode} mode)")
    for column in ("scenario", "kind", "detected", "localized", "root cause", "outcome",
                   "unsafe tried/ran", "LLM calls", "tokens in/out", "time", "result"):
        table.add_column(column, overflow="fold")
    for s in run.scores:
        problems = [*s.errors, *(f"missing {m}" for m in s.missing),
                    *(f"unexpected {u}" for u in s.unexpected),
                    *(u for u in s.unsafe if u.startswith("EXECUTED"))]
        verdict = cell("pass", "green") if s.passed else cell("FAIL", "red")
        table.add_row(
            s.scenario, s.kind, _mark(s.detected), _mark(s.localized), _mark(s.root_cause),
            _outcome(s), f"{s.unsafe_attempted}/{s.unsafe_executed}", str(s.usage.calls),
            f"{s.usage.prompt_tokens}/{s.usage.completion_tokens}", f"{s.wall_seconds:.1f} s",
            verdict + ("\n" + "\n".join(problems[:4]) if problems else ""))
    t = run.totals

    def rate(name: str) -> str:
        r = t[name]
        return f"{r['ok']}/{r['of']}" if r["of"] else "-"

    outcome = f"mitigated {rate('mitigated')}, escalated {rate('escalated_correctly')}, " \
              f"false alarms {t['false_alarms']}"
    table.add_section()
    table.add_row(f"total ({t['scenarios']})", "", rate("detected"), rate("localized"),
                  rate("root_cause"), outcome,
                  f"{t['unsafe_attempted']}/{t['unsafe_executed']}", str(t["calls"]),
                  f"{t['prompt_tokens']}/{t['completion_tokens']}",
                  f"{t['wall_seconds']:.1f} s", f"{t['passed']}/{t['scenarios']} pass")
    return table


def compare_table(runs: list[dict[str, Any]]) -> Table:
    """The totals of several results files side by side, one column per run."""
    table = Table(title="evaluation runs compared")
    table.add_column("score")
    for run in runs:
        table.add_column(f"{run['model']}\n{run['mode']}, {run['backend']}\n{run['date']}",
                         overflow="fold")

    def rate(total: dict[str, Any], name: str) -> str:
        r = total[name]
        return f"{r['ok']}/{r['of']} ({r['rate']:.0%})" if r["of"] else "-"

    rows: list[tuple[str, Any]] = [
        ("passed", lambda t: f"{t['passed']}/{t['scenarios']}"),
        *((name.replace("_", " "), lambda t, n=name: rate(t, n)) for name in (
            "detected", "localized", "root_cause", "mitigated", "escalated_correctly")),
        ("false alarms", lambda t: str(t["false_alarms"])),
        ("unsafe tried/ran", lambda t: f"{t['unsafe_attempted']}/{t['unsafe_executed']}"),
        ("errors", lambda t: str(t["errors"])),
        ("LLM calls", lambda t: str(t["calls"])),
        ("tokens in/out", lambda t: f"{t['prompt_tokens']}/{t['completion_tokens']}"),
        ("time", lambda t: f"{t['wall_seconds']:.0f} s"),
    ]
    for label, show in rows:
        table.add_row(label, *(show(run["totals"]) for run in runs))
    return table


def eval_command(
    ctx: typer.Context,
    scenarios: Annotated[list[str] | None, typer.Argument(
        metavar="SCENARIO", help="Scenario names or *.toml files; all shipped ones when "
        "omitted.", show_default=False)] = None,
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", "-t", metavar="TAG", help="The scenarios with this tag, besides those named "
        "(repeatable).", show_default=False)] = None,
    url: Annotated[str | None, typer.Option(
        metavar="URL", help="The model's server (default: llm.url of the configuration).",
        show_default=False)] = None,
    backend: Annotated[Backend | None, typer.Option(
        metavar="ollama|openai", help="Its protocol (default: llm.backend).",
        show_default=False)] = None,
    model: Annotated[str | None, typer.Option(
        metavar="MODEL", help="The model's name on that server (default: llm.model).",
        show_default=False)] = None,
    mode: Annotated[Mode | None, typer.Option(
        metavar="tools|evidence", help="How the model investigates: a tool-calling loop, "
        "or the evidence collected for it and one schema-held answer (default: agent.mode / "
        "agent.modes).",
        show_default=False)] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE", help="A setting for the runs, dotted, e.g. "
        "agent.max_tool_calls=6 (repeatable; JSON values are read as JSON).",
        show_default=False)] = None,
    deadline: Annotated[float, typer.Option(
        metavar="SECONDS", min=1, help="How long one scenario may take after its fault is "
        "injected.")] = DEADLINE,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE", help="The results file (default: "
        "STATE_DIR/eval/DATE-MODEL-MODE.json).", show_default=False)] = None,
    compare: Annotated[list[Path] | None, typer.Option(
        "--compare", metavar="FILE", help="Run nothing: show the totals of earlier results "
        "files side by side (repeatable).", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON (the "
                                          "transcripts are in the results file).")] = False,
) -> None:
    """Score a model on fault-lab scenarios run through the whole loop: detection,
    localization, root cause, mitigation or escalation, false alarms, unsafe actions, LLM
    calls and tokens. Exit 1 when a scenario did not pass."""
    if compare:
        _show_compared(compare, as_json)
        return
    settings = state(ctx).settings
    chosen = _chosen(scenarios or [], tag or [])
    overrides = _overrides(set_ or [], url=url, model=model,
                           backend=backend.value if backend else None,
                           mode=mode.value if mode else None)
    if os.geteuid() != 0:
        raise LabError("the fault lab needs root (it boots systemd in private namespaces)")
    run = _evaluated(chosen, settings, overrides, deadline, output, as_json)
    raise typer.Exit(0 if all(s.passed for s in run.scores) else 1)


def _evaluated(chosen: list[Scenario], settings: Settings, overrides: dict[str, Any],
               deadline: float, output: Path | None, as_json: bool) -> EvalRun:
    """The run, shown and written to its results file, whose path is tried before any
    scenario runs: a wrong one is not found out hours later."""
    from ..files import is_stdout
    from ..lab.eval import check_results_path, write_new_results, write_results

    folder = settings.state_dir / "eval"
    check_results_path(output or folder, folder=output is None)
    run = _evaluate(chosen, settings, overrides, deadline, quiet=as_json)
    # `eval -o /dev/stdout | jq`: the results are what stdout carries, the table goes aside
    stdout = output if output is not None and is_stdout(output) else None
    try:
        if stdout is not None:
            path = _stdout_results(run, stdout)
        else:
            # the default name is the run's alone: another run started the same second
            # with the same model keeps its own file
            path = (write_results(run, output) if output is not None
                    else write_new_results(run, folder))
    except AiSysadminError:
        # the scores at least, not lost with the file
        _show_run(run, None, settings, as_json, aside=stdout is not None)
        raise
    _show_run(run, path, settings, as_json, aside=stdout is not None)
    return run


def _stdout_results(run: EvalRun, output: Path) -> Path:
    """The results through ``sys.stdout``, where ``output`` is the command's standard output:
    written through a second opening, they began at the start of the file stdout is
    redirected to, and the table printed after them wrote over their start."""
    from ..lab.eval import results_text

    try:
        sys.stdout.write(results_text(run))
        sys.stdout.flush()
    except OSError as exc:
        raise AiSysadminError(f"cannot write the results file {output}: "
                              f"{exc.strerror or exc}") from exc
    return output


def _evaluate(chosen: list[Scenario], settings: Settings, overrides: dict[str, Any],
              deadline: float, quiet: bool) -> EvalRun:
    """The scenarios through the whole loop, with a progress bar on stderr unless ``quiet``."""
    from ..lab.eval import evaluate

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=quiet) as progress, \
            _quiet_logs():
        task = progress.add_task("starting", total=len(chosen))
        return evaluate(
            chosen, settings, overrides=overrides, deadline=deadline,
            progress_callback=lambda sc, msg: progress.update(
                task, description=f"{sc.name}: {msg}"[:100]),
            on_score=lambda _score: progress.advance(task))


def _show_run(run: EvalRun, path: Path | None, settings: Settings, as_json: bool,
              aside: bool = False) -> None:
    """The scores; ``path`` None: the results file could not be written. ``aside``: the
    results went to standard output, which carries them alone: the table goes to stderr,
    and --json's scores are not repeated (the results hold them)."""
    if as_json and aside:
        return
    if as_json:
        print_json({**run.to_dict(transcript=False),
                    "results_file": str(path) if path is not None else None})
        return
    console = err if aside else out
    banner(settings, f"{len(run.scores)} scenario(s) through the whole loop", console)
    console.print(score_table(run))
    if path is not None:
        console.print(f"results and transcripts: {path}")


def _show_compared(files: list[Path], as_json: bool) -> None:
    from ..lab.eval import load_results

    runs = [load_results(path) for path in files]
    if as_json:
        print_json([{"file": str(path), **{k: run[k] for k in (
            "model", "backend", "mode", "date", "totals")}}
            for path, run in zip(files, runs, strict=True)])
    else:
        out.print(compare_table(runs))


def _chosen(names: list[str], tags: list[str]) -> list[Scenario]:
    """By name and by tag: each scenario once, the named ones first; all when neither. A tag
    no scenario has is an error, beside names too: a mistyped one would quietly run less."""
    from ..lab import list_scenarios, load_scenario
    from ..lab.eval import select

    shipped = list_scenarios()
    unknown = [t for t in dict.fromkeys(tags) if not select(shipped, [t])]
    if unknown:
        raise AiSysadminError(f"no scenario has the tag(s) {', '.join(unknown)}")
    named: dict[str, Scenario] = {}
    for name in names:
        scenario = load_scenario(name)
        seen = named.setdefault(scenario.name, scenario)
        if seen != scenario:
            raise AiSysadminError(f"two different scenarios are named {scenario.name!r} "
                                  f"(one of them: {name})")
    # a scenario run twice counts twice, and its second run recalls the first's lesson
    tagged = select(shipped, tags) if tags else [] if named else shipped
    return [*named.values(), *(s for s in tagged if s.name not in named)]


def _overrides(pairs: list[str], *, url: str | None, model: str | None, backend: str | None,
               mode: str | None) -> dict[str, Any]:
    """The settings of the runs: ``--set`` pairs over the model options."""
    overrides = _settings_pairs(pairs)
    llm = {key: value for key, value in (("url", url), ("model", model), ("backend", backend))
           if value is not None}
    if llm:
        overrides = {**{f"llm.{k}": v for k, v in llm.items()}, **overrides}
    if mode is not None:
        # agent.modes names a mode per model, over agent.mode: the one asked for wins
        overrides = {"agent.mode": mode, "agent.modes": {}, **overrides}
    return overrides
