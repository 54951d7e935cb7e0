"""``ai-sysadmin eval`` as an operator runs it, and a model server that fails: a clear error
for the scenario, never a mitigation."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ai_sysadmin import lab
from ai_sysadmin.config import Settings
from ai_sysadmin.lab import load_scenario
from ai_sysadmin.lab.eval import evaluate, load_results
from tests.conftest import BIN, run_program
from tests.support.eval_models import TRANSIENT_FAILURE, Oracle, ci_scenarios, knowledge_dir
from tests.support.scripted_model import ScriptedModel, call, delay, garbage, http_error

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_eval_prints_scores_as_json_and_writes_the_results_file(tmp_path: Path) -> None:
    scenario_file = tmp_path / "ci-transient-failure.toml"
    scenario_file.write_text(TRANSIENT_FAILURE)
    # the program announces no scenario to the model: the oracle finds it from the incident
    oracle = Oracle(ci_scenarios())
    results = tmp_path / "runs" / "oracle.json"
    with ScriptedModel(then=oracle) as model:
        done = run_program(str(BIN), "eval", str(scenario_file), "healthy-noop", "--url",
                           model.url, "--backend", "openai", "--model", "oracle-cli",
                           "--deadline", "60", "--json", "--output", str(results),
                           "--set", f"knowledge.path={knowledge_dir()}",
                           timeout=240)
        table = run_program(str(BIN), "eval", "healthy-noop", "--url", model.url,
                            "--backend", "ollama", "--model", "oracle-cli",
                            "--set", f"knowledge.path={knowledge_dir()}", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = json.loads(done.stdout)
    assert (shown["model"], shown["backend"], shown["mode"]) == ("oracle-cli", "openai",
                                                                 "tools")
    assert shown["results_file"] == str(results)
    assert [s["scenario"] for s in shown["scenarios"]] == ["ci-transient-failure",
                                                           "healthy-noop"]
    fault, control = shown["scenarios"]
    assert fault["passed"] and fault["mitigated"] and fault["detected"] and fault["localized"]
    assert control["passed"] and control["false_alarms"] == 0 and control["detected"] is None
    assert "transcript" not in fault  # on the terminal: the scores; in the file: everything
    assert shown["totals"]["mitigated"] == {"ok": 1, "of": 1, "rate": 1.0}
    saved = load_results(results)
    assert saved["totals"] == shown["totals"] and saved["scenarios"][0]["transcript"]
    # the default: a table, the totals row, where the results went; exit 0 when all passed
    assert table.returncode == 0, table.stdout + table.stderr
    assert "healthy-noop" in table.stdout and "total (1)" in table.stdout
    assert "results and transcripts:" in table.stdout


def test_a_bad_setting_or_scenario_is_a_clear_error_before_any_lab_boots() -> None:
    bad = run_program(str(BIN), "eval", "healthy-noop", "--set", "agent.max_tool_calls=0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "agent.max_tool_calls" in bad.stderr and "greater than or equal to 1" in bad.stderr
    unknown = run_program(str(BIN), "eval", "no-such-scenario")
    assert unknown.returncode == 2 and "no-such-scenario" in unknown.stderr
    no_tag = run_program(str(BIN), "eval", "--tag", "no-such-tag")
    assert no_tag.returncode == 2 and "no-such-tag" in no_tag.stderr
    assert "Traceback" not in unknown.stderr + no_tag.stderr


def test_a_scenario_named_twice_runs_once(tmp_path: Path) -> None:
    """By name twice and by its file: one run, counted once (a second run would recall the
    first one's lesson from the shared knowledge base and score otherwise)."""
    shipped = Path(lab.__file__).parent / "scenarios" / "healthy-noop.toml"
    done = run_program(str(BIN), "eval", "healthy-noop", "healthy-noop", str(shipped),
                       "--url", f"http://127.0.0.1:{_closed_port()}", "--json",
                       "--output", str(tmp_path / "run.json"), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = json.loads(done.stdout)
    assert [s["scenario"] for s in shown["scenarios"]] == ["healthy-noop"]
    assert shown["totals"]["scenarios"] == 1


def test_the_operators_journal_first_lines_does_not_hide_the_fault(tmp_path: Path) -> None:
    """The fault is injected before the daemon's first check, which read only the
    operator's ``journal_first_lines`` entries of the boot (0: none): the daemon reads the
    lab's journal on from before the fault, whatever it is set to. Detection is the
    monitor's: a model server that is down does not change it."""
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\nstate_dir = "{tmp_path / "state"}"\n'
                      "journal_first_lines = 0\n")
    done = run_program(str(BIN), "--config", str(config), "eval", "journal-error-burst",
                       "--url", f"http://127.0.0.1:{_closed_port()}", "--deadline", "20",
                       "--json", "--output", str(tmp_path / "run.json"), timeout=180)
    (score,) = json.loads(done.stdout)["scenarios"]
    assert score["detected"] and score["missing"] == [], score


@pytest.mark.parametrize("server", ["down", "garbage"])
def test_a_failing_model_server_is_a_per_scenario_error_never_a_mitigation(
        tmp_path: Path, server: str) -> None:
    (transient, _) = ci_scenarios()
    # a quiet control asks the server nothing, whatever its failure: one kind shows it; and
    # a fault whose right outcome is a person's, as the one a restart fixes
    scenarios = [transient, *([load_scenario("failed-unit-bad-config"),
                               load_scenario("healthy-noop")] if server == "down" else [])]
    with ScriptedModel(then=lambda _request: garbage()) as model:
        url = model.url if server == "garbage" else f"http://127.0.0.1:{_closed_port()}"
        base = Settings(ai_name="hal", state_dir=tmp_path / "state",
                        llm={"backend": "openai", "url": url, "model": "m", "timeout": 5,
                             "connect_timeout": 2})
        run = evaluate(scenarios, base, deadline=60, knowledge_dir=knowledge_dir())
    fault, *others = run.scores
    controls = [s for s in others if s.kind == "control"]
    assert len(controls) == (1 if server == "down" else 0)
    assert not fault.passed and not fault.timed_out
    assert fault.detected  # the monitor works without a model
    # a server that answered (garbage) was the model's to get right; one that is down says
    # nothing of the model: its scores are left out, not counted wrong (nor right)
    assert fault.mitigated is (None if server == "down" else False)
    assert fault.localized is None  # it proposed nothing
    (incident,) = fault.incidents
    assert incident.end == "model_failed" and incident.state == "open"
    assert incident.actions == [] and incident.diagnosis is None
    said = " ".join(fault.errors)
    assert "the model failed" in said
    assert ("LLMUnavailable" in said) if server == "down" else ("LLMBadResponse" in said)
    # a server that is down is retried; a garbage answer is the scenario's one investigation
    # (agent.max_investigations = 1): escalated by the model's failure, still model_failed
    assert fault.usage.calls >= (2 if server == "down" else 1)
    assert fault.usage.failed == fault.usage.calls
    # nothing to ask on a quiet control: its score is untouched by the dead server
    assert all(control.passed and control.usage.calls == 0 for control in controls)
    if server == "garbage":
        assert run.totals["mitigated"] == {"ok": 0, "of": 1, "rate": 0.0}
        assert run.totals["errors"] == 1
        return
    escalation = next(s for s in others if s.scenario == "failed-unit-bad-config")
    assert escalation.detected and not escalation.passed
    assert (escalation.localized, escalation.root_cause, escalation.escalated_correctly) == (
        None, None, None)
    assert "no request reached the model: its scores are left out" in escalation.errors
    for name in ("localized", "root_cause", "mitigated", "escalated_correctly"):
        assert run.totals[name] == {"ok": 0, "of": 0, "rate": None}, name
    assert run.totals["detected"]["ok"] == 2 and run.totals["errors"] == 2


def test_a_model_that_fails_after_proposing_ends_as_failed_and_nothing_runs(
        tmp_path: Path) -> None:
    (transient, _) = ci_scenarios()
    script = [call("propose_action", kind="restart_unit", parameters={"unit": "flaky.service"},
                   rationale="a restart brings it back")]
    with ScriptedModel(script, then=lambda _request: http_error(500)) as model:
        base = Settings(ai_name="hal", state_dir=tmp_path / "state",
                        llm={"backend": "openai", "url": model.url, "model": "m",
                             "timeout": 5})
        run = evaluate([transient], base, deadline=60, knowledge_dir=knowledge_dir())
    (score,) = run.scores
    (incident,) = score.incidents
    # its proposal was recorded, but an investigation that failed decides nothing
    assert [p["kind"] for p in incident.proposals] == ["restart_unit"]
    assert (incident.end, incident.actions, score.mitigated) == ("model_failed", [], False)
    assert not score.timed_out and any("500" in e for e in score.errors)


def test_a_model_slower_than_the_deadline_is_said_so_and_stopping_it_is_no_model_error(
        tmp_path: Path) -> None:
    (transient, _) = ci_scenarios()
    with ScriptedModel(then=lambda _request: delay(60)) as model:
        base = Settings(ai_name="hal", state_dir=tmp_path / "state",
                        llm={"backend": "ollama", "url": model.url, "model": "slow",
                             "timeout": 120})
        run = evaluate([transient], base, deadline=5, knowledge_dir=knowledge_dir())
    (score,) = run.scores
    (incident,) = score.incidents
    assert score.timed_out and (incident.end, incident.state) == (None, "investigating")
    assert score.errors == [f"deadline: 5 s passed; still under way: #{incident.id} "
                            "failed_unit flaky.service (investigating)"]
    assert score.mitigated is False and not score.passed


def _slow_eval(tmp_path: Path, model: ScriptedModel, *scenarios: str
               ) -> subprocess.Popen[str]:
    """`eval` of ``scenarios`` against ``model``, its labs and state under ``tmp_path``."""
    return subprocess.Popen(
        [str(BIN), "eval", *scenarios, "--url", model.url, "--backend", "ollama", "--model",
         "slow", "--output", str(tmp_path / "r.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)})


def test_ctrl_c_stops_the_whole_evaluation_and_leaves_no_lab_or_state(tmp_path: Path) -> None:
    # a model that takes its time: the interrupt comes while an investigation waits for it
    with ScriptedModel(then=lambda _request: delay(60)) as model:
        proc = _slow_eval(tmp_path, model, "disk-full", "healthy-noop")
        deadline = time.monotonic() + 90
        while not model.requests:
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert list(tmp_path.glob("ai-sysadmin-eval-disk-full-*"))
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert time.monotonic() - interrupted < 30  # not one scenario ended: all of it
    assert "healthy-noop" not in out and not (tmp_path / "r.json").exists()
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith("ai-sysadmin-")]
    assert left == [], left  # no lab, no state, no knowledge base behind


@pytest.mark.parametrize("when", ["the model is asked", "the scenario starts"])
def test_sigterm_stops_the_evaluation_as_sigterm_whenever_it_comes(tmp_path: Path,
                                                                   when: str) -> None:
    """A service manager's stop is told as one, and ends the process by its signal, whether
    it came while a daemon ran (which took it for a Ctrl-C) or once an earlier scenario's
    daemon had ended (which left the signal's default behind: death, with no clean-up)."""
    with ScriptedModel(then=lambda _request: delay(60)) as model:
        proc = _slow_eval(tmp_path, model, "healthy-noop", "disk-full")

        def came() -> bool:
            if when == "the model is asked":
                return bool(model.requests)
            return bool(list(tmp_path.glob("ai-sysadmin-eval-disk-full-*")))

        deadline = time.monotonic() + 90
        while not came():
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, out + err
    assert "stopped by SIGTERM" in err and "interrupted" not in err
    assert not (tmp_path / "r.json").exists()
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith("ai-sysadmin-")]
    assert left == [], left  # no lab, no state, no knowledge base behind
