"""``eval -o /dev/stdout``: the results are what standard output carries, redirected to a file
or piped to ``jq``; the score table goes to stderr. Written through a second opening of the
redirected file, the results began at its start and the table printed after them wrote over
their first lines. The lab itself is replaced by a run of one fixed score (no root needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: ``ai-sysadmin eval`` in a child process, its lab replaced by a finished run
PROGRAM = """
import os, sys
import ai_sysadmin.cli.eval as command
from ai_sysadmin.cli.main import main
from ai_sysadmin.lab.eval import EvalRun, ScenarioScore

def finished(*args, **kwargs):
    run = EvalRun(model="m", backend="ollama", url="http://127.0.0.1:1", mode="tools",
                  started_at="2026-12-02T08:00:00+00:00")
    run.scores.append(ScenarioScore("crash-loop", "fault", [], fix_expected=True,
                                    detected=True, localized=True, mitigated=True))
    return run

command._evaluate = finished
os.geteuid = lambda: 0  # the lab's root check: there is no lab
sys.exit(main(sys.argv[1:]))
"""


def _eval(*args: str, stdout: int | object = subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROGRAM, "eval", "crash-loop", *args],
                          stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120)


@pytest.mark.parametrize("as_json", [False, True])
def test_results_to_its_own_stdout_are_the_whole_results_file(tmp_path: Path,
                                                             as_json: bool) -> None:
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")  # what /dev/stdout is
    extra = ["--json"] if as_json else []

    redirected = tmp_path / "results.json"
    with redirected.open("w") as handle:
        done = _eval("-o", str(link), *extra, stdout=handle)
    assert done.returncode == 0, done.stderr
    results = json.loads(redirected.read_text())
    assert results["format"] == 1 and results["model"] == "m"
    assert [s["scenario"] for s in results["scenarios"]] == ["crash-loop"]
    if not as_json:  # the table, for the person watching, where it overwrites nothing
        assert "crash-loop" in done.stderr and f"results and transcripts: {link}" in done.stderr

    piped = _eval("-o", str(link), *extra)  # `| jq`
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout) == results
    assert link.is_symlink()


def test_results_to_a_file_leave_the_table_on_stdout(tmp_path: Path) -> None:
    done = _eval("-o", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr
    assert "crash-loop" in done.stdout and "results and transcripts:" in done.stdout
    assert json.loads((tmp_path / "r.json").read_text())["model"] == "m"
