"""Scenarios: fault drills as data files (``scenarios/<name>.toml``), validated when loaded.

A scenario injects a fault into a fresh lab, names the findings a full check must then show
(``expect``), the steps that repair it (``fix``) and the findings that must be gone afterwards
(``verify``, by default the expected ones). A scenario that expects nothing is a control: a full
check must stay silent for ``observe_seconds``.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..config import Settings, Thresholds, validation_message
from ..errors import LabError, NotFoundError
from ..monitor.findings import Finding
from ..monitor.rules import RULES_BY_NAME
from ..safety.actions import ACTION_KINDS
from .injectors import INJECTORS, PARAMS


class _Model(BaseModel):
    # inf or nan as a timeout would let a drill wait for ever (nan compares false with every
    # bound and deadline)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Step(_Model):
    """One injector call. In TOML: ``{action = "write_file", path = "...", text = "..."}``."""

    action: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _gather_params(cls, data: Any) -> Any:
        # Parameters sit next to `action` (flat) or in a `params` table; both read naturally.
        if isinstance(data, dict) and "params" not in data:
            rest = {k: v for k, v in data.items() if k != "action"}
            return {"action": data.get("action"), "params": rest}
        return data

    @model_validator(mode="after")
    def _known_action(self) -> Step:
        if self.action not in INJECTORS:
            raise ValueError(
                f"unknown action {self.action!r}; known: {', '.join(sorted(INJECTORS))}"
            )
        model = PARAMS[self.action]
        try:
            model.model_validate(self.params)
        except ValidationError as exc:
            allowed = ", ".join(model.model_fields) or "none"
            problems = "; ".join(_describe(e) for e in exc.errors())
            raise ValueError(
                f"action {self.action!r}: {problems} (parameters: {allowed})"
            ) from None
        return self


class Expectation(_Model):
    """A finding by rule and subject; ``subject_prefix`` for subjects known only at run time.

    ``evidence_contains`` narrows a prefix down to the right one (``pid:`` of *which* process).
    """

    rule: str
    subject: str | None = None
    subject_prefix: str | None = None
    evidence_contains: str | None = None

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, value: str) -> str:
        if value not in RULES_BY_NAME:
            raise ValueError(f"unknown rule {value!r}; known: {', '.join(sorted(RULES_BY_NAME))}")
        return value

    @model_validator(mode="after")
    def _one_subject(self) -> Expectation:
        if (self.subject is None) == (self.subject_prefix is None):
            raise ValueError("give exactly one of 'subject' and 'subject_prefix'")
        return self

    def matches(self, finding: Finding) -> bool:
        if finding.rule != self.rule:
            return False
        if self.evidence_contains is not None and not any(
            self.evidence_contains in line for line in finding.evidence
        ):
            return False
        if self.subject is not None:
            return finding.subject == self.subject
        return finding.subject.startswith(self.subject_prefix or "")

    def __str__(self) -> str:
        subject = self.subject if self.subject is not None else f"{self.subject_prefix}*"
        return f"{self.rule} {subject}"


class CatalogAction(_Model):
    """One structured remediation action, as the model would propose it."""

    kind: str
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in ACTION_KINDS:
            raise ValueError(f"unknown action kind {value!r}; known: {', '.join(ACTION_KINDS)}")
        return value


class ToolCallStep(_Model):
    """One tool call a model makes (an injection's demand, as an obedient model follows it)."""

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class AgentExpectation(_Model):
    """What a good investigation of this scenario finds and does (the agent evaluation).

    ``cause``: keywords the diagnosis must all name (case-insensitive) for the root cause to
    count as found. ``fix``: the correct fix as catalog actions, proposed in this order; empty
    when no catalog action can fix it and the right outcome is a person, told the right
    diagnosis. ``unsafe``: for a prompt-injection scenario, what the host text demands, as the
    tool calls an obedient model makes; none of them may ever execute. ``secret``: a value the
    scenario plants that must never reach the model.
    """

    cause: list[str] = Field(default_factory=list)
    fix: list[CatalogAction] = Field(default_factory=list)
    unsafe: list[ToolCallStep] = Field(default_factory=list)
    secret: str | None = None


class Scenario(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str
    tags: list[str] = Field(default_factory=list, description="Free tags to choose drills by.")
    agent: AgentExpectation | None = Field(
        None, description="What the agent should find and do (see AgentExpectation)."
    )
    thresholds: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of [thresholds] keys for this drill."
    )
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of other top-level settings for this drill "
        "(each key replaced whole), e.g. certificates = [...]; thresholds go in [thresholds].",
    )
    inject: list[Step] = Field(default_factory=list)
    expect: list[Expectation] = Field(default_factory=list)
    tolerate: list[Expectation] = Field(
        default_factory=list, description="Findings that may appear as side effects."
    )
    fix: list[Step] = Field(default_factory=list)
    verify: list[Expectation] | None = Field(
        None, description="Findings that must be gone after the fix; default: expect."
    )
    detect_timeout: float = Field(30, gt=0, description="Seconds allowed for detection.")
    recover_timeout: float = Field(30, gt=0, description="Seconds allowed for recovery.")
    observe_seconds: float = Field(
        2, ge=0, description="With nothing expected: how long a full check must stay silent."
    )

    @field_validator("thresholds")
    @classmethod
    def _known_thresholds(cls, value: dict[str, Any]) -> dict[str, Any]:
        Thresholds.model_validate(value)  # unknown keys and bad values fail here, not mid-drill
        return value

    @field_validator("settings")
    @classmethod
    def _known_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "thresholds" in value:
            raise ValueError("thresholds go in the scenario's own [thresholds] table")
        # unknown keys and bad values fail here, not mid-drill
        Settings.model_validate({"ai_name": "drill", "state_dir": "/nonexistent", **value})
        return value

    @property
    def kind(self) -> str:
        """``injection`` (host text demands harm), ``control`` (nothing to find) or ``fault``."""
        if self.agent is not None and self.agent.unsafe:
            return "injection"
        return "fault" if self.expect else "control"

    @property
    def must_clear(self) -> list[Expectation]:
        return self.expect if self.verify is None else self.verify

    def settings_over(self, base: Settings) -> Settings:
        """``base`` with this scenario's setting overrides, validated as a whole."""
        if not self.settings:
            return base
        checked = Settings.model_validate({**base.model_dump(), **self.settings})
        return base.model_copy(update={key: getattr(checked, key) for key in self.settings})

    def thresholds_over(self, base: Thresholds) -> Thresholds:
        """``base`` with this scenario's overrides, validated as a whole."""
        return Thresholds.model_validate({**base.model_dump(), **self.thresholds})


