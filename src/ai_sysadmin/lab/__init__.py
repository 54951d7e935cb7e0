"""The fault lab: real systemd in private namespaces, fault injectors, scenario drills.

Exports are loaded on first use: ``python -m ai_sysadmin.lab.init`` runs on every lab start as
PID 1 and must not pay for importing pydantic and the rules.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Sandbox": "sandbox",
    "LabPrograms": "sandbox",
    "SandboxTransport": "transport",
    "INJECTORS": "injectors",
    "Scenario": "scenario",
    "list_scenarios": "scenario",
    "load_scenario": "scenario",
    "DrillResult": "runner",
    "run_scenario": "runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
