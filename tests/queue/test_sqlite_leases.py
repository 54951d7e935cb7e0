"""The fenced steps of the SQLite queue: claim, renew, complete, release, and giving up."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from ai_sysadmin.llm.queue.base import QueueError
from ai_sysadmin.llm.queue.sqlite import SqliteQueue
from tests.support.polling import poll_until


@pytest.fixture
def queue(tmp_path: Path) -> SqliteQueue:
    return SqliteQueue(tmp_path / "queue.db", lease_seconds=0.2, max_attempts=2)


def test_a_late_completion_from_a_lost_lease_is_refused(queue: SqliteQueue) -> None:
    request_id = queue.submit("chat", {}, "interactive").request_id
    old = queue.claim("w1")
    assert old is not None and old.attempt == 1
    assert queue.claim("w2") is None  # leased: nobody else gets it
    assert queue.renew(old)

    poll_until(lambda: queue.get(request_id).state == "pending", 5, "the lease to expire")
    new = queue.claim("w2")
    assert new is not None and new.request.id == request_id and new.attempt == 2

    assert not queue.renew(old)
    assert not queue.complete(old, {"from": "w1"})
    assert queue.complete(new, {"from": "w2"})
    assert not queue.complete(new, {"from": "w2, again"})
    request = queue.get(request_id)
    assert (request.state, request.result, request.worker) == ("done", {"from": "w2"}, "w2")


def test_same_worker_name_is_still_fenced_by_the_attempt(queue: SqliteQueue) -> None:
    request_id = queue.submit("chat", {}, "batch").request_id
    old = queue.claim("host-1")
    assert old is not None
    poll_until(lambda: queue.get(request_id).state == "pending", 5, "the lease to expire")
    new = queue.claim("host-1")
    assert new is not None
    assert not queue.complete(old, {"stale": True})
    assert queue.complete(new, {"fresh": True})
    assert queue.get(request_id).result == {"fresh": True}


def test_a_request_whose_workers_keep_dying_fails_with_a_clear_error(queue: SqliteQueue) -> None:
    request_id = queue.submit("chat", {}, "batch").request_id
    for attempt in (1, 2):
        claim = queue.claim(f"w{attempt}")
        assert claim is not None and claim.attempt == attempt
        poll_until(lambda: queue.get(request_id).state == "pending", 5, "the lease to expire")
    assert queue.claim("w3") is None  # out of attempts: failed, not served
    request = queue.get(request_id)
    assert request.state == "failed"
    assert request.error == (
        "gave up after 2 attempt(s): the worker serving it stopped or lost its lease each "
        "time (last: w2)"
    )


def test_a_released_request_goes_back_without_using_an_attempt(queue: SqliteQueue) -> None:
    request_id = queue.submit("chat", {}, "batch").request_id
    claim = queue.claim("w1")
    assert claim is not None and queue.release(claim)
    request = queue.get(request_id)
    assert (request.state, request.attempts) == ("pending", 0)
    again = queue.claim("w1")
    assert again is not None and again.attempt == 1


def test_the_queue_has_its_own_database_file(tmp_path: Path) -> None:
    from ai_sysadmin.config import Settings
    from ai_sysadmin.llm.queue import open_queue

    settings = Settings(ai_name="hal", state_dir=tmp_path / "state")
    queue = open_queue(settings)
    assert isinstance(queue, SqliteQueue)
    assert queue.path == tmp_path / "state" / "queue.db" != settings.db_path
    queue.close()


@pytest.mark.parametrize("priority", ["urgent", 7])
def test_an_unknown_priority_is_refused(queue: SqliteQueue, priority: object) -> None:
    from ai_sysadmin.llm.queue import QueueError

    with pytest.raises(QueueError, match="use one of interactive, autonomous, batch"):
        queue.submit("chat", {}, priority)  # type: ignore[arg-type]
    assert queue.stats().depth == 0


def test_a_queue_file_from_a_newer_program_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    queue = SqliteQueue(path)
    request = queue.submit("chat", {"q": 1}, "interactive").request_id
    queue.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(QueueError, match=r"queue schema version 99, newer than this program"):
        SqliteQueue(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM requests WHERE id=?",
                            (request,)).fetchone()[0] == 1


def test_answers_past_their_retention_are_deleted_while_the_queue_stays_open(
        queue: SqliteQueue) -> None:
    # a daemon opens its queue once and holds it for months
    from ai_sysadmin.errors import NotFoundError
    from ai_sysadmin.llm.queue.base import RETENTION_SECONDS

    old_id = queue.submit("chat", {"messages": ["x" * 1000]}, "batch").request_id
    claim = queue.claim("w1")
    assert claim is not None and queue.complete(claim, {"answer": "old"})
    with queue.db.transaction() as conn:  # a week and a day ago
        conn.execute("UPDATE requests SET finished_at = finished_at - ? WHERE id = ?",
                     (RETENTION_SECONDS + 86400, old_id))
    queue.prune_every_seconds = 0  # as when an hour has passed since the last pruning
    new_id = queue.submit("chat", {}, "batch").request_id
    claim = queue.claim("w1")
    assert claim is not None and queue.complete(claim, {"answer": "new"})
    with pytest.raises(NotFoundError):
        queue.get(old_id)
    assert queue.get(new_id).result == {"answer": "new"}


def test_an_answer_refused_after_the_queue_failed_its_last_attempt_is_said_refused(
        tmp_path: Path) -> None:
    """A worker's last attempt outlived its lease (a stalled loop), and the queue failed the
    request under that worker's name and attempt: its answer, refused, is no answer stored
    by a try whose reply was lost (False: the worker says it was refused)."""
    queue = SqliteQueue(tmp_path / "queue.db", lease_seconds=0.2, max_attempts=1)
    request_id = queue.submit("chat", {}, "autonomous").request_id
    claim = queue.claim("w1")
    assert claim is not None
    poll_until(lambda: queue.claim("w2") is None and queue.get(request_id).state == "failed",
               5, "the queue to fail the request whose lease ran out")
    assert asyncio.run(queue._stored(claim, {"answer": "late"}, None)) is False
    request = queue.get(request_id)
    assert (request.state, request.worker, request.result) == ("failed", "w1", None)
