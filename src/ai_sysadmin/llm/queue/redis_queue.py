"""The queue shared by workers on several machines: Redis through rq (python-rq).

rq does the queueing: one rq queue per priority, and a worker that listens on
``[interactive, autonomous, batch]`` takes jobs in that order (FIFO within each); a job's
execution is leased in rq's StartedJobRegistry and renewed by heartbeats; when a worker dies its
execution expires and rq's registry cleanup (run by any live worker, under rq's maintenance lock)
re-enqueues the job through ``Retry``.

What rq does not do, and this module adds in a few small atomic Lua scripts on one hash per
request: the request's own state (what callers read), coalescing, and answered-once. Each claim
records rq's execution id as a fencing token; a result is stored only when the token still
matches, so a worker that stalled past its lease and comes back cannot answer a second time.

rq's own work loop installs signal handlers and blocks on Redis without checking for a stop
request, so it only runs as a program's main thread. :meth:`RedisQueue.serve` instead drives an rq
``SimpleWorker`` per concurrency slot from a thread, with rq's public steps (``dequeue_any``,
``execute_job``, ``clean_registries``, heartbeats); the async handler runs on the caller's event
loop, where it was built.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

import redis
from rq import Queue, Retry, SimpleWorker, get_current_job
from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.timeouts import BaseDeathPenalty

from ...config import mask_secret_text
from ..types import Priority
from .base import (
    MAX_ATTEMPTS,
    RETENTION_SECONDS,
    STATS_WINDOW_SECONDS,
    Handler,
    QueueError,
    QueueStats,
    Request,
    RequestQueue,
    Submitted,
    as_priority,
    effective_state,
    empty_pending,
    exhausted_error,
    new_request_id,
    not_found,
    run_handler,
)

log = logging.getLogger("ai_sysadmin.service")

DEFAULT_NAMESPACE = "ai-sysadmin"
#: rq keeps a finished job this long; not 0, so that a worker that lost its lease and finishes
#: late finds the job still there and does not make rq retry it (the answer is ours, in the
#: request hash)
RQ_RESULT_TTL = 600
#: rq retries beyond our attempts: a worker stopped hard gives its request back through rq's
#: Retry without spending an attempt; crashes are bounded by ``max_attempts`` in the claim
RQ_SPARE_RETRIES = 20
#: seconds a worker blocks on Redis for the next job before it looks at its stop flag
DEQUEUE_BLOCK_SECONDS = 0.5
#: seconds between two heartbeats of an idle rq worker (its registration lives 420 s)
IDLE_HEARTBEAT_SECONDS = 10.0

_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state ~= 'pending' and state ~= 'in_flight' then return 'skip' end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
if attempts >= tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'state', 'failed', 'finished_at', ARGV[3], 'token', '',
             'lease_until', '', 'error', ARGV[8])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[6])
  if redis.call('GET', KEYS[3]) == ARGV[6] then redis.call('DEL', KEYS[3]) end
  redis.call('EXPIRE', KEYS[1], ARGV[7])
  return 'exhausted'
end
redis.call('HSET', KEYS[1], 'state', 'in_flight', 'token', ARGV[1], 'worker', ARGV[2],
           'started_at', ARGV[3], 'lease_until', ARGV[4], 'attempts', attempts + 1)
return 'claimed'
"""

_RENEW = """
if redis.call('HGET', KEYS[1], 'state') == 'in_flight'
   and redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
  return 1
end
return 0
"""

_COMPLETE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'in_flight'
   or redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'result', ARGV[3], 'error', ARGV[4],
           'finished_at', ARGV[5], 'token', '', 'lease_until', '')
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5] - ARGV[7])
if redis.call('GET', KEYS[3]) == ARGV[6] then redis.call('DEL', KEYS[3]) end
redis.call('EXPIRE', KEYS[1], ARGV[7])
return 1
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'state') == 'in_flight'
   and redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', 'pending', 'token', '', 'worker', '', 'lease_until', '')
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  return 1
end
return 0
"""

_CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
local lease = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '')
if state == 'pending' or (state == 'in_flight' and lease and lease < tonumber(ARGV[1])) then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[1], 'token', '',
             'lease_until', '')
  if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
"""


