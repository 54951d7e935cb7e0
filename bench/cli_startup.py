"""Start-up time of the CLI: wall seconds of ``--help``, ``--version`` and a local ``check``,
beside ``python -c pass`` measured in the same run (the floor no command can go under).

    .venv/bin/python bench/cli_startup.py [--runs 7]

Targets (issue 11), on a 2-core machine: ``--help`` and ``--version`` under 0.25 s, a local
``check`` under 0.5 s. The median of the runs is printed, and the best, since a busy machine
only ever adds time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "ai-sysadmin"

#: (label, argv, target in seconds or None)
CASES: list[tuple[str, list[str], float | None]] = [
    ("python -c pass", [sys.executable, "-c", "pass"], None),
    ("ai-sysadmin --help", [str(BIN), "--help"], 0.25),
    ("ai-sysadmin --version", [str(BIN), "--version"], 0.25),
    ("ai-sysadmin check", [str(BIN), "check"], 0.5),
]


def wall(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    # a check exits 1 when it finds something: the time counts, not the verdict
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="Runs of each command.")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        # a state directory of its own: the check records into a throw-away database
        config = Path(tmp) / "config.toml"
        config.write_text(f'state_dir = "{tmp}/state"\n')
        env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config)}
        # as installed: pip writes every module's bytecode at the install; with this set (as
        # on this development machine) 43 of them were compiled again at every start, 0.1 s
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        wall(CASES[-1][1], env)  # the first check creates the database (and the bytecode)
        print(f"{'command':<24} {'median':>8} {'best':>8} {'target':>8}")
        for label, argv, target in CASES:
            times = [wall(argv, env) for _ in range(runs)]
            verdict = "" if target is None else (
                f"{target:>7.2f}s " + ("ok" if statistics.median(times) < target else "OVER"))
            print(f"{label:<24} {statistics.median(times):>7.3f}s {min(times):>7.3f}s "
                  f"{verdict}".rstrip())


if __name__ == "__main__":
    main()
