"""The sudoers drop-in for a daemon that is not root, read by the real sudo: the catalog's
fixes run, and nothing else does, whatever a glob would have let through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.safety.sudo_rules import sudoers_text

pytestmark = pytest.mark.lab

#: as the executor runs a fix for a daemon that is not root: sudo -n -- ARGV
AS_NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sudo", "-n", "--")
DENIED = "a password is required"


def test_the_fix_rules_let_the_catalogs_commands_through_and_nothing_else(
        sandbox: Sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if sandbox.exec(["sh", "-c", "command -v sudo visudo setpriv"]).returncode:
        if os.environ.get("CI"):
            pytest.fail("sudo, visudo and setpriv are installed by scripts/test.sh")
        pytest.skip("sudo, visudo or setpriv is not installed")
    settings = Settings(ai_name="hal", state_dir=tmp_path, safety={"clean_paths": []})
    where = {"systemctl": "/usr/bin/systemctl", "journalctl": "/usr/bin/journalctl",
             "kill": "/usr/bin/kill"}
    rules = sudoers_text(settings, "nobody", lambda program: where[program.rsplit("/")[-1]])
    sandbox.write_file("/etc/sudoers.d/ai-sysadmin", rules, mode=0o440)
    checked = sandbox.exec(["visudo", "-c", "-f", "/etc/sudoers.d/ai-sysadmin"])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    sandbox.exec(["sh", "-c", "echo '127.0.1.1 sdtest' >> /etc/hosts"])  # sudo looks it up

    def denied(*argv: str) -> bool:
        done = sandbox.exec([*AS_NOBODY, *argv])
        return done.returncode == 1 and DENIED in done.stderr

    # what the catalog runs (the units need not exist: sudo let them through to systemctl)
    for argv in (("systemctl", "restart", "--", "app.service"),
                 ("systemctl", "start", "--", "getty@tty1.service"),
                 ("systemctl", "reset-failed", "--", "web\\x2dapp.socket"),
                 ("systemctl", "restart", "--", "backup.timer"),
                 ("journalctl", "--vacuum-size=500M"),
                 ("kill", "-TERM", "4194304")):
        assert not denied(where[argv[0]], *argv[1:]), argv
    # what sudo's glob `*` let through before (a space and a dash are characters to it)
    for argv in (("kill", "-TERM", "-1"),  # every process of the host
                 ("kill", "-TERM", "1", "2"),
                 ("kill", "-KILL", "1234"),
                 ("systemctl", "start", "--", "poweroff.target"),
                 ("systemctl", "start", "--", "emergency.target"),
                 ("systemctl", "restart", "--", "a.service", "sshd.service"),
                 ("systemctl", "restart", "--", "-x.service"),
                 ("systemctl", "restart", "--", "appxservice"),
                 ("systemctl", "stop", "--", "app.service"),
                 ("systemctl", "restart", "app.service"),
                 ("journalctl", "--vacuum-size=500M", "--rotate"),
                 ("journalctl", "--vacuum-size=1G", "-D", "/etc")):
        assert denied(where[argv[0]], *argv[1:]), argv


#: a NixOS daemon's programs (its NixOS module sets them so), which a Debian host it manages
#: does not have: there the fixes run the bare names
NIX_PROGRAMS = {program: f"/nix/store/{'a' * 32}-{program}/bin/{program}"
                for program in ("systemctl", "journalctl", "kill", "sh")}


def test_a_remote_hosts_drop_in_names_that_hosts_programs_not_this_daemons(
        sandbox: Sandbox, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """`policy sudoers --user ops` on a daemon whose programs are Nix store paths: a remote
    host with sudo = true runs the fixes by bare name (sudo finds /usr/bin/systemctl there),
    so its drop-in must name --bin-dir's programs, or that sudo lets none of them through.
    Without options the lines stay this machine's."""
    if sandbox.exec(["sh", "-c", "command -v sudo visudo"]).returncode:
        if os.environ.get("CI"):
            pytest.fail("sudo and visudo are installed by scripts/test.sh")
        pytest.skip("sudo or visudo is not installed")
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\nstate_dir = "{tmp_path / "state"}"\n[programs]\n'
                      + "".join(f'{p} = "{path}"\n' for p, path in NIX_PROGRAMS.items()))
    code, here, _ = cli("--config", str(config), "policy", "sudoers")
    assert code == 0 and f"{NIX_PROGRAMS['systemctl']} ^(restart" in here
    # --user alone: this machine's daemon under another user, its programs where they are
    code, named, _ = cli("--config", str(config), "policy", "sudoers", "--user", "hal")
    assert code == 0 and f"hal ALL=(root) NOPASSWD: {NIX_PROGRAMS['systemctl']} ^(restart" \
        in named, named
    code, remote, _ = cli("--config", str(config), "policy", "sudoers", "--user", "nobody",
                          "--bin-dir", "/usr/bin", "--shell", "/bin/sh")
    assert code == 0 and "/nix/store" not in remote
    sandbox.write_file("/etc/sudoers.d/ai-sysadmin", remote, mode=0o440)
    checked = sandbox.exec(["visudo", "-c", "-f", "/etc/sudoers.d/ai-sysadmin"])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # what the executor runs on a remote host, as that host's sudo would judge it for ops
    for argv in (("systemctl", "restart", "--", "app.service"), ("kill", "-TERM", "1234"),
                 ("journalctl", "--vacuum-size=500M")):
        listed = sandbox.exec(["sudo", "-n", "-l", "-U", "nobody", "--", *argv])
        assert listed.returncode == 0, (argv, listed.stdout, listed.stderr)
    sandbox.exec(["rm", "-f", "/etc/sudoers.d/ai-sysadmin"])
