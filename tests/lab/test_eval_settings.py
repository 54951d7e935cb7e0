"""What an evaluation run is allowed to touch: the model of the configuration, nothing else of
it (no knowledge server, notification channel, remote host or state directory of the
operator's), and settings overrides that win. No lab needed."""

from __future__ import annotations

import json
import os
import signal
import stat
import tempfile
import threading
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import ConfigError
from ai_sysadmin.lab import load_scenario
from ai_sysadmin.lab.eval import (
    EvalRun,
    ScenarioScore,
    check_results_path,
    eval_settings,
    evaluate,
    load_results,
    results_path,
    select,
    write_new_results,
    write_results,
)
from ai_sysadmin.lab.eval.harness import describe_model, evaluate_scenario
from tests.support.eval_models import ci_scenarios


def _operator(tmp_path: Path) -> Settings:
    key = tmp_path / "llm.key"
    key.write_text("k")
    return Settings(
        ai_name="hal", state_dir=tmp_path / "real-state", autonomy_level="suggest",
        llm={"backend": "openai", "url": "http://127.0.0.1:9/", "model": "m",
             "api_key_file": key},
        gotify_url="http://127.0.0.1:1", remote_systems=["web1"],
        knowledge={"url": "http://127.0.0.1:8000"}, queue={"url": "redis://127.0.0.1:1/0"},
        agent={"max_tool_calls": 5, "mode": "evidence"},
        thresholds={"disk_warn_percent": 50, "disk_critical_percent": 60})


def test_a_run_uses_the_operators_model_and_nothing_else_of_theirs(tmp_path: Path) -> None:
    scenario = load_scenario("journal-error-burst")
    mine = eval_settings(_operator(tmp_path), scenario, tmp_path / "run")
    assert (mine.llm.backend, mine.llm.model, mine.llm.api_key_file) == (
        "openai", "m", tmp_path / "llm.key")
    assert mine.agent.max_tool_calls == 5 and mine.agent.mode == "evidence"
    assert mine.state_dir == tmp_path / "run" and mine.queue.url == "sqlite://"
    assert mine.knowledge.url is None and mine.knowledge_dir == tmp_path / "run" / "knowledge"
    assert mine.gotify_url is None and mine.remote_systems == []
    assert mine.autonomy_level == "auto-safe" and mine.agent.max_investigations == 1
    # the defaults plus the scenario's own thresholds, host-wide rules quietened
    assert mine.thresholds.disk_warn_percent == 85
    assert mine.thresholds.journal_burst_window_seconds == 5
    assert mine.thresholds.load_per_core_warn == 1000
    shared = eval_settings(_operator(tmp_path), scenario, tmp_path / "run",
                           knowledge_dir=tmp_path / "kb")
    assert shared.knowledge_dir == tmp_path / "kb"


def test_a_run_watches_the_scenarios_certificates_never_the_operators(tmp_path: Path) -> None:
    """The operator's certificates are not in the lab: watched there, each is a finding no
    scenario expects."""
    operator = _operator(tmp_path).model_copy(
        update={"certificates": ["/run/operator-tls/site.pem"]})
    assert eval_settings(operator, load_scenario("healthy-noop"), tmp_path / "a").certificates \
        == []
    assert eval_settings(operator, load_scenario("expired-tls-cert"),
                         tmp_path / "b").certificates == ["/etc/lab-tls/shop.pem"]


def test_overrides_win_and_a_bad_one_is_a_clear_error(tmp_path: Path) -> None:
    # a URL with a password (and so no key file beside it) is never written to a results file
    base = _operator(tmp_path)
    base = base.model_copy(update={"llm": base.llm.model_copy(update={
        "url": "http://user:pw@127.0.0.1:9/", "api_key_file": None})})
    scenario = load_scenario("healthy-noop")
    mine = eval_settings(base, scenario, tmp_path / "run",
                         {"agent.mode": "tools", "agent.modes": {}, "check_interval": 2,
                          "llm": {"model": "other"}})
    assert (mine.agent.mode, mine.check_interval, mine.llm.model) == ("tools", 2, "other")
    assert mine.llm.url == base.llm.url  # a table merges key by key
    assert describe_model(mine)["url"] != base.llm.url  # no password in a results file
    assert "pw" not in describe_model(mine)["url"]
    assert "pw" not in str(evaluate([], base, overrides={"llm.url": base.llm.url}).to_dict())
    with pytest.raises(ConfigError, match="agent.max_tool_calls"):
        evaluate([scenario], base, overrides={"agent.max_tool_calls": 0})


