"""A worker process for the crash tests: ``serve_queue`` with a scripted handler.

usage: worker_proc.py QUEUE_URL STATE_DIR LEASE_SECONDS NAME

The handler appends ``start NAME ID ATTEMPT`` and ``finish NAME ID`` to the file named by the
request's ``log`` payload; on a request's first attempt it first sleeps ``first_sleep`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from ai_sysadmin.cli.queue_cmd import serve_queue
from ai_sysadmin.config import QueueSettings, Settings
from ai_sysadmin.llm.queue import Handler, Request


def append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def main() -> None:
    url, state_dir, lease, name = sys.argv[1:5]
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s: %(message)s")
    settings = Settings(
        ai_name="hal", state_dir=Path(state_dir),
        queue=QueueSettings(url=url, lease_seconds=float(lease)),
    )

    def factory(_: Settings) -> Handler:
        async def handle(request: Request) -> dict[str, Any]:
            log = request.payload["log"]
            append(log, f"start {name} {request.id} {request.attempts}")
            if request.attempts == 1:
                await asyncio.sleep(float(request.payload.get("first_sleep", 0)))
            append(log, f"finish {name} {request.id}")
            return {"worker": name}

        return handle

    asyncio.run(serve_queue(settings, factory, concurrency=1, worker_name=name))


if __name__ == "__main__":
    main()
