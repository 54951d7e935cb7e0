"""The README's first code block: exactly two lines, the second is what CI runs, and the first
works both as root on a machine without sudo and as a user with sudo (run here with stand-ins
for apt-get, sudo and python3 that record what they were asked to do)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = '#!/bin/sh\necho "{name} $*" >> "$LOG"\n'
# python3 -m venv .venv: makes the venv's pip and ai-sysadmin, which record too
PYTHON = ('#!/bin/sh\necho "python3 $*" >> "$LOG"\nmkdir -p .venv/bin\n'
          'for p in pip ai-sysadmin; do printf \'#!/bin/sh\\necho "%s $*" >> "$LOG"\\n\' '
          '"$p" > .venv/bin/$p; chmod +x .venv/bin/$p; done\n')


def first_block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "the README starts with a bash block"
    return block.group(1).strip().splitlines()


def test_two_lines_and_the_second_is_what_ci_runs() -> None:
    lines = first_block()
    assert len(lines) == 2 and lines[1] == "./scripts/test.sh"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "exec ./scripts/test.sh" in ci


@pytest.mark.parametrize("with_sudo", [False, True], ids=["root-without-sudo", "user-with-sudo"])
def test_the_first_line_installs_then_checks(tmp_path: Path, with_sudo: bool) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    programs = {"apt-get": STAND_IN.format(name="apt-get"), "python3": PYTHON}
    if with_sudo:
        programs["sudo"] = '#!/bin/sh\necho "sudo $1" >> "$LOG"\nexec "$@"\n'
    for name, text in programs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "log"
    work = tmp_path / "checkout"
    work.mkdir()
    # only the stand-ins and the shell's own basics: no real sudo, apt-get or python3
    basics = tmp_path / "basics"
    basics.mkdir()
    for tool in ("mkdir", "chmod", "printf", "echo"):
        found = next((Path(d) / tool for d in ("/usr/bin", "/bin") if (Path(d) / tool).exists()),
                     None)
        if found:
            (basics / tool).symlink_to(found)
    env = {"PATH": f"{bin_dir}:{basics}", "LOG": str(log), "HOME": str(tmp_path)}
    done = subprocess.run(["/bin/bash", "-c", first_block()[0]], cwd=work, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    steps = log.read_text().splitlines()
    apt = [s for s in steps if s.startswith("apt-get")]
    assert apt == ["apt-get update", "apt-get install -y python3-venv"]
    assert ("sudo apt-get" in steps) is with_sudo
    assert steps[-3:] == ["python3 -m venv .venv", "pip install -c constraints.txt .",
                          "ai-sysadmin check"]
    assert os.path.isdir(work / ".venv")
