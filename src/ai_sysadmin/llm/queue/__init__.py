"""The LLM request queue: every LLM request goes through one queue, served by workers.

``queue.url = "sqlite://"`` (default): a durable SQLite file ``state_dir/queue.db``, for one
machine. ``sqlite:///path/to/file.db`` names another file. ``redis://host:port/db`` (or
``rediss://``): a Redis server shared by workers on several machines, with the same leases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from ...config import Settings, mask_secret_text
from .base import (
    MAX_ATTEMPTS,
    Handler,
    NoWorker,
    QueueError,
    QueueStats,
    QueueTimeout,
    QueueUnreachable,
    Request,
    RequestCancelled,
    RequestLost,
    RequestQueue,
    Submitted,
)

log = logging.getLogger("ai_sysadmin.service")

#: what ``ai-sysadmin worker`` calls to build its handler from the settings
HandlerFactory = Callable[[Settings], Handler]

__all__ = [
    "MAX_ATTEMPTS",
    "Handler",
    "HandlerFactory",
    "NoWorker",
    "QueueError",
    "QueueStats",
    "QueueTimeout",
    "QueueUnreachable",
    "RequestCancelled",
    "RequestLost",
    "Request",
    "RequestQueue",
    "Submitted",
    "check_opens",
    "describe_queue",
    "open_for_service",
    "open_queue",
    "queue_db_path",
    "queue_file",
]


def queue_db_path(settings: Settings) -> Path:
    return settings.state_dir / "queue.db"


def queue_file(settings: Settings) -> Path | None:
    """The SQLite file ``queue.url`` names (``state_dir/queue.db`` for a bare 'sqlite://');
    None for a Redis queue."""
    parts = urlsplit(settings.queue.url)
    if parts.scheme.lower() != "sqlite":
        return None
    return Path(parts.path) if parts.path not in ("", "/") else queue_db_path(settings)


def describe_queue(settings: Settings) -> str:
    """Where the queue lives, secrets masked, without opening it."""
    url = settings.queue.url
    if urlsplit(url).scheme.lower() == "sqlite" and urlsplit(url).path in ("", "/"):
        return f"sqlite://{queue_db_path(settings)}"
    return mask_secret_text(url)


def open_queue(settings: Settings, reach_now: bool = True, service: bool = False
               ) -> RequestQueue:
    """The queue named by ``settings.queue.url``; an unknown scheme is an error, never a
    silent default. ``reach_now=False``: a server that does not answer yet is no error here
    (the daemon and the worker start and wait for it, :meth:`RequestQueue.reach`).
    ``service``: opened by the daemon or the worker, which upgrade a queue file of an older
    schema (:class:`~ai_sysadmin.store.db.Database`)."""
    url = settings.queue.url
    scheme = urlsplit(url).scheme.lower()
    lease = settings.queue.lease_seconds
    if scheme == "sqlite":
        from .sqlite import SqliteQueue

        return SqliteQueue(_named_file(settings), lease_seconds=lease, service=service)
    if scheme in ("redis", "rediss"):
        from .redis_queue import RedisQueue

        return RedisQueue(url, lease_seconds=lease, reach_now=reach_now)
    raise QueueError(
        f"queue.url {mask_secret_text(url)!r}: unknown scheme {scheme or '(none)'!r}; use "
        "'sqlite://' (a file in state_dir), 'sqlite:///path/queue.db' or 'redis://host:port/db'"
    )


def _named_file(settings: Settings) -> Path:
    """The file a ``sqlite:`` ``queue.url`` names; one that names a host is an error."""
    url = settings.queue.url
    parts = urlsplit(url)
    if parts.netloc:
        raise QueueError(
            f"queue.url {url!r}: a queue file is named by an absolute path, "
            f"'sqlite:///{parts.netloc}{parts.path}'; 'sqlite://' alone means "
            "state_dir/queue.db"
        )
    return Path(parts.path) if parts.path not in ("", "/") else queue_db_path(settings)


def check_opens(settings: Settings) -> None:
    """Raise what :func:`open_for_service` would refuse of ``settings.queue.url``, changing
    nothing: a queue file read-only to this user or damaged (nothing made where it is not
    there yet), a Redis server that refuses the login. A server that does not answer is no
    refusal, as it is none at a start."""
    if urlsplit(settings.queue.url).scheme.lower() == "sqlite":
        from ...errors import StoreError
        from ...store.db import check_opens as file_opens

        try:
            file_opens(_named_file(settings), "queue")
        except StoreError as exc:
            raise QueueError(str(exc)) from exc
        return
    queue = open_queue(settings, reach_now=False)
    try:
        queue.reach()
    except QueueUnreachable:
        pass
    finally:
        queue.close()


def open_for_service(settings: Settings, waiting: str) -> RequestQueue:
    """The queue of a service that runs for days (the daemon, the worker). A server that does
    not answer yet is said once, with ``waiting`` (what waits for it), and no error: after a
    reboot Redis may start after us, and the queue's calls are tried again with backoff
    (the worker's claims, the investigations) while the daemon goes on checking hosts. A
    server that refuses the login, or a URL that cannot work, is still an error."""
    queue = open_queue(settings, reach_now=False, service=True)
    try:
        queue.reach()
    except QueueUnreachable as exc:
        log.warning("%s; %s", str(exc).rstrip("."), waiting, extra={"event": "queue_unreachable"})
    except BaseException:
        queue.close()
        raise
    return queue
