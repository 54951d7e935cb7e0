"""Findings: what a rule concluded, with quoted evidence and a stable fingerprint."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Severity(IntEnum):
    INFO = 10
    WARNING = 20
    CRITICAL = 30

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.upper()]


@dataclass(frozen=True, slots=True)
class Finding:
    host: str
    rule: str
    subject: str
    severity: Severity
    summary: str
    evidence: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.host, self.rule, self.subject)

    def to_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "rule": self.rule,
            "subject": self.subject,
            "severity": self.severity.label,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "fingerprint": self.fingerprint,
        }


def fingerprint(host: str, rule: str, subject: str) -> str:
    return f"{host}|{rule}|{subject}"


def quote(text: str, limit: int = 300) -> str:
    """Evidence is host text: keep it on one line and bounded."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
