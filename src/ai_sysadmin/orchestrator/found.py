"""What a host's checks found before, and how bad, as the next check's rules judge by it
(``RuleContext.found_before``: a loop between two crashes stays found, a level that warned
keeps its margin).

The store owns it: the host's live incidents, read at each check, so that what a person
resolved or closed in another process (``issues resolve``) is neither kept by a rule nor
held by a margin at the daemon's very next check, and what a person's ``check`` opened
keeps its margin in the daemon's. A checker's own looks add what only they know (see
:class:`FoundMemory`); a checker without a store judges from its memory alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..monitor.findings import Finding, Severity
from ..store import LiveFinding

#: (rule, subject)
Key = tuple[str, str]


class FoundMemory:
    """What one checker's looks found, and what of it the store's live incidents do not say."""

    def __init__(self) -> None:
        #: the severity the last check found each at, or the one it was found at before
        #: where the check could not judge it
        self.found: dict[Key, Severity] = {}
        #: what of :attr:`found` only checks the store did not keep found (it refused or
        #: dropped them)
        self.unstored: set[Key] = set()
        #: when (``Snapshot.taken_at``) a check judged each and did not find it, though the
        #: store keeps its incident live: a fix's, being run or verified, or one a fix made go
        #: without mending (its verification, or a person, says how it ends); found again
        #: once a look finds it (``last_seen``)
        self.gone: dict[Key, float] = {}

    def before(self, live: Mapping[Key, LiveFinding] | None) -> dict[Key, Severity]:
        """What counts as found before this check: the store's ``live`` incidents (None:
        no store), less what this checker's looks saw gone since any look found it, with
        what the store never heard of."""
        if live is None:
            return dict(self.found)
        self.gone = {key: at for key, at in self.gone.items()
                     if key in live and live[key].last_seen <= at}
        found = {key: it.severity for key, it in live.items() if key not in self.gone}
        found.update((key, self.found[key]) for key in self.unstored if key in self.found)
        return found

    def remember(self, looked_at: float, before: Mapping[Key, Severity],
                 findings: Iterable[Finding], judged: set[str], unread: frozenset[Key]) -> None:
        """What a check that looked at ``looked_at`` found, judged from ``before``: kept
        before it is stored, so that a check the store refuses is remembered all the same."""
        now = {(f.rule, f.subject): f.severity for f in findings}
        # a rule that could not judge this look (its section was not collected), or one of
        # its subjects (a mount df could not read), found what it found before: the store
        # keeps its incidents, and so does this memory, or the look after a failed df would
        # judge without the margins
        kept = {key: severity for key, severity in before.items()
                if key[0] not in judged or key in unread}
        for key in before.keys() - kept.keys() - now.keys():
            self.gone[key] = looked_at
        for key in now:
            self.gone.pop(key, None)
        self.found = {**kept, **now}
        self.unstored = {key for key in self.unstored if key in kept} | now.keys()

    def stored(self, findings: Iterable[Finding]) -> None:
        """The check that found ``findings`` is in the store: they are its to say now (a
        person's resolve after it drops them)."""
        self.unstored.difference_update((f.rule, f.subject) for f in findings)

    def copy(self) -> FoundMemory:
        other = FoundMemory()
        other.found, other.unstored, other.gone = \
            dict(self.found), set(self.unstored), dict(self.gone)
        return other