class _NoDeathPenalty(BaseDeathPenalty):
    """rq's job timeout is a SIGALRM, which works only in a main thread; the handler runs on the
    serving event loop with its own timeouts, and a lost worker is caught by the lease."""

    def setup_death_penalty(self) -> None:
        pass

    def cancel_death_penalty(self) -> None:
        pass


_current = threading.local()


class _Released(Exception):
    """The worker stopped before answering; rq re-enqueues the job (Retry)."""


class _Worker(SimpleWorker):
    death_penalty_class = _NoDeathPenalty
    log_result_lifespan = False

    def __init__(self, queues: list[Queue], *, name: str, bridge: _Bridge) -> None:
        super().__init__(
            queues, name=name, connection=bridge.queue.redis, log_job_description=False
        )
        self.bridge = bridge

    def get_heartbeat_ttl(self, job: Job) -> int:
        return self.bridge.queue.lease_ttl

    def procline(self, message: str) -> None:
        """Leave the host process's title alone (rq would rename it)."""

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        if isinstance(exc_info[1], _Released):
            log.info("LLM request %s: %s; back to its queue", job.id, exc_info[1])
            return
        super().handle_exception(job, *exc_info)

    def execute_job(self, job: Job, queue: Queue) -> None:
        _current.worker = self
        try:
            super().execute_job(job, queue)
        finally:
            _current.worker = None


def perform_request(request_id: str) -> None:
    """The rq job function: answer one request with the handler of the serving worker."""
    worker = getattr(_current, "worker", None)
    if not isinstance(worker, _Worker):
        raise QueueError(
            "requests of the ai-sysadmin queue are answered by `ai-sysadmin worker` (or the "
            "daemon's embedded worker), not by a plain rq worker"
        )
    worker.bridge.perform(worker, request_id)


class _Bridge:
    """Runs each claimed request's handler on the serving event loop; the rq worker thread waits
    for it and renews the lease meanwhile."""

    def __init__(
        self, queue: RedisQueue, handler: Handler, loop: asyncio.AbstractEventLoop, name: str
    ) -> None:
        self.queue = queue
        self.handler = handler
        self.loop = loop
        self.name = name
        self._lock = threading.Lock()
        self._futures: set[concurrent.futures.Future[Any]] = set()

    def cancel_all(self) -> None:
        with self._lock:
            for future in self._futures:
                future.cancel()

    def perform(self, worker: _Worker, request_id: str) -> None:
        q = self.queue
        token = worker.execution.id if worker.execution else secrets.token_hex(8)
        if q._claim(request_id, token, self.name) != "claimed":
            return
        request = q.get(request_id)
        job = get_current_job()
        future = asyncio.run_coroutine_threadsafe(run_handler(self.handler, request), self.loop)
        with self._lock:
            self._futures.add(future)
        try:
            while True:
                try:
                    result, error = future.result(timeout=q.heartbeat_seconds)
                    break
                except concurrent.futures.TimeoutError:
                    if not self.loop.is_running():  # the serving loop is gone: give it back
                        future.cancel()
                        q._release(request_id, token)
                        raise _Released(f"worker {self.name} lost its event loop") from None
                    if job is not None:
                        worker.maintain_heartbeats(job)
                    if not q._renew(request_id, token):
                        future.cancel()
                        log.warning("LLM request %s: lease lost by %s; its answer is not stored",
                                    request_id, self.name)
                        return
                except concurrent.futures.CancelledError:
                    q._release(request_id, token)
                    raise _Released(f"worker {self.name} stopped before answering") from None
        finally:
            with self._lock:
                self._futures.discard(future)
        if not q._complete(request_id, token, result, error):
            log.warning("LLM request %s: lease lost by %s; its late answer was refused",
                        request_id, self.name)


