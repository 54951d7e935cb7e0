"""The benchmarks (bench/, scripts, not a package) from the tests: run as a person runs them,
or imported to call one of their measuring functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.conftest import run_program

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(script: str, *args: str, env: dict[str, str] | None = None,
              timeout: float = 120) -> str:
    """The bench's output; it must end well."""
    done = run_program(sys.executable, str(BENCH / script), *args, env=env, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def bench_module(name: str) -> ModuleType:
    """bench/NAME.py imported (its main() not run); one bench importing another finds it."""
    if name in sys.modules:
        return sys.modules[name]
    if str(BENCH) not in sys.path:
        sys.path.append(str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