def test_scenarios_are_chosen_by_tag_and_results_files_are_named_for_the_run() -> None:
    transient, injection = ci_scenarios()
    assert select([transient, injection], ["injection"]) == [injection]
    assert select([transient, injection], ["unit", "injection"]) == [transient, injection]
    assert select([transient, injection]) == [transient, injection]
    run = EvalRun(model="qwen2.5:7b/instruct", backend="ollama", url="u", mode="evidence",
                  started_at="2026-12-02T08:00:00+00:00")
    assert results_path(Path("/r"), run) == Path(
        "/r/20261202T080000-qwen2.5_7b_instruct-evidence.json")


def test_runs_started_the_same_second_keep_a_results_file_each(tmp_path: Path) -> None:
    """Two ``eval`` runs of one model and mode started in the same second: the default name
    is the same, and the one to end last replaced the other's results."""
    paths = []
    for scenario in ("healthy-noop", "oneshot-exits-0", "crash-loop"):
        run = EvalRun(model="m", backend="ollama", url="u", mode="tools",
                      started_at="2026-12-02T08:00:00+00:00")
        run.scores.append(ScenarioScore(scenario, "control", [], fix_expected=False))
        paths.append(write_new_results(run, tmp_path / "eval"))
    named = results_path(tmp_path / "eval", run)
    assert paths == [named, named.with_name(f"{named.stem}-2.json"),
                     named.with_name(f"{named.stem}-3.json")]
    assert [load_results(p)["scenarios"][0]["scenario"] for p in paths] == [
        "healthy-noop", "oneshot-exits-0", "crash-loop"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths} == {0o600}
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == sorted(p.name for p in paths)


def test_a_tag_no_scenario_has_is_an_error_beside_names_too(cli) -> None:
    """``eval crash-loop --tag injections`` (the tag is "injection"): said, not a run of
    crash-loop alone; a tag that some scenario has is no error."""
    code, _, err = cli("eval", "crash-loop", "--tag", "injections", "--tag", "injection")
    assert code == 2 and "no scenario has the tag(s) injections" in err
    assert "tag(s) injection," not in err and "Traceback" not in err


def test_results_files_compare_side_by_side(tmp_path: Path, cli) -> None:
    files = []
    for model, mitigated in (("big", True), ("small", False)):
        run = EvalRun(model=model, backend="ollama", url="u", mode="tools",
                      started_at="2026-12-02T08:00:00+00:00")
        run.scores.append(ScenarioScore("crash-loop", "fault", [], fix_expected=True,
                                        detected=True, localized=True, mitigated=mitigated))
        files.append(write_results(run, tmp_path / f"{model}.json"))
    code, out, _ = cli("eval", "--compare", str(files[0]), "--compare", str(files[1]))
    assert code == 0 and "big" in out and "small" in out
    row = next(line for line in out.splitlines() if "mitigated" in line)
    assert "1/1 (100%)" in row and "0/1 (0%)" in row
    code, out, _ = cli("eval", "--json", "--compare", str(files[1]))
    (shown,) = json.loads(out)
    assert (shown["model"], shown["totals"]["mitigated"]["ok"]) == ("small", 0)
    (tmp_path / "not.json").write_text("{}")
    code, _, err = cli("eval", "--compare", str(tmp_path / "not.json"))
    assert code == 2 and "not an evaluation results file" in err


def _scripted_run() -> EvalRun:
    run = EvalRun(model="m", backend="ollama", url="u", mode="tools",
                  started_at="2026-12-02T08:00:00+00:00")
    run.scores.append(ScenarioScore("crash-loop", "fault", [], fix_expected=True,
                                    detected=True, localized=True, mitigated=True))
    return run


