"""SIGHUP to the daemon's service (``systemctl kill -s HUP``, the conventional reload) under
real systemd, with the restart settings of the unit setup installs: the daemon stops cleanly
and the unit starts it again, where it stayed stopped for good."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import ai_sysadmin
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.setup_host import find_templates, render_units
from tests.conftest import BIN, hidden_in_the_lab

pytestmark = pytest.mark.lab

UNIT = "hal-hup.service"
#: the code under test, not whatever the program's environment would import: systemd starts
#: the unit with an environment of its own
SOURCE = Path(ai_sysadmin.__file__).parents[1]
CONFIG = "/etc/hal-hup/config.toml"


def shipped_restart_settings() -> list[str]:
    """The Restart* lines of the daemon's unit as setup writes it."""
    setpriv = shutil.which("setpriv")
    assert setpriv, "util-linux's setpriv"
    text = render_units(find_templates(), "hal", {
        "program": str(BIN), "config": CONFIG, "user": "ai-sysadmin", "group": "ai-sysadmin",
        "state_dir": "/var/lib/hal-hup", "setpriv": setpriv, "read_write_paths": "-/tmp",
        "worker_read_write_paths": "/var/lib/hal-hup",
    })["hal-ai.service"]
    return [line for line in text.splitlines() if line.startswith("Restart")]


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:g} s")
        time.sleep(0.1)


def show(sb: Sandbox, prop: str) -> str:
    return sb.exec(["systemctl", "show", f"--property={prop}", "--value", UNIT]).stdout.strip()


def said(sb: Sandbox) -> str:
    return sb.exec(["journalctl", "--no-pager", "-o", "cat", "-u", UNIT]).stdout


def test_sighup_restarts_the_daemons_service_with_the_config_read_again() -> None:
    restart = shipped_restart_settings()
    assert "Restart=on-failure" in restart  # what would leave a clean stop stopped
    with Sandbox(binds=hidden_in_the_lab()) as sb:  # a CI clone in /tmp
        sb.write_file(CONFIG, 'ai_name = "hal"\ncheck_interval = 3600\njournal_follow = false\n'
                      "[agent]\ninvestigate = false\n")
        # the shipped unit's way of ending and starting again; the rest of it (setpriv, the
        # sandbox) is the subject of tests/packaging
        apply(sb, "install_unit", {"name": UNIT, "text": "\n".join([
            "[Unit]", "Description=hal daemon, restarted as the shipped unit is", "",
            "[Service]", "Type=exec", f"ExecStart={BIN} --config {CONFIG} run",
            "Environment=AI_SYSADMIN_STATE_DIR=/var/lib/hal-hup",
            f"Environment=PYTHONPATH={SOURCE}", *restart, ""])})
        apply(sb, "start_unit", {"name": UNIT})
        wait_until(lambda: "orchestrator info: checked " in said(sb), "the daemon's first check")
        first = show(sb, "MainPID")
        sb.write_file(CONFIG, 'ai_name = "hal"\ncheck_interval = 1800\njournal_follow = false\n'
                      "[agent]\ninvestigate = false\n")
        sb.exec(["systemctl", "kill", "-s", "HUP", UNIT], check=True)
        wait_until(lambda: show(sb, "NRestarts") == "1" and show(sb, "ActiveState") == "active",
                   "the unit started again")
        assert show(sb, "MainPID") not in ("0", first)
        journal = said(sb)
        assert "hal stopped cleanly" in journal and "stopped by SIGHUP" in journal
        wait_until(lambda: "hal starting: 1 host(s), interval 1800 s" in said(sb),
                   "the daemon started again with the changed config")