class RedisQueue(RequestQueue):
    def __init__(
        self,
        url: str,
        *,
        lease_seconds: float = 60.0,
        max_attempts: int = MAX_ATTEMPTS,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        self.url = url
        self.description = mask_secret_text(url)
        self.lease_seconds = lease_seconds
        self.lease_ttl = max(1, math.ceil(lease_seconds))
        self.heartbeat_seconds = max(0.2, self.lease_ttl / 3)
        self.max_attempts = max_attempts
        self.ns = namespace
        try:
            self.redis = redis.Redis.from_url(
                url, socket_connect_timeout=5, socket_timeout=15,
                health_check_interval=30,
            )
            self.redis.ping()
        except (redis.RedisError, ValueError) as exc:
            raise QueueError(f"cannot reach the queue at {self.description}: {exc}") from exc
        self.queues = [
            Queue(f"{namespace}-{p.name.lower()}", connection=self.redis,
                  death_penalty_class=_NoDeathPenalty)
            for p in sorted(Priority)
        ]
        self._scripts = {
            name: self.redis.register_script(text)
            for name, text in (("claim", _CLAIM), ("renew", _RENEW), ("complete", _COMPLETE),
                               ("release", _RELEASE), ("cancel", _CANCEL))
        }

    # -- keys -------------------------------------------------------------------------------

    def _rec(self, request_id: str) -> str:
        return f"{self.ns}:req:{request_id}"

    def _ckey(self, coalesce_key: str | None) -> str:
        # a key that never exists stands for "no coalescing key" (Lua needs a key name)
        return f"{self.ns}:coalesce:{coalesce_key}" if coalesce_key else f"{self.ns}:no-coalesce"

    @property
    def _finished(self) -> str:
        return f"{self.ns}:finished"

    # -- callers ----------------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        payload: Mapping[str, Any],
        priority: Priority | str | int,
        coalesce_key: str | None = None,
    ) -> Submitted:
        prio = as_priority(priority)
        body = json.dumps(dict(payload))
        queue = self.queues[int(prio)]
        try:
            with self.redis.pipeline() as pipe:
                while True:
                    try:
                        if coalesce_key:
                            existing = self._active_coalesced(pipe, coalesce_key)
                            if existing is not None:
                                pipe.reset()
                                return Submitted(existing, coalesced=True)
                        request_id = new_request_id()
                        pipe.multi()
                        pipe.hset(self._rec(request_id), mapping={
                            "id": request_id, "kind": kind, "priority": int(prio),
                            "payload": body, "state": "pending", "created_at": repr(time.time()),
                            "attempts": 0, "coalesce_key": coalesce_key or "",
                        })
                        if coalesce_key:
                            pipe.set(self._ckey(coalesce_key), request_id)
                        queue.enqueue_call(
                            perform_request, args=(request_id,), job_id=request_id, timeout=-1,
                            result_ttl=RQ_RESULT_TTL, failure_ttl=RETENTION_SECONDS,
                            retry=Retry(max=self.max_attempts + RQ_SPARE_RETRIES,
                                        enqueue_at_front=True),
                            description=f"LLM {kind} request", pipeline=pipe,
                        )
                        pipe.execute()
                        return Submitted(request_id, coalesced=False)
                    except redis.WatchError:
                        continue
        except redis.RedisError as exc:
            raise QueueError(f"cannot add a request to {self.description}: {exc}") from exc

    def _active_coalesced(self, pipe: Any, coalesce_key: str) -> str | None:
        """The pending or in-flight request holding ``coalesce_key``; WATCHes what it read."""
        ckey = self._ckey(coalesce_key)
        pipe.watch(ckey)
        raw = pipe.get(ckey)
        if raw is None:
            return None
        existing = raw.decode()
        pipe.watch(self._rec(existing))
        state, lease = pipe.hmget(self._rec(existing), "state", "lease_until")
        if state is None:
            return None
        live = effective_state(state.decode(), _float(lease), time.time())
        return existing if live in ("pending", "in_flight") else None

    def get(self, request_id: str) -> Request:
        try:
            raw = self.redis.hgetall(self._rec(request_id))
        except redis.RedisError as exc:
            raise QueueError(f"cannot read from {self.description}: {exc}") from exc
        if not raw:
            raise not_found(request_id)
        return self._request(raw, time.time())

    def cancel(self, request_id: str) -> bool:
        request = self.get(request_id)
        cancelled = self._scripts["cancel"](
            keys=[self._rec(request_id), self._ckey(request.coalesce_key)],
            args=[repr(time.time()), request_id, RETENTION_SECONDS],
        )
        if cancelled:
            with contextlib.suppress(redis.RedisError):
                self.queues[int(request.priority)].remove(request_id)
        return bool(cancelled)

    def requests_ahead(self, request: Request) -> int | None:
        index = int(request.priority)
        try:
            position = self.redis.lpos(self.queues[index].key, request.id)
            if position is None:
                return None
            return int(position) + sum(self.redis.llen(q.key) for q in self.queues[:index])
        except redis.RedisError:
            return None

    def stats(self) -> QueueStats:
        now = time.time()
        pending = empty_pending()
        oldest_created: float | None = None
        in_flight: list[Request] = []

        def seen_pending(request: Request) -> None:
            nonlocal oldest_created
            pending[request.priority.name.lower()] += 1
            if oldest_created is None or request.created_at < oldest_created:
                oldest_created = request.created_at

        try:
            for prio, queue in zip(sorted(Priority), self.queues, strict=True):
                # queued in rq: counted, the oldest is the head of the list
                pending[prio.name.lower()] += self.redis.llen(queue.key)
                head = self.redis.lindex(queue.key, 0)
                for request in self._many([head.decode()] if head else [], now):
                    if oldest_created is None or request.created_at < oldest_created:
                        oldest_created = request.created_at
                # leased in rq: in flight, or pending again once the lease expired
                started = StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)
                for request in self._many(started, now):
                    if request.state == "pending":
                        seen_pending(request)
                    elif request.state == "in_flight":
                        in_flight.append(request)
            since = now - STATS_WINDOW_SECONDS
            finished = [i.decode() for i in self.redis.zrangebyscore(self._finished, since, "+inf")]
            recent = self._many(finished, now)
        except redis.RedisError as exc:
            raise QueueError(f"cannot read from {self.description}: {exc}") from exc
        waits = [r.wait_seconds for r in recent
                 if r.state in ("done", "failed") and r.wait_seconds is not None]
        return QueueStats(
            backend=self.description,
            pending=pending,
            in_flight=len(in_flight),
            oldest_pending_age=None if oldest_created is None else now - oldest_created,
            mean_wait_last_hour=sum(waits) / len(waits) if waits else None,
            done_last_hour=sum(r.state == "done" for r in recent),
            failed_last_hour=sum(r.state == "failed" for r in recent),
            in_flight_requests=sorted(in_flight, key=lambda r: (r.priority, r.id)),
        )

    def _many(self, ids: list[str], now: float) -> list[Request]:
        if not ids:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for request_id in dict.fromkeys(ids):
                pipe.hgetall(self._rec(request_id))
            return [self._request(raw, now) for raw in pipe.execute() if raw]

    def close(self) -> None:
        self.redis.close()

    # -- the fenced steps of one attempt (called from rq worker threads) ----------------------

    def _claim(self, request_id: str, token: str, worker: str) -> str:
        rec = self._rec(request_id)
        coalesce_key, attempts, last = self.redis.hmget(rec, "coalesce_key", "attempts", "worker")
        now = time.time()
        status = self._scripts["claim"](
            keys=[rec, self._finished, self._ckey(_text(coalesce_key))],
            args=[token, worker, repr(now), math.floor(now) + self.lease_ttl, self.max_attempts,
                  request_id, RETENTION_SECONDS,
                  exhausted_error(int(attempts or 0), _text(last))],
        )
        return status.decode() if isinstance(status, bytes) else str(status)

    def _renew(self, request_id: str, token: str) -> bool:
        lease_until = math.floor(time.time()) + self.lease_ttl
        return bool(self._scripts["renew"](keys=[self._rec(request_id)],
                                           args=[token, lease_until]))

    def _complete(
        self, request_id: str, token: str, result: dict[str, Any] | None, error: str | None
    ) -> bool:
        coalesce_key = _text(self.redis.hget(self._rec(request_id), "coalesce_key"))
        stored = bool(self._scripts["complete"](
            keys=[self._rec(request_id), self._finished, self._ckey(coalesce_key)],
            args=[token, "failed" if error is not None else "done", json.dumps(result),
                  error or "", repr(time.time()), request_id, RETENTION_SECONDS],
        ))
        self._wake()
        return stored

    def _release(self, request_id: str, token: str) -> bool:
        return bool(self._scripts["release"](keys=[self._rec(request_id)], args=[token]))

    # -- workers ----------------------------------------------------------------------------

    def live_workers(self) -> int:
        # rq keeps a registry of workers with heartbeats; ours listen on our three queues
        names = {q.name for q in self.queues}
        return sum(1 for w in SimpleWorker.all(connection=self.redis)
                   if names & set(w.queue_names()))

    async def serve(
        self,
        handler: Handler,
        *,
        concurrency: int = 1,
        worker_name: str,
        stop: asyncio.Event,
    ) -> None:
        if concurrency < 1:
            raise QueueError(f"concurrency must be at least 1, not {concurrency}")
        loop = asyncio.get_running_loop()
        bridge = _Bridge(self, handler, loop, worker_name)
        halt = threading.Event()
        suffix = f"{os.getpid()}-{secrets.token_hex(3)}"
        workers = [
            _Worker(self.queues, name=f"{worker_name}-{suffix}-{slot}", bridge=bridge)
            for slot in range(concurrency)
        ]
        pool = concurrent.futures.ThreadPoolExecutor(concurrency, thread_name_prefix="llm-queue")
        threads = [loop.run_in_executor(pool, self._work, w, halt) for w in workers]
        stop_task = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({stop_task, *threads},
                                         return_when=asyncio.FIRST_COMPLETED)
            for thread in done - {stop_task}:
                thread.result()  # a worker thread ended by itself: raise its error
        except asyncio.CancelledError:
            bridge.cancel_all()
            raise
        finally:
            halt.set()
            stop_task.cancel()
            await asyncio.gather(*threads, return_exceptions=True)
            pool.shutdown(wait=False)

    def _work(self, worker: _Worker, halt: threading.Event) -> None:
        """One concurrency slot: rq's dequeue (priority order) and execution, until halted."""
        worker.register_birth()
        next_clean = next_beat = 0.0
        backoff = 0.5
        try:
            while not halt.is_set():
                try:
                    if time.monotonic() >= next_clean:
                        # rq's recovery of jobs whose worker died: expired executions go back
                        # to their queue (Retry); one worker at a time under rq's lock
                        worker.clean_registries()
                        next_clean = time.monotonic() + max(1.0, self.lease_ttl / 2)
                    if time.monotonic() >= next_beat:
                        worker.heartbeat()
                        next_beat = time.monotonic() + IDLE_HEARTBEAT_SECONDS
                    got = Queue.dequeue_any(
                        self.queues, DEQUEUE_BLOCK_SECONDS, connection=self.redis,
                        death_penalty_class=_NoDeathPenalty,
                    )
                except DequeueTimeout:
                    continue
                except redis.ConnectionError as exc:
                    log.warning("queue %s unreachable (%s); retrying in %.1f s",
                                self.description, exc, backoff)
                    halt.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = 0.5
                if got is not None:
                    worker.execute_job(*got)
        finally:
            with contextlib.suppress(redis.RedisError):
                worker.register_death()

    # -- helpers ----------------------------------------------------------------------------

    def _request(self, raw: dict[bytes, bytes], now: float) -> Request:
        get = {k.decode(): v.decode() for k, v in raw.items()}
        attempts = int(get.get("attempts") or 0)
        lease = _float(get.get("lease_until"))
        stored = get.get("state", "pending")
        state = effective_state(stored, lease, now)
        result = json.loads(get["result"]) if get.get("result") else None
        return Request(
            id=get["id"],
            kind=get.get("kind", ""),
            priority=Priority(int(get.get("priority", Priority.BATCH))),
            payload=json.loads(get.get("payload") or "{}"),
            state=state,  # type: ignore[arg-type]
            created_at=float(get.get("created_at") or 0),
            started_at=_float(get.get("started_at")),
            finished_at=_float(get.get("finished_at")),
            attempts=attempts,
            worker=get.get("worker") or None,
            coalesce_key=get.get("coalesce_key") or None,
            result=result,
            error=get.get("error") or None,
            lease_until=lease if state == "in_flight" else None,
        )


def _float(value: str | bytes | None) -> float | None:
    if value is None or value in ("", b""):
        return None
    return float(value)


def _text(value: bytes | None) -> str | None:
    return value.decode() if value else None
