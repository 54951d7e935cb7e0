"""Fixtures of the packaging tests: a target system as a directory tree for ``setup --root``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: accounts, ownership and the shadow tools need root; CI runs the suite as root
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="setup creates accounts: needs root")

#: what a fresh Debian-like system has before setup: root, the log groups, the programs the
#: sudoers drop-in names (empty stand-ins: setup only resolves their paths)
PASSWD = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nadm:x:4:\nsystemd-journal:x:999:\nnogroup:x:65534:\n"
PROGRAMS = ("systemctl", "journalctl", "kill", "sh", "setpriv")


@pytest.fixture
def target(tmp_path: Path) -> Path:
    root = tmp_path / "target"
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text(PASSWD)
    (etc / "group").write_text(GROUP)
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\nadm:*::\nsystemd-journal:!::\nnogroup:*::\n")
    for secret in ("shadow", "gshadow"):
        (etc / secret).chmod(0o600)
    bin_dir = root / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    for program in PROGRAMS:
        (bin_dir / program).write_text("")
        (bin_dir / program).chmod(0o755)
    (root / "usr" / "sbin").mkdir()
    (root / "usr" / "sbin" / "nologin").write_text("")
    return root
