"""A closed incident's queued LLM work is cancelled by its key, on SQLite and a real Redis."""

from __future__ import annotations

from collections.abc import Callable

from ai_sysadmin.llm.queue import RequestQueue

MakeQueue = Callable[..., RequestQueue]


def test_cancel_keyed_cancels_only_that_callers_pending_requests(make_queue: MakeQueue) -> None:
    queue = make_queue()
    mine = [queue.submit("chat", {"turn": n}, "autonomous", coalesce_key="incident:1")
            for n in (1, 2)]
    longer = queue.submit("chat", {"turn": 1}, "autonomous", coalesce_key="incident:12")
    unkeyed = queue.submit("chat", {"turn": 1}, "interactive")

    assert queue.cancel_keyed("incident:1") == 2

    assert [queue.get(s.request_id).state for s in mine] == ["cancelled", "cancelled"]
    assert queue.get(longer.request_id).state == "pending"
    assert queue.get(unkeyed.request_id).state == "pending"
    assert queue.cancel_keyed("incident:1") == 0
