"""The queue shared by workers on several machines: Redis, with the same leases as SQLite.

One hash per request holds what callers read; a sorted set holds the pending requests by
priority, then arrival; another the leases by expiry. Each step that reads then writes (submit
with coalescing, claim with the recovery of expired leases, renew, complete, release, cancel) is
one Lua script (``redis_scripts.py``): atomic, one round trip. As in SQLite the worker and the
attempt number fence renewing, completing and releasing, so a worker that lost its lease cannot
answer a second time. An idle worker blocks on a list of work notices, so a request submitted on
another machine starts at once.

The scripts reach request hashes by names they build themselves, which a standalone Redis (or
one behind Sentinel) allows and Redis Cluster does not.

Every time in the queue is the Redis server's (``TIME``), so what is read is judged by that
clock too (:meth:`RedisQueue.now`): whether a lease has expired, how long a request has waited.
This machine's clock may be minutes or hours off the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis

from ...config import mask_secret_text
from ..types import Priority
from .base import (
    EXHAUSTED_ERROR,
    FAILED_SHOWN,
    MAX_ATTEMPTS,
    RETENTION_SECONDS,
    STATS_WINDOW_SECONDS,
    QueueError,
    QueueStats,
    QueueUnreachable,
    Request,
    Submitted,
    effective_state,
    empty_pending,
    not_found,
)
from .leases import WORKER_SILENCE_SECONDS, Claim, LeasedQueue, Notice
from .redis_scripts import KEYS, SCORE_STEP, SCRIPTS

log = logging.getLogger("ai_sysadmin.service")

DEFAULT_NAMESPACE = "ai-sysadmin"

T = TypeVar("T")


class RedisQueue(LeasedQueue):
    #: a server that hangs holds a call for its socket timeout: never on an event loop
    remote = True

    def __init__(
        self,
        url: str,
        *,
        lease_seconds: float = 60.0,
        max_attempts: int = MAX_ATTEMPTS,
        namespace: str = DEFAULT_NAMESPACE,
        idle_poll: float = 0.5,
        reach_now: bool = True,
    ) -> None:
        """``reach_now``: the server must answer now (:meth:`reach`); a service passes False
        and waits for one that is not up yet."""
        self.url = url
        self.description = mask_secret_text(url)
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.idle_poll = idle_poll
        self.prefix = f"{namespace}:"
        self.keys = {name: self.prefix + name for name in KEYS}
        try:
            self.redis = redis.Redis.from_url(
                url, decode_responses=True, socket_connect_timeout=5, socket_timeout=15,
                health_check_interval=30,
            )
        except (redis.RedisError, ValueError) as exc:
            raise QueueError(f"cannot reach the queue at {self.description}: {exc}") from exc
        if reach_now:
            self.reach()
        self._scripts = {name: self.redis.register_script(text) for name, text in SCRIPTS.items()}

    def reach(self) -> None:
        try:
            self.redis.ping()
        except (redis.AuthenticationError, redis.exceptions.AuthorizationError) as exc:
            # a password or ACL the server refuses: the config's to mend, not the server's
            raise QueueError(f"the queue at {self.description} refused the login: {exc}") from exc
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # not up yet (a reboot may start it after us), a network still coming up
            raise QueueUnreachable(
                f"cannot reach the queue at {self.description}: {exc}") from exc
        except redis.RedisError as exc:
            raise QueueError(f"cannot reach the queue at {self.description}: {exc}") from exc

    def _run(self, script: str, *args: str | int | float, doing: str) -> Any:
        try:
            return self._scripts[script](keys=list(self.keys.values()), args=[self.prefix, *args])
        except redis.RedisError as exc:
            raise _failure(exc, f"cannot {doing} in the queue {self.description}") from exc

    def eviction_policy(self) -> str | None:
        """The server's ``maxmemory-policy``; None where it will not say (a managed Redis
        that refuses CONFIG)."""
        try:
            said = self.redis.config_get("maxmemory-policy")
        except redis.RedisError:
            return None
        return said.get("maxmemory-policy") if isinstance(said, dict) else None

    def _serving_starts(self) -> None:
        """A server that evicts keys when its memory is full drops requests that wait (and
        the answers their callers have yet to read): said as the worker starts."""
        policy = self.eviction_policy()
        if policy is not None and policy != "noeviction":
            log.warning("the queue %s has maxmemory-policy %s: once its memory is full it "
                        "evicts keys, requests that wait or answers not yet read; set it to "
                        "noeviction (a full queue then refuses writes, saying why, and loses "
                        "nothing)", self.description, policy,
                        extra={"event": "queue_evicts"})

    def _rec(self, request_id: str) -> str:
        return f"{self.prefix}request:{request_id}"

    def close(self) -> None:
        self.redis.close()

    # -- callers ----------------------------------------------------------------------------

    def _add(self, kind: str, body: str, priority: Priority, key: str | None,
             request_id: str) -> Submitted:
        request_id, coalesced = self._run(
            "submit", request_id, kind, int(priority), body, key or "", self.max_attempts,
            EXHAUSTED_ERROR, RETENTION_SECONDS, doing="add a request",
        )
        return Submitted(request_id, coalesced=bool(coalesced))

    def now(self) -> float:
        return _clock(self._read(lambda r: r.time()))

    def get(self, request_id: str) -> Request:
        def read(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            pipe.hgetall(self._rec(request_id))
            pipe.time()
            return pipe.execute()

        fields, now = self._read(read)
        if not _whole(fields):  # gone, or left a part of by a server that evicts keys
            raise not_found(request_id)
        return _request(fields, _clock(now))

    def _finished(self, request_id: str) -> bool:
        # polled by wait(): the state alone, not the whole conversation in the payload
        state = self._read(lambda r: r.hget(self._rec(request_id), "state"))
        # none: the request is gone (the data lost), which no more polling brings back
        return state in (None, "done", "failed", "cancelled")

    def cancel(self, request_id: str) -> bool:
        return self._cancel(request_id, "cancel a request")

    def abandon(self, request_id: str) -> bool:
        return self._cancel(request_id, "abandon a request", unjoined=True)

    def _cancel(self, request_id: str, doing: str, unjoined: bool = False) -> bool:
        cancelled = self._run("cancel", request_id, self.max_attempts, EXHAUSTED_ERROR,
                              RETENTION_SECONDS, int(unjoined), doing=doing)
        self._wake()
        return bool(cancelled)

    def pending_keyed(self, coalesce_key: str) -> list[str]:
        def read(r: redis.Redis) -> list[tuple[str, str | None]]:
            ids = r.zrange(self.keys["pending"], 0, -1)
            pipe = r.pipeline(transaction=False)
            for request_id in ids:
                pipe.hget(self._rec(request_id), "coalesce_key")
            return list(zip(ids, pipe.execute(), strict=True))

        # a stored key is the caller's, '#', the content's digest (content_key)
        return [request_id for request_id, key in self._read(read)
                if key and key.rpartition("#")[0] == coalesce_key]

    def requests_ahead(self, request: Request) -> int | None:
        rank = self._read(lambda r: r.zrank(self.keys["pending"], request.id))
        return None if rank is None else int(rank)

    def stats(self) -> QueueStats:
        now = self.now()
        pending = empty_pending()
        created: list[float] = []
        in_flight: list[Request] = []
        counts, heads, leased, recent, recent_ids = self._snapshot(now)
        for prio, count in zip(sorted(Priority), counts, strict=True):
            pending[prio.name.lower()] += count
        created += [float(c) for c in heads if c]
        for request in leased:  # in flight, or pending again once its lease expired
            if request.state == "in_flight":
                in_flight.append(request)
            else:
                pending[request.priority.name.lower()] += 1
                created.append(request.created_at)
        # a clock set back between a request's submission and its start waited no less than 0 s
        waits = [max(0.0, float(start) - float(made)) for state, made, start in recent
                 if state in ("done", "failed") and start]
        return QueueStats(
            backend=self.description,
            pending=pending,
            in_flight=len(in_flight),
            oldest_pending_age=max(0.0, now - min(created)) if created else None,
            mean_wait_last_hour=sum(waits) / len(waits) if waits else None,
            done_last_hour=sum(state == "done" for state, _, _ in recent),
            failed_last_hour=sum(state == "failed" for state, _, _ in recent),
            in_flight_requests=sorted(in_flight, key=lambda r: (r.priority, r.id)),
            failed_requests=self._failed(recent_ids, recent, now),
        )

    def _failed(self, ids: list[str], recent: list[list[str | None]], now: float
                ) -> list[Request]:
        """The failed ones of the last hour's finished ``ids`` (oldest first, as the finished
        set orders them; ``recent``: their state first), newest first, at most
        :data:`FAILED_SHOWN`."""
        failed = [i for i, fields in zip(ids, recent, strict=True) if fields[0] == "failed"]
        newest = failed[::-1][:FAILED_SHOWN]
        if not newest:
            return []

        def read(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for request_id in newest:
                pipe.hgetall(self._rec(request_id))
            return pipe.execute()

        return [_request(f, now) for f in self._read(read) if _whole(f)]

    def _snapshot(
        self, now: float
    ) -> tuple[list[int], list[str | None], list[Request], list[list[str | None]], list[str]]:
        """Pending counts per priority, the creation times of each priority's oldest, the
        leased requests, (state, created, started) of those finished in the last hour, and
        their ids."""
        pending, leases = self.keys["pending"], self.keys["leases"]
        bands = [(int(p) * SCORE_STEP, f"({(int(p) + 1) * SCORE_STEP}") for p in sorted(Priority)]

        def first(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for low, high in bands:
                pipe.zcount(pending, low, high)
            for low, high in bands:
                pipe.zrangebyscore(pending, low, high, start=0, num=1)
            pipe.zrange(leases, 0, -1)
            pipe.zrangebyscore(self.keys["finished"], now - STATS_WINDOW_SECONDS, "+inf")
            return pipe.execute()

        replies = self._read(first)
        counts, heads = replies[:3], [ids[0] for ids in replies[3:6] if ids]
        leased_ids, recent_ids = replies[6], replies[7]

        def second(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for request_id in heads:
                pipe.hget(self._rec(request_id), "created_at")
            for request_id in leased_ids:
                pipe.hgetall(self._rec(request_id))
            for request_id in recent_ids:
                pipe.hmget(self._rec(request_id), ["state", "created_at", "started_at"])
            return pipe.execute()

        rest = self._read(second)
        leased = [_request(f, now) for f in rest[len(heads):len(heads) + len(leased_ids)]
                  if _whole(f)]
        return (counts, rest[:len(heads)], leased, rest[len(heads) + len(leased_ids):],
                list(recent_ids))

    def _read(self, read: Callable[[redis.Redis], T]) -> T:
        try:
            return read(self.redis)
        except redis.RedisError as exc:
            raise _failure(exc, f"cannot read the queue {self.description}") from exc

    # -- workers: the fenced steps ----------------------------------------------------------

    def claim(self, worker: str, only: Sequence[str] | None = None,
              most: Priority | None = None) -> Claim | None:
        under = "" if most is None else f"({(int(most) + 1) * SCORE_STEP}"
        back, fields, lost = self._run(
            "claim", worker, self.lease_seconds, self.max_attempts, EXHAUSTED_ERROR,
            RETENTION_SECONDS, under, int(only is not None), *(only or ()),
            doing="claim a request",
        )
        for request_id, last in zip(back[::2], back[1::2], strict=True):
            log.warning("LLM request %s: lease of worker %s expired; back to pending",
                        request_id, last)
        for request_id in lost:
            log.error("LLM request %s: lost, its data gone from the queue %s (a server "
                      "whose maxmemory-policy evicts keys?); dropped", request_id,
                      self.description, extra={"event": "request_lost"})
        if not fields:
            return None
        claimed = dict(zip(fields[::2], fields[1::2], strict=True))
        # judged at the claim's own time, on the server's clock
        request = _request(claimed, float(claimed["started_at"]))
        return Claim(request, worker, request.attempts)

    def renew(self, claim: Claim) -> bool:
        return bool(self._run("renew", claim.request.id, claim.worker, claim.attempt,
                              self.lease_seconds, doing="renew a lease"))

    def complete(
        self, claim: Claim, result: dict[str, Any] | None = None, error: str | None = None
    ) -> bool:
        stored = self._run(
            "complete", claim.request.id, claim.worker, claim.attempt,
            "failed" if error is not None else "done",
            "" if result is None else json.dumps(result), error or "", RETENTION_SECONDS,
            doing="store an answer",
        )
        self._wake()
        return bool(stored)

    def release(self, claim: Claim) -> bool:
        released = self._run("release", claim.request.id, claim.worker, claim.attempt,
                             doing="give a request back")
        self._wake()
        return bool(released)

    def announce(self, worker: str, serving: bool, says: str = "") -> None:
        self._run("announce", worker, int(serving), WORKER_SILENCE_SECONDS, says,
                  doing="announce a worker")

    def live_workers(self) -> int:
        return int(self._run("live_workers", WORKER_SILENCE_SECONDS, doing="count workers"))

    def workers_say(self) -> dict[str, str]:
        flat = self._run("workers_say", WORKER_SILENCE_SECONDS, doing="read what workers say")
        return dict(zip(flat[::2], flat[1::2], strict=True))

    @contextlib.asynccontextmanager
    async def _notices(self) -> AsyncIterator[Notice | None]:
        # its own connection on the serving loop: a blocking pop there can be cancelled
        client = aioredis.Redis.from_url(
            self.url, socket_connect_timeout=5, socket_timeout=self.idle_poll + 15)

        async def notice() -> object:
            try:
                return await client.blpop([self.keys["work"]], timeout=self.idle_poll)
            except redis.RedisError:
                # unreachable: the next claim says so and backs off; this only paces the loop
                await asyncio.sleep(self.idle_poll)
                return None

        try:
            yield notice
        finally:
            await client.aclose()


#: the fields every request's hash has from its submission on
_MADE_WITH = ("id", "kind", "priority", "payload", "state", "created_at")


def _whole(fields: Mapping[str, str] | None) -> bool:
    """Whether a request's hash is whole: a server that evicts keys may have left a part."""
    return bool(fields) and all(name in fields for name in _MADE_WITH)  # type: ignore[union-attr]


