"""A fix is the same fix whatever process it killed: the pid of one moment is neither part of
a learned entry's identity nor shown to the model later, when it names another process."""

from __future__ import annotations

import re

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.knowledge.learning import lesson
from ai_sysadmin.knowledge.store import KnowledgeBase

from .lessons import action, incident

PIDS = [4242, 5177, 6020, 7311, 8830]


def test_killing_the_same_units_hog_again_refreshes_one_entry(
        kb: KnowledgeBase, kb_settings: Settings) -> None:
    recall = KnowledgeRecall(kb_settings, kb=kb)
    for number, pid in enumerate(PIDS, 1):
        recall.learn(incident(number, "backup.service"),
                     action(number, number, "kill_process", {"pid": pid}, "backup.service"))
    entries = kb.list(provenance="learned")
    assert len(entries) == 1, [e.id for e in entries]
    # the entry says the latest run, with no pid in it
    assert "incident #5" in entries[0].text
    assert not any(str(pid) in entries[0].text + entries[0].topic for pid in PIDS)
    # every run stays on record as history
    assert kb.count()["incidents"] == len(PIDS)

    shown = recall.search_text("", incident(99, "backup.service"))
    assert not any(str(pid) in shown for pid in PIDS), shown
    # one fix, shown once
    fixes = [line for line in shown.splitlines() if re.match(r"^\d+\. ", line)]
    assert len(fixes) == 1, shown
    assert "may guide a fix" in fixes[0] and "kill_process" in fixes[0]


def test_another_unit_or_another_kind_is_another_lesson() -> None:
    one = lesson(incident(1, "backup.service"),
                 action(1, 1, "kill_process", {"pid": 4242}, "backup.service"))
    again = lesson(incident(2, "backup.service"),
                   action(2, 2, "kill_process", {"pid": 5177}, "backup.service"))
    other = lesson(incident(3, "cron.service"),
                   action(3, 3, "kill_process", {"pid": 4242}, "cron.service"))
    hard = lesson(incident(4, "backup.service"),
                  action(4, 4, "kill_process", {"pid": 4242, "signal": "KILL"},
                         "backup.service"))
    assert one is not None and again is not None and other is not None and hard is not None
    assert one.entry.id == again.entry.id
    assert len({one.entry.id, other.entry.id, hard.entry.id}) == 3
    # the record of what ran keeps its pid: it is history, not advice
    assert one.record.actions[0].params == {"pid": 4242}
    assert "4242" not in one.record.diagnosis