@pytest.mark.lab  # the command needs root before it looks at anything else
def test_a_results_file_that_cannot_be_written_is_said_before_any_scenario_runs(
        tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import ai_sysadmin.lab.eval as lab_eval

    ran: list[object] = []
    monkeypatch.setattr(lab_eval, "evaluate", lambda *args, **kwargs: ran.append(args))
    taken = tmp_path / "runs"
    taken.mkdir()
    code, out, err = cli("eval", "healthy-noop", "--url", "http://127.0.0.1:9",
                         "--output", str(taken))
    assert code == 2 and f"cannot write the results file {taken}: it is a directory" in err
    assert ran == []  # hours of scenarios are not run for scores that could not be kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty-config.toml", "runs"]


@pytest.mark.lab
def test_scores_are_shown_when_the_results_file_fails_and_no_temporary_file_stays(
        tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import ai_sysadmin.lab.eval as lab_eval

    results = tmp_path / "out" / "r.json"

    def evaluate(*_args: object, **_kwargs: object) -> EvalRun:
        results.mkdir(parents=True)  # the path is taken while the scenarios run
        return _scripted_run()

    monkeypatch.setattr(lab_eval, "evaluate", evaluate)
    code, out, err = cli("eval", "crash-loop", "--url", "http://127.0.0.1:9",
                         "--output", str(results))
    assert code == 2 and f"cannot write the results file {results}" in err
    assert "crash-loop" in out and "total (1)" in out and "1/1 pass" in out
    assert "results and transcripts:" not in out
    assert [p.name for p in results.parent.iterdir()] == ["r.json"]


def test_an_override_is_taken_where_the_same_config_file_would_be(tmp_path: Path) -> None:
    """A context set for a smaller model: the conversation's size, left unset, is made to fit
    it, in the operator's file and under an override alike; one set by hand stays set."""
    base = Settings(ai_name="hal", state_dir=tmp_path / "state", llm={"context_size": 8192})
    in_file = Settings(ai_name="hal", state_dir=tmp_path / "state",
                       llm={"context_size": 8192, "max_tokens": 1024})
    run = evaluate([], base, overrides={"llm.max_tokens": 1024})
    assert run.overrides == {"llm.max_tokens": 1024}
    mine = eval_settings(base, load_scenario("healthy-noop"), tmp_path / "run",
                         {"llm.max_tokens": 1024})
    assert mine.llm.max_tokens == 1024
    assert mine.agent.max_context_chars == in_file.agent.max_context_chars == 14904
    by_hand = Settings(ai_name="hal", state_dir=tmp_path / "state",
                       llm={"context_size": 8192}, agent={"max_context_chars": 17000})
    with pytest.raises(ConfigError, match="lower agent.max_context_chars"):
        evaluate([], by_hand, overrides={"llm.max_tokens": 1024})


@pytest.mark.parametrize(("change", "said"), [
    (lambda data: data.pop("model"), "'model' is missing"),
    (lambda data: data["totals"].pop("mitigated"), "totals.mitigated is missing"),
    (lambda data: data["totals"]["detected"].update(rate=None), "totals.detected is missing"),
    (lambda data: data["totals"].update(calls="many"), "totals.calls is missing"),
    (lambda data: data.update(totals=[]), "'totals' is missing"),
])
def test_a_results_file_cut_short_is_a_clear_error_to_compare(tmp_path: Path, cli, change,
                                                                said: str) -> None:
    run = EvalRun(model="m", backend="ollama", url="u", mode="tools",
                  started_at="2026-12-02T08:00:00+00:00")
    run.scores.append(ScenarioScore("crash-loop", "fault", [], fix_expected=True,
                                    detected=True, localized=True, mitigated=True))
    path = write_results(run, tmp_path / "r.json")
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    for args in (("--compare", str(path)), ("--json", "--compare", str(path))):
        code, out, err = cli("eval", *args)
        assert code == 2 and out == "", err
        assert f"{path} is not a whole evaluation results file: {said}" in err
        assert "Traceback" not in err


def test_a_results_path_that_is_no_regular_file_is_written_into_not_replaced(
        tmp_path: Path) -> None:
    """``eval --output`` naming a FIFO (or ``/dev/stdout``, a symlink): checked without
    opening it, then written into; it stays what it was, and nothing is left beside it."""
    run = EvalRun(model="m", backend="ollama", url="u", mode="tools",
                  started_at="2026-12-02T08:00:00+00:00")
    folder = tmp_path / "out"
    folder.mkdir()
    fifo = folder / "results.fifo"
    os.mkfifo(fifo, 0o600)
    check_results_path(fifo)
    read: list[str] = []
    # a daemon thread: where the FIFO was replaced, its reader waits on it for ever
    reader = threading.Thread(target=lambda: read.append(fifo.read_text()), daemon=True)
    reader.start()
    write_results(run, fifo)
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert not reader.is_alive() and json.loads(read[0])["model"] == "m"

    target = folder / "latest.json"
    target.write_text("{}")
    link = folder / "results.json"
    link.symlink_to(target.name)
    check_results_path(link)
    write_results(run, link)
    assert link.is_symlink() and json.loads(target.read_text())["model"] == "m"
    assert sorted(p.name for p in folder.iterdir()) == [
        "latest.json", "results.fifo", "results.json"]


def test_a_stop_that_comes_as_a_scenarios_state_is_made_leaves_no_state_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTERM (taken as a Ctrl-C) that came the moment the scenario's state directory was
    made, before the run named it, left the directory behind for good (seen under load)."""
    made = tempfile.mkdtemp

    def stopped_as_it_is_made(*args: object, **kwargs: object) -> str:
        path = made(*args, **kwargs)  # type: ignore[call-overload]
        signal.raise_signal(signal.SIGINT)  # the handler runs here, before mkdtemp returns
        return path

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(tempfile, "mkdtemp", stopped_as_it_is_made)
    with pytest.raises(KeyboardInterrupt):
        evaluate_scenario(load_scenario("healthy-noop"), Settings(ai_name="hal"),
                          knowledge_dir=tmp_path / "kb")
    assert list(temp.iterdir()) == []
