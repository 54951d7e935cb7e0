"""The agent evaluation: fault-lab scenarios through the whole loop, scored for any model.

``evaluate(scenarios, settings)`` runs each scenario in a fresh lab with the daemon as
``ai-sysadmin run`` builds it and returns an :class:`EvalRun` (per-scenario scores, totals,
the model's conversations). ``ai-sysadmin eval`` is its command; docs/eval.md says what each
score means.
"""

from __future__ import annotations

from .harness import (
    DEFAULT_DEADLINE,
    EvalRun,
    eval_settings,
    evaluate,
    evaluate_scenario,
    select,
)
from .results import (
    check_results_path,
    load_results,
    results_path,
    results_text,
    write_new_results,
    write_results,
)
from .scores import IncidentReport, ScenarioScore, totals

__all__ = [
    "DEFAULT_DEADLINE",
    "EvalRun",
    "IncidentReport",
    "ScenarioScore",
    "check_results_path",
    "eval_settings",
    "evaluate",
    "evaluate_scenario",
    "load_results",
    "results_path",
    "results_text",
    "select",
    "totals",
    "write_new_results",
    "write_results",
]