def _failure(exc: redis.RedisError, doing: str) -> QueueError:
    """``exc`` said as the queue's error: a server that does not answer now (down, restarting,
    still loading its data) is :class:`QueueUnreachable`, which a caller may wait out."""
    unreachable = isinstance(exc, (redis.ConnectionError, redis.TimeoutError)) and not \
        isinstance(exc, (redis.AuthenticationError, redis.exceptions.AuthorizationError))
    return (QueueUnreachable if unreachable else QueueError)(f"{doing}: {exc}")


def _request(fields: Mapping[str, str], now: float) -> Request:
    lease = _float(fields.get("lease_until"))
    state = effective_state(fields["state"], lease, now)
    return Request(
        id=fields["id"],
        kind=fields["kind"],
        priority=Priority(int(fields["priority"])),
        payload=json.loads(fields["payload"]),
        state=state,  # type: ignore[arg-type]
        created_at=float(fields["created_at"]),
        started_at=_float(fields.get("started_at")),
        finished_at=_float(fields.get("finished_at")),
        attempts=int(fields.get("attempts") or 0),
        worker=fields.get("worker") or None,
        coalesce_key=fields.get("coalesce_key") or None,
        result=json.loads(fields["result"]) if fields.get("result") else None,
        error=fields.get("error") or None,
        lease_until=lease if state == "in_flight" else None,
    )


def _clock(reply: tuple[int, int]) -> float:
    """The server's ``TIME`` (seconds, microseconds) as seconds."""
    seconds, micros = reply
    return seconds + micros / 1_000_000


def _float(value: str | None) -> float | None:
    return float(value) if value else None

