"""What the knowledge base costs the daemon's memory, and what closing it while idle gives back:
resident memory (RSS) of a fresh process at each step, the opened store the baseline.

    .venv/bin/python bench/knowledge_memory.py [--runs 3]

Each run is a new process (a process's memory never shrinks to where it was): the modules the
daemon has at its start; the store opened (seeded) and searched, as a first investigation
does; closed as the daemon closes it after `knowledge.close_after_seconds` unused
(`knowledge.context.close_idle`); opened and searched again, as the next investigation does;
closed again. The median of the runs is printed per step, with its ratio to the opened store.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

#: runs in the child: prints one JSON object, step -> RSS in MB
CHILD = r"""
import json, sys
from pathlib import Path

def rss():
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:", 1)[1].split()[0]) / 1024

import ai_sysadmin.orchestrator.daemon  # what the daemon imports at its start
from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.context import close_idle, shared

steps = {"daemon's modules": rss()}
recall = shared(Settings(ai_name="bench", state_dir=Path(sys.argv[1])))
recall.search_text("nginx.service failed: address already in use")
steps["opened, searched"] = rss()
assert close_idle(0)
steps["closed while idle"] = rss()
recall.search_text("the disk /srv is full")
steps["opened again, searched"] = rss()
assert close_idle(0)
steps["closed again"] = rss()
print(json.dumps(steps))
"""


def run_once() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ai-sysadmin-bench-") as state:
        done = subprocess.run([sys.executable, "-c", CHILD, state], capture_output=True,
                              text=True, check=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [run_once() for _ in range(args.runs)]
    base = statistics.median(r["opened, searched"] for r in runs)
    print(f"knowledge base memory, {args.runs} runs (median RSS; ratio to the opened store)")
    for step in runs[0]:
        values = [r[step] for r in runs]
        median = statistics.median(values)
        print(f"  {step:24s} {median:7.0f} MB  {median / base:5.2f}x  "
              f"(range {min(values):.0f}-{max(values):.0f})")


if __name__ == "__main__":
    main()
