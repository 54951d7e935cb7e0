"""The adversarial corpus (corpus.toml): every refused case is refused with a readable reason,
every allowed case stays allowed at its risk, every category is well represented."""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.safety.command_policy import RISKS, check_command, check_readonly
from ai_sysadmin.safety.file_policy import check_read

CORPUS = tomllib.loads((Path(__file__).parent / "corpus.toml").read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = CORPUS["case"]
PATHS: list[dict[str, Any]] = CORPUS["path"]


def _argv(case: dict[str, Any]) -> list[str]:
    argv = list(case["argv"])
    if "repeat" in case:
        index, times = case["repeat"]
        argv[index] = argv[index] * times
    if "pad" in case:
        value, count = case["pad"]
        argv += [value] * count
    return argv


def _id(case: dict[str, Any], n: int, text: str) -> str:
    shown = ascii(text)[1:-1].replace(" ", "_")[:60]
    return f"{n:03d}-{case['category']}-{case.get('purpose', '')[:3]}-{shown}"


CASE_IDS = [_id(c, n, " ".join(c["argv"])) for n, c in enumerate(CASES)]
PATH_IDS = [_id(c, n, c["requested"]) for n, c in enumerate(PATHS)]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_command_case(case: dict[str, Any]) -> None:
    argv = _argv(case)
    decision = check_command(argv, case["purpose"], case.get("protected", ()))
    assert decision.risk in RISKS
    assert decision.reason.strip(), "every decision carries a reason"
    if case["expect"] == "refused":
        assert not decision.allowed, decision
        assert case["reason_contains"] in decision.reason, decision.reason
        assert len(decision.reason) < 600, "a person reads the reason: keep it short"
    else:
        assert decision.allowed, decision.reason
        assert decision.risk == case["risk"], decision


@pytest.mark.parametrize("case", [c for c in CASES if c["purpose"] == "investigate"],
                         ids=[i for i, c in zip(CASE_IDS, CASES, strict=True)
                              if c["purpose"] == "investigate"])
def test_check_readonly_agrees_with_investigate(case: dict[str, Any]) -> None:
    argv = _argv(case)
    assert check_readonly(argv) == check_command(argv, "investigate")


@pytest.mark.parametrize("case", PATHS, ids=PATH_IDS)
def test_path_case(case: dict[str, Any]) -> None:
    resolved = None if case.get("unresolved") else case.get("resolved", case["requested"])
    decision = check_read(case["requested"], resolved, case.get("own_secrets", ()))
    if case["expect"] == "refused":
        assert not decision.allowed, decision
        assert case["reason_contains"] in decision.reason, decision.reason
    else:
        assert decision.allowed, decision.reason


def test_every_category_is_well_represented() -> None:
    refused = Counter(c["category"] for c in CASES if c["expect"] == "refused")
    paths = Counter(c["category"] for c in PATHS if c["expect"] == "refused")
    print("refused commands per category:", dict(sorted(refused.items())))
    print("refused paths per category:", dict(sorted(paths.items())))
    assert sum(refused.values()) >= 150
    assert sum(1 for c in CASES if c["expect"] == "allowed") >= 40
    assert sum(1 for c in CASES if c["expect"] == "allowed" and c["purpose"] == "remediate") >= 15
    minimum = {"argument-injection": 20, "option-smuggling": 40, "redirection": 15,
               "traversal": 10, "unicode": 15, "nul": 10, "huge": 10, "protected-alias": 30,
               "purpose-confusion": 15, "interpreter": 20, "destructive": 15,
               "exfiltration": 30}
    for category, least in minimum.items():
        assert refused[category] >= least, (category, refused[category])
    assert paths["traversal"] >= 8 and paths["proc"] >= 8 and paths["unicode"] >= 4
    assert paths["nul"] >= 2 and paths["huge"] >= 2


def test_every_allowed_risk_level_is_exercised() -> None:
    risks = Counter(c["risk"] for c in CASES if c["expect"] == "allowed")
    assert all(risks[r] >= 3 for r in RISKS), risks
