"""A fleet as a person reads it: hosts in counting order (web9 before web10), and a note that
many hosts share (systemd runs on none of them) said once under them, not once a host."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import BIN

from .conftest import Hosts


def test_check_all_and_systems_list_count_names_and_say_a_shared_note_once(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    alpha, beta = ssh_hosts.alpha, ssh_hosts.beta
    alpha.write_known_hosts(known_hosts, beta)
    config = tmp_path / "config.toml"
    systems = ", ".join(f'{{host = "{h.address}", name = "{name}", user = "root"}}'
                        for h, name in ((alpha, "web10"), (beta, "web9")))
    config.write_text(
        f'ai_name = "hal"\nremote_systems = [{systems}]\n'
        f'[ssh]\nknown_hosts = "{known_hosts}"\nkey_files = ["{alpha.client.private}"]\n'
        'use_ssh_config = false\n')
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
           "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state")}

    def hal(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN), tool, *args], capture_output=True, text=True,
                              env=env, timeout=120)

    checked = hal("check", "--all")
    assert checked.returncode in (0, 1), checked.stderr
    lines = checked.stdout.splitlines()
    first = [next(i for i, line in enumerate(lines) if line.startswith(f"{name} "))
             for name in ("web9", "web10")]
    assert first == sorted(first), checked.stdout  # web9 first, as a person counts
    # neither namespace runs systemd: one note for both, under the hosts
    shared = [line for line in lines if line.startswith("note units of ")]
    assert len(shared) == 1, checked.stdout
    assert "web9, web10" in shared[0] and "systemd does not run here" in shared[0], shared
    assert first[1] < lines.index(shared[0])
    assert not [line for line in lines if line.startswith("  note units:")], checked.stdout

    listed = hal("systems", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    names = [r["name"] for r in json.loads(listed.stdout)]
    assert names.index("web9") < names.index("web10"), names