def _describe(err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"unknown key '{where}'"
    return f"key '{where}': {validation_message(err)}"


def parse_scenario(text: str, source: str, expected_name: str | None = None) -> Scenario:
    """A scenario from TOML text; every problem is a LabError naming ``source`` and the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LabError(f"{source}: TOML syntax error: {exc}") from exc
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise LabError(f"{source}: {problems}") from exc
    if expected_name is not None and scenario.name != expected_name:
        raise LabError(f"{source}: name {scenario.name!r} differs from the file name")
    return scenario


def load_scenario_file(path: str | os.PathLike[str]) -> Scenario:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabError(f"{file}: cannot read: {exc}") from exc
    return parse_scenario(text, str(file), expected_name=file.stem)


def _packaged() -> dict[str, Any]:
    folder = resources.files("ai_sysadmin.lab") / "scenarios"
    return {
        entry.name.removesuffix(".toml"): entry
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }


def list_scenarios() -> list[Scenario]:
    """Every scenario shipped with the package, by name."""
    return [
        parse_scenario(entry.read_text(encoding="utf-8"), f"scenarios/{name}.toml", name)
        for name, entry in sorted(_packaged().items())
    ]


def load_scenario(name_or_path: str | os.PathLike[str]) -> Scenario:
    """A shipped scenario by name, or a scenario file by path (``*.toml``)."""
    packaged = _packaged()
    key = os.fspath(name_or_path)
    if key in packaged:
        return parse_scenario(
            packaged[key].read_text(encoding="utf-8"), f"scenarios/{key}.toml", key
        )
    if key.endswith(".toml"):
        return load_scenario_file(key)
    raise NotFoundError(f"no scenario named {key!r}; known: {', '.join(sorted(packaged))}")
