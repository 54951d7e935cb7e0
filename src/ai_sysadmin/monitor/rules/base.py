"""The one interface every detection rule implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from ...config import Thresholds
from ..findings import Finding, Severity
from ..snapshot import JournalEntry, Snapshot


@dataclass(frozen=True)
class RuleContext:
    """What a rule may look at: this snapshot, the previous one of the same host, thresholds.

    ``journal_window`` holds the journal entries of the last burst window (the daemon keeps it
    across passes); by default it is the snapshot's own entries.
    """

    snapshot: Snapshot
    thresholds: Thresholds = field(default_factory=Thresholds)
    previous: Snapshot | None = None
    journal_window: Sequence[JournalEntry] | None = None

    @property
    def host(self) -> str:
        return self.snapshot.host

    @property
    def window(self) -> Sequence[JournalEntry]:
        if self.journal_window is not None:
            return self.journal_window
        return self.snapshot.journal or []


class Rule(ABC):
    #: stable identifier, part of every fingerprint
    name: str
    #: snapshot sections the rule reads: if one failed, the rule's incidents are left alone
    requires: tuple[str, ...]
    description: str

    @abstractmethod
    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        """Return the findings of this rule for one snapshot (empty when healthy)."""

    def finding(
        self,
        ctx: RuleContext,
        subject: str,
        severity: Severity,
        summary: str,
        evidence: Sequence[str] = (),
    ) -> Finding:
        return Finding(ctx.host, self.name, subject, severity, summary, tuple(evidence))
