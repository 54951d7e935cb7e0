"""What the queue's workers say of the LLM they serve (:mod:`..llm.readiness`), for
``llm status``, ``chat``'s warning and ``queue``: they answer the questions and
investigations, with their own ``llm`` settings."""

from __future__ import annotations

import time

from ..config import Settings, mask_url
from ..errors import AiSysadminError
from ..llm.queue import open_queue, queue_file
from ..llm.readiness import Served, heard
from ..monitor.findings import masked, strip_control
from .context import out


def workers_word(settings: Settings) -> tuple[dict[str, Served], str | None]:
    """What the queue's live workers say of the LLM they serve, and why the queue could not
    be read (None: it was)."""
    if (file := queue_file(settings)) is not None and not file.exists():
        return {}, None  # no worker has served it: not made here, by a command that reads
    try:
        queue = open_queue(settings)
    except AiSysadminError as exc:
        return {}, str(exc)
    try:
        return heard(queue.workers_say()), None
    except AiSysadminError as exc:
        return {}, str(exc)
    finally:
        queue.close()


def worker_line(name: str, served: Served, now: float) -> str:
    """``  NAME: LLM ... at URL, model M: ready (known 3 s ago)``: what another process
    wrote, masked again and made one printable line."""
    verdict = ("not asked yet" if served.ready is None else "ready" if served.ready
               else f"not ready: {masked(served.detail) or 'no answer'}")
    since = f" (known {max(0, round(now - served.at))} s ago)" if served.at else ""
    line = f"{name}: LLM {served.backend} at {mask_url(served.url)}, model {served.model}: " \
           f"{verdict}{since}"
    return "  " + " ".join(strip_control(line).split())


def print_workers(workers: dict[str, Served], unread: str | None) -> None:
    if unread is not None:
        out.print(f"the queue's workers: unknown, the queue cannot be read: {masked(unread)}",
                  markup=False, highlight=False)
        return
    if not workers:
        out.print("the queue's workers: none says which LLM it serves (none runs, or they "
                  "run an older version)", markup=False, highlight=False)
        return
    out.print("the queue's workers, which answer questions and investigations:", markup=False)
    now = time.time()
    for name, served in sorted(workers.items()):
        out.print(worker_line(name, served, now), markup=False, highlight=False)
