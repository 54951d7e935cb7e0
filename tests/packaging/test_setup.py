"""``ai-sysadmin setup`` into a directory tree, as the installed program runs it: accounts,
directories, the config with every key, the units, the sudoers drop-in, the links; a dry run
and a second run change nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings, load_settings
from ai_sysadmin.knowledge.config_repo import ConfigRepo
from ai_sysadmin.setup_host import Programs, SetupError, sample_config
from ai_sysadmin.setup_host.install import Layout, check_sudoers
from ai_sysadmin.setup_host.steps import File
from ai_sysadmin.store import Database
from ai_sysadmin.store.migrations import MIGRATIONS
from tests.conftest import BIN, run_program
from tests.knowledge.gitrepo import GitRepo
from tests.packaging.conftest import needs_root


@pytest.fixture(autouse=True)
def _no_config_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """setup plans from (and installs) a config named with AI_SYSADMIN_CONFIG: these tests
    name none unless they say so, as a root shell (sudo resets the environment) does."""
    monkeypatch.delenv("AI_SYSADMIN_CONFIG")


def setup(target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_program(str(BIN), "setup", "--root", str(target), "--program", str(BIN),
                       "--json", *args)


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int, str]]:
    """Every path under ``root`` with its mode, owner, group, mtime and content or target."""
    seen = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        body = os.readlink(path) if path.is_symlink() else (
            path.read_text() if path.is_file() else "")
        seen[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid,
                                             st.st_mtime_ns, body)
    return seen


def leaves(model: type, prefix: str = "") -> list[str]:
    out = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            out += leaves(annotation, f"{name}.")
        else:
            out.append(f"{prefix}{name}")
    return out


def test_the_sample_config_lists_every_key_with_its_true_default(tmp_path: Path) -> None:
    text = sample_config({"ai_name": "hal", "state_dir": "/var/lib/ai-sysadmin",
                          "queue.embedded_worker": False})
    path = tmp_path / "config.toml"
    path.write_text(text)
    written = load_settings(path, environ={}).settings
    expected = Settings(ai_name="hal", state_dir="/var/lib/ai-sysadmin",
                        queue={"embedded_worker": False})
    assert written.model_dump() == expected.model_dump()
    for dotted in leaves(Settings):
        key = dotted.rsplit(".", 1)[-1]
        assert re.search(rf"^(# )?{key} =", text, re.M), f"{dotted} is missing"
    for info in Settings.model_fields.values():
        assert info.description and info.description.split()[0] in text
    # every commented default, uncommented, is the default: the file shows the truth
    uncommented = re.sub(r"^# (\w+ = (?!  \(not set\)).*)$", r"\1", text, flags=re.M)
    path.write_text(uncommented)
    assert load_settings(path, environ={}).settings.model_dump() == expected.model_dump()
    assert "  (not set)" in text and tomllib.loads(uncommented)["llm"]["model"]


@needs_root
def test_setup_installs_everything_and_a_second_run_changes_nothing(target: Path) -> None:
    done = setup(target, "--name", "hal")
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)
    assert all(s["action"] in ("create", "update") for s in steps)
    passwd = (target / "etc/passwd").read_text()
    user = re.search(r"^ai-sysadmin:x:(\d+):(\d+):[^:]*:/var/lib/ai-sysadmin:(\S+)$", passwd,
                     re.M)
    assert user and user.group(3) == "/usr/sbin/nologin"
    groups = (target / "etc/group").read_text()
    for group in ("adm", "systemd-journal"):
        assert re.search(rf"^{group}:x:\d+:ai-sysadmin$", groups, re.M)
    uid, gid = int(user.group(1)), int(user.group(2))
    owners = {"var/lib/ai-sysadmin": (uid, gid, 0o750), "etc/ai-sysadmin": (0, gid, 0o750),
              "etc/ai-sysadmin/config.toml": (0, gid, 0o640),
              "etc/sudoers.d/ai-sysadmin": (0, 0, 0o440),
              "etc/systemd/system/hal-ai.service": (0, 0, 0o644),
              "etc/systemd/system/hal-llm-worker.service": (0, 0, 0o644)}
    for path, (owner, group, mode) in owners.items():
        st = (target / path).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (owner, group, mode), path
    config = load_settings(target / "etc/ai-sysadmin/config.toml", environ={}).settings
    assert (config.ai_name, str(config.state_dir), config.queue.embedded_worker) == (
        "hal", "/var/lib/ai-sysadmin", False)
    links = sorted((target / "usr/local/bin").iterdir())
    assert links and all(os.readlink(link) == str(BIN) for link in links)
    assert "hal-check" in [link.name for link in links]
    daemon = (target / "etc/systemd/system/hal-ai.service").read_text()
    assert f"-- {BIN} --config /etc/ai-sysadmin/config.toml run" in daemon
    assert "--reuid=ai-sysadmin --regid=ai-sysadmin --init-groups" in daemon
    before = snapshot(target)
    again = setup(target)  # the name now comes from the config it wrote
    assert again.returncode == 0, again.stderr
    assert {s["action"] for s in json.loads(again.stdout)} == {"keep"}
    assert snapshot(target) == before


@needs_root
def test_uninstall_takes_back_the_grants_units_and_commands_and_keeps_the_history(
        target: Path) -> None:
    """After an uninstall no sudo rule grants the account anything and no unit or command is
    left; the config, the state and the account stay (they hold the operator's work). A
    command of that name that is not setup's stays too."""
    assert setup(target, "--name", "hal").returncode == 0
    (target / "var/lib/ai-sysadmin/incidents.db").write_text("history")
    foreign = target / "usr/local/bin/hal-notify"
    foreign.unlink()
    foreign.symlink_to("/opt/other/notify")
    before = snapshot(target)
    planned = setup(target, "--uninstall", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert snapshot(target) == before
    removing = {s["target"] for s in json.loads(planned.stdout) if s["action"] == "remove"}
    assert {"/etc/sudoers.d/ai-sysadmin", "/etc/systemd/system/hal-ai.service",
            "/etc/systemd/system/hal-llm-worker.service", "/usr/local/bin/hal-check"} <= removing
    assert "/usr/local/bin/hal-notify" not in removing

    done = setup(target, "--uninstall")
    assert done.returncode == 0, done.stderr
    assert not (target / "etc/sudoers.d/ai-sysadmin").exists()
    assert not list((target / "etc/systemd/system").glob("hal-*"))
    assert [p.name for p in (target / "usr/local/bin").iterdir()] == ["hal-notify"]
    assert (target / "etc/ai-sysadmin/config.toml").is_file()
    assert (target / "var/lib/ai-sysadmin/incidents.db").read_text() == "history"
    assert "\nai-sysadmin:" in (target / "etc/passwd").read_text()
    again = setup(target, "--uninstall")
    assert again.returncode == 0 and not [
        s for s in json.loads(again.stdout) if s["action"] in ("remove", "stop")]


@needs_root
def test_uninstall_through_another_path_to_the_program_takes_back_the_commands(
        target: Path, tmp_path: Path) -> None:
    """setup made the links with one path of the program; --uninstall run by another (a
    symlink to it, a venv's other bin path) left every one of them, which setup itself takes
    for its own. A link to something else stays."""
    assert setup(target, "--name", "hal").returncode == 0
    foreign = target / "usr/local/bin/hal-notify"
    foreign.unlink()
    foreign.symlink_to("/opt/other/notify")
    alias = tmp_path / "alias" / "ai-sysadmin"
    alias.parent.mkdir()
    alias.symlink_to(BIN)
    done = run_program(str(alias), "setup", "--root", str(target), "--uninstall", "--json")
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (target / "usr/local/bin").iterdir()] == ["hal-notify"]
    removed = {s["target"]: s["detail"] for s in json.loads(done.stdout)
               if s["action"] == "remove" and s["kind"] == "link"}
    assert removed["/usr/local/bin/hal-check"] == f"-> {BIN}"


@needs_root
def test_uninstall_after_a_rename_takes_back_the_old_names_daemon_too(target: Path) -> None:
    """ai_name changed in the config, then --uninstall without a setup in between: the units
    and commands the old name installed would go on running the daemon."""
    assert setup(target, "--name", "hal").returncode == 0
    config = target / "etc/ai-sysadmin/config.toml"
    config.write_text(config.read_text().replace('ai_name = "hal"', 'ai_name = "kit"'))
    planned = setup(target, "--uninstall", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    _planned_and_taken_back(target, planned)
    assert config.is_file()


@needs_root
def test_uninstall_takes_back_a_daemon_whose_config_is_broken(target: Path) -> None:
    """A config the daemon refuses is when one may want the service gone: --uninstall refused
    it too. It says so in one line and takes back the units, the drop-in and the commands,
    whatever name they carry; the broken config stays as it is."""
    assert setup(target, "--name", "hal").returncode == 0
    config = target / "etc/ai-sysadmin/config.toml"
    with config.open("a") as handle:
        handle.write('check_interval = "soon"\n')
    broken = config.read_text()
    before = snapshot(target)
    planned = setup(target, "--uninstall", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert snapshot(target) == before
    (note,) = planned.stderr.strip().splitlines()
    assert note.startswith(f"note: {config} cannot be loaded (") and "check_interval" in note
    _planned_and_taken_back(target, planned)
    assert config.read_text() == broken
    # setup itself still refuses it: it would install a daemon that cannot start
    refused = setup(target, "--name", "hal", "--dry-run")
    assert refused.returncode != 0 and "check_interval" in refused.stderr


@needs_root
def test_a_new_name_replaces_the_old_names_units_and_commands(target: Path) -> None:
    """ai_name changed in the config, setup run again: the old name's daemon would run beside
    the new one on the same config and state, and its commands would stay."""
    assert setup(target, "--name", "hal").returncode == 0
    config = target / "etc/ai-sysadmin/config.toml"
    config.write_text(config.read_text().replace('ai_name = "hal"', 'ai_name = "kit"'))
    planned = json.loads(setup(target, "--dry-run").stdout)
    removing = {s["target"] for s in planned if s["action"] == "remove"}
    assert {"/etc/systemd/system/hal-ai.service", "/etc/systemd/system/hal-llm-worker.service",
            "/usr/local/bin/hal-check"} <= removing
    done = setup(target)
    assert done.returncode == 0, done.stderr
    units = sorted(p.name for p in (target / "etc/systemd/system").iterdir())
    assert units == ["kit-ai.service", "kit-llm-worker.service"]
    commands = {p.name.split("-")[0] for p in (target / "usr/local/bin").iterdir()}
    assert commands == {"kit"}
    assert {s["action"] for s in json.loads(setup(target).stdout)} == {"keep"}


def test_state_left_by_an_earlier_root_check_becomes_the_daemons(target: Path) -> None:
    # `sudo ai-sysadmin check` before setup writes root's database where the daemon will run;
    # a try of `sudo ai-sysadmin run` leaves its lock too (setup refused it as not its own)
    state = target / "var/lib/ai-sysadmin"
    (state / "logs").mkdir(parents=True)
    (state / "state.db").write_text("")
    (state / "daemon.lock").write_text("")
    (state / "logs" / "orchestrator.jsonl").write_text("")
    planned = setup(target, "--name", "hal", "--dry-run")
    said = {s["target"]: s["detail"] for s in json.loads(planned.stdout)}
    assert said["/var/lib/ai-sysadmin"] == ("ai-sysadmin:ai-sysadmin 0750, with what is in it: "
                                            "daemon.lock, logs, state.db")
    done = setup(target, "--name", "hal")
    assert done.returncode == 0, done.stderr
    daemon = (state).stat()
    for path in (state / "state.db", state / "daemon.lock", state / "logs",
                 state / "logs" / "orchestrator.jsonl"):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (daemon.st_uid, daemon.st_gid) != (0, 0), path
    assert {s["action"] for s in json.loads(setup(target).stdout)} == {"keep"}


def test_a_config_repo_synced_by_root_before_setup_becomes_the_daemons(
        target: Path, tmp_path: Path) -> None:
    """`sudo ai-sysadmin configs --sync` before setup leaves the copy, its index and its
    lock: setup refused the directory for config-repo.lock, said to be another's."""
    upstream = GitRepo(tmp_path / "fleet")
    upstream.commit({"hosts/web.nix": "{ }\n"}, "fleet", when=1_700_000_000)
    state = target / "var/lib/ai-sysadmin"
    repo = ConfigRepo(Settings(state_dir=state, config_repo=str(upstream.path),
                               config_branch="main"))
    with repo.syncing():
        repo.fetch()
    (state / "config-repo-index.json").write_text("{}")
    assert sorted(p.name for p in state.iterdir()) == [
        "config-repo", "config-repo-index.json", "config-repo.lock"]
    done = setup(target, "--name", "hal")
    assert done.returncode == 0, done.stderr
    daemon = state.stat()
    for path in (state / "config-repo.lock", state / "config-repo" / "HEAD"):
        assert (path.stat().st_uid, path.stat().st_gid) == (daemon.st_uid, daemon.st_gid)
    assert daemon.st_uid != 0


def test_a_state_dir_with_a_dollar_is_refused_before_anything_changes(target: Path) -> None:
    """systemd keeps a `$$` as two in Environment= and ReadWritePaths= (only Exec*= lines
    undo it): state_dir = "/srv/ai$1" gave a unit that never started, and setup said done."""
    config = target / "etc/ai-sysadmin/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('ai_name = "hal"\nstate_dir = "/srv/ai$1"\n')
    before = snapshot(target)
    done = setup(target)
    assert done.returncode == 2, done.stdout
    assert "'/srv/ai$1' cannot be written as one word of a unit file" in done.stderr
    assert "'$'" in done.stderr
    assert snapshot(target) == before


def test_the_copy_an_upgrade_kept_becomes_the_daemons_too(target: Path) -> None:
    """`sudo ai-sysadmin check` of an older release, then of this one: the copy the upgrade
    kept of the state database (the way back for a rollback) is root's too, and setup
    refused the directory for it as another service's data."""
    state = target / "var/lib/ai-sysadmin"
    state.mkdir(parents=True)
    Database(state / "state.db", MIGRATIONS[:5]).close()
    Database(state / "state.db").close()
    copy = state / "state.db.schema-5"
    assert copy.is_file()
    done = setup(target, "--name", "hal")
    assert done.returncode == 0, done.stderr
    daemon = state.stat()
    assert (copy.stat().st_uid, copy.stat().st_gid) == (daemon.st_uid, daemon.st_gid) != (0, 0)


def add_account(root: Path, name: str, uid: int, home: str) -> None:
    """An account of another service, as its package made it."""
    for db, line in (("passwd", f"{name}:x:{uid}:{uid}::{home}:/bin/bash"),
                     ("group", f"{name}:x:{uid}:"), ("shadow", f"{name}:*:19000:0:99999:7:::"),
                     ("gshadow", f"{name}:!::")):
        path = root / "etc" / db
        path.write_text(path.read_text() + line + "\n")


@needs_root
def test_a_state_dir_holding_other_services_data_is_refused_before_anything_changes(
        target: Path) -> None:
    """state_dir = "/var/lib": setup would give every service's data to ai-sysadmin (and
    close the directory to them). It takes only what ai-sysadmin itself writes there."""
    add_account(target, "postgres", 105, "/var/lib/postgresql")
    data = target / "var/lib/postgresql/15/main"
    data.mkdir(parents=True)
    os.chown(data.parents[1], 105, 105)
    os.chown(data.parent, 105, 105)
    (target / "var/lib/dpkg").mkdir()
    (target / "var/lib/state.db").write_text("")  # an earlier `sudo ai-sysadmin check`'s
    config = target / "etc/ai-sysadmin/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('ai_name = "hal"\nstate_dir = "/var/lib"\n')
    before = snapshot(target)
    for extra in (("--dry-run",), ()):
        done = setup(target, *extra)
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert done.stderr == (
            "error: /var/lib holds dpkg, postgresql, which are not ai-sysadmin's: setup would "
            "give them to ai-sysadmin; set state_dir to a directory of its own, or move them "
            "out\n")
        assert snapshot(target) == before


def test_a_knowledge_path_holding_other_files_is_refused_too(target: Path) -> None:
    (target / "srv/www").mkdir(parents=True)
    config = target / "etc/ai-sysadmin/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('ai_name = "hal"\n[knowledge]\npath = "/srv"\n')
    done = setup(target, "--dry-run")
    assert done.returncode == 2
    assert done.stderr == ("error: /srv holds www, which is not ai-sysadmin's: setup would give "
                           "it to ai-sysadmin; set knowledge.path to a directory of its own, or "
                           "move it out\n")


@needs_root
def test_setup_never_installs_a_command_that_stands_in_a_system_programs_way(
        target: Path) -> None:
    """ai_name "apt": apt-config in /usr/local/bin, ahead of /usr/bin's, which apt's daily
    jobs run."""
    (target / "usr/bin/apt-config").write_text("#!/bin/sh\n")
    (target / "usr/bin/apt-config").chmod(0o755)
    before = snapshot(target)
    for extra in (("--dry-run",), ()):
        done = setup(target, "--name", "apt", *extra)
        assert (done.returncode, done.stdout) == (2, ""), done.stdout
        assert done.stderr == (f"error: {target}/usr/bin/apt-config is already on PATH: a "
                               "command of the same name for this ai_name would run in its "
                               "place (or never run); name the assistant otherwise (ai_name in "
                               "the config, or --name)\n")
        assert snapshot(target) == before


@needs_root
def test_a_refused_setup_leaves_the_old_names_daemon_in_place(target: Path) -> None:
    """A renamed assistant whose new config is refused keeps the old name's units: they are
    taken away only by a setup that goes on to install the new ones."""
    assert setup(target, "--name", "hal").returncode == 0
    (target / "var/lib/dpkg").mkdir()
    config = target / "etc/ai-sysadmin/config.toml"
    config.write_text('ai_name = "kit"\nstate_dir = "/var/lib"\n')
    before = snapshot(target)
    done = setup(target)
    assert done.returncode == 2 and "/var/lib holds dpkg, which is not" in done.stderr
    assert snapshot(target) == before
    assert (target / "etc/systemd/system/hal-ai.service").is_file()


@needs_root
def test_an_account_setup_did_not_make_is_never_rehomed_or_given_groups(target: Path) -> None:
    add_account(target, "postgres", 105, "/var/lib/postgresql")
    before = snapshot(target)
    for extra in (("--dry-run",), ()):
        done = setup(target, "--name", "hal", "--user", "postgres", *extra)
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert done.stderr == (
            "error: the account postgres exists and setup did not make it: its home is "
            "/var/lib/postgresql, not /var/lib/ai-sysadmin, and setup never changes another "
            "account; name a new one with --user\n")
        assert snapshot(target) == before
    # one made for the daemon beforehand, with the state directory as its home, is used
    add_account(target, "hal-daemon", 106, "/var/lib/ai-sysadmin")
    done = setup(target, "--name", "hal", "--user", "hal-daemon")
    assert done.returncode == 0, done.stderr
    assert ":/var/lib/ai-sysadmin:" in (target / "etc/passwd").read_text()


def test_a_dry_run_says_what_setup_would_do_and_does_nothing(target: Path) -> None:
    before = snapshot(target)
    done = setup(target, "--name", "hal", "--dry-run")
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)
    assert snapshot(target) == before
    planned = {(s["kind"], s["target"]) for s in steps if s["changes"]}
    for wanted in (("user", "ai-sysadmin"), ("file", "/etc/sudoers.d/ai-sysadmin"),
                   ("file", "/etc/systemd/system/hal-ai.service"),
                   ("link", "/usr/local/bin/hal-check")):
        assert wanted in planned
    text = run_program(str(BIN), "setup", "--root", str(target), "--program", str(BIN),
                       "--name", "hal", "--dry-run")
    assert "would create" in text.stdout and "nothing done (--dry-run)" in text.stdout


@needs_root
def test_an_existing_config_is_kept_and_names_the_assistant(target: Path) -> None:
    config = target / "etc/ai-sysadmin/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('ai_name = "kit"\n[safety]\nclean_paths = ["/var/cache/kit"]\n')
    refused = setup(target, "--name", "hal")
    assert refused.returncode == 2 and "'kit'" in refused.stderr
    done = setup(target)
    assert done.returncode == 0, done.stderr
    assert config.read_text().startswith('ai_name = "kit"')
    daemon = (target / "etc/systemd/system/kit-ai.service").read_text()
    assert "ReadWritePaths=/var/lib/ai-sysadmin -/var/log/journal -/var/cache/kit\n" in daemon
    sudoers = (target / "etc/sudoers.d/ai-sysadmin").read_text()
    assert sudoers.rstrip().endswith("ai-sysadmin-clean /var/cache/kit -- *")
    assert (target / "usr/local/bin/kit-issues").is_symlink()


def test_the_daemons_unit_leaves_the_llm_requests_to_its_worker(target: Path) -> None:
    """A config written before setup keeps embedded_worker's default (true): under its unit
    the daemon still runs no worker of its own beside the worker unit it starts."""
    config = target / "etc/ai-sysadmin/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('ai_name = "kit"\n[queue]\nembedded_worker = true\n')
    assert setup(target).returncode == 0
    daemon = (target / "etc/systemd/system/kit-ai.service").read_text()
    assert "Wants=network-online.target kit-llm-worker.service" in daemon
    environ = dict(line.removeprefix("Environment=").split("=", 1)
                   for line in daemon.splitlines() if line.startswith("Environment="))
    loaded = load_settings(config, environ)
    assert loaded.settings.queue.embedded_worker is False


@needs_root
def test_a_new_state_dir_becomes_the_accounts_home_too(target: Path) -> None:
    """The unit's HOME follows the config's state_dir; so does passwd's home, which a command
    root runs as the daemon's user takes HOME (its ~/.ssh) from."""
    assert setup(target).returncode == 0
    config = target / "etc/ai-sysadmin/config.toml"
    config.write_text(config.read_text().replace(
        'state_dir = "/var/lib/ai-sysadmin"', 'state_dir = "/srv/hal-state"'))
    planned = setup(target, "--dry-run")
    assert planned.returncode == 0, planned.stderr
    said = {s["action"]: s["detail"] for s in json.loads(planned.stdout)
            if s["kind"] == "user"}
    assert "/var/lib/ai-sysadmin -> /srv/hal-state" in said["update"]
    assert setup(target).returncode == 0
    assert ":/srv/hal-state:" in (target / "etc/passwd").read_text()


@needs_root
def test_the_units_and_directories_follow_the_existing_configs_state_dir(target: Path) -> None:
    # the daemon writes where its config says: a unit fenced to another directory, or a
    # directory nobody made, and it could not create its database
    config = target / "etc/ai-sysadmin/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('ai_name = "kit"\nstate_dir = "/srv/kit-state"\n'
                      '[knowledge]\npath = "/srv/kit-knowledge"\n')
    done = setup(target)
    assert done.returncode == 0, done.stderr
    daemon = (target / "etc/systemd/system/kit-ai.service").read_text()
    assert "Environment=HOME=/srv/kit-state\n" in daemon
    assert re.search(r"^ReadWritePaths=/srv/kit-state .*-/srv/kit-knowledge$", daemon, re.M)
    assert "/var/lib/ai-sysadmin" not in daemon
    for made in ("srv/kit-state", "srv/kit-knowledge"):
        st = (target / made).stat()
        assert (st.st_mode & 0o777, (target / made).is_dir()) == (0o750, True)
    assert not (target / "var/lib/ai-sysadmin").exists()
    assert ":/srv/kit-state:" in (target / "etc/passwd").read_text()


@needs_root
def test_under_a_hardened_umask_the_directories_setup_makes_above_the_state_are_open(
        target: Path) -> None:
    """Under root's umask 027 (CIS, login.defs; sudo keeps it) setup made /srv/ai drwxr-x---:
    the daemon could not reach its state, and setup's next run refused what its first had
    reported done. The directories it makes on the way are 0755, whatever the umask."""
    config = target / "etc/ai-sysadmin/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('ai_name = "hal"\nstate_dir = "/srv/ai/state"\n'
                      '[knowledge]\npath = "/srv/kb/hal/knowledge"\n')
    old = os.umask(0o077)
    try:
        done = setup(target)
        assert done.returncode == 0, done.stderr
        for made in ("srv", "srv/ai", "srv/kb", "srv/kb/hal", "usr/local/bin",
                     "etc/systemd/system", "etc/sudoers.d"):
            assert (target / made).stat().st_mode & 0o777 == 0o755, made
        again = setup(target)
        assert again.returncode == 0, again.stderr
        assert {s["action"] for s in json.loads(again.stdout)} == {"keep"}
    finally:
        os.umask(old)


@needs_root
def test_a_queue_file_outside_the_state_dir_gets_its_directory_and_both_units_write_it(
        target: Path) -> None:
    """queue.url = "sqlite:///srv/llm-queue/queue.db": under ProtectSystem=strict the worker
    and the daemon could not open it, and nobody made its directory."""
    config = target / "etc/ai-sysadmin/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('ai_name = "kit"\n[queue]\nurl = "sqlite:///srv/llm-queue/queue.db"\n')
    done = setup(target)
    assert done.returncode == 0, done.stderr
    for unit in ("kit-ai", "kit-llm-worker"):
        text = (target / f"etc/systemd/system/{unit}.service").read_text()
        (paths,) = re.findall(r"^ReadWritePaths=(.*)$", text, re.M)
        assert paths.split()[0] == "/var/lib/ai-sysadmin", unit
        assert "-/srv/llm-queue" in paths.split(), unit
    made = (target / "srv/llm-queue").stat()
    state = (target / "var/lib/ai-sysadmin").stat()
    assert (made.st_uid, made.st_gid, made.st_mode & 0o7777) == (state.st_uid, state.st_gid,
                                                                  0o750)
    assert {s["action"] for s in json.loads(setup(target).stdout)} == {"keep"}


@needs_root
def test_the_drop_in_is_what_policy_sudoers_prints(target: Path) -> None:
    assert setup(target, "--name", "hal").returncode == 0
    installed = (target / "etc/sudoers.d/ai-sysadmin").read_text()
    printed = run_program(str(BIN), "policy", "sudoers", "--user", "ai-sysadmin", "--bin-dir",
                          "/usr/bin", "--shell", "/usr/bin/sh",
                          env={"AI_SYSADMIN_CONFIG": str(target / "etc/ai-sysadmin/config.toml")})
    assert printed.returncode == 0, printed.stderr

    def rules(text: str) -> list[str]:
        return [line for line in text.splitlines() if line and not line.startswith("#")]

    assert rules(installed) == rules(printed.stdout)
    check = subprocess.run(["visudo", "-c", "-f", str(target / "etc/sudoers.d/ai-sysadmin")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@needs_root
def test_a_drop_in_visudo_refuses_is_never_installed(target: Path) -> None:
    layout = Layout(name="hal", program=str(BIN))
    bad = File(layout.sudoers, "root", "root", 0o440, "ai-sysadmin ALL=(root) NOPASSWD: oops\n",
               verify=check_sudoers)
    with pytest.raises(SetupError, match="checking the sudoers drop-in"):
        bad.apply(target, Programs())
    assert not (target / "etc/sudoers.d/ai-sysadmin").exists()
    assert list((target / "etc/sudoers.d").iterdir()) == []  # no temporary file left either


@needs_root
def test_an_existing_config_the_daemon_cannot_read_gets_setups_owner_and_mode(
        target: Path) -> None:
    # written by root before setup (`sudo tee`, umask 077): the daemon would exit 2 on it
    config = target / "etc/ai-sysadmin/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('ai_name = "kit"\n')
    config.chmod(0o600)
    planned = run_program(str(BIN), "setup", "--root", str(target), "--program", str(BIN),
                          "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert re.search(r"would update\s+file\s+/etc/ai-sysadmin/config\.toml  "
                     r"root:ai-sysadmin 0640, content kept", planned.stdout), planned.stdout
    assert config.stat().st_mode & 0o7777 == 0o600
    done = setup(target)
    assert done.returncode == 0, done.stderr
    st = config.stat()
    gid = int(re.search(r"^ai-sysadmin:x:(\d+):", (target / "etc/group").read_text(),
                        re.M).group(1))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, gid, 0o640)
    assert config.read_text() == 'ai_name = "kit"\n'
    assert {s["action"] for s in json.loads(setup(target).stdout)} == {"keep"}


def path_without(tmp_path: Path, *left_out: str) -> str:
    """A PATH of this machine's programs, less ``left_out``."""
    bin_dir = tmp_path / "path"
    bin_dir.mkdir()
    for directory in ("/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        for program in Path(directory).iterdir() if Path(directory).is_dir() else ():
            link = bin_dir / program.name
            if program.name not in left_out and not link.exists() and not link.is_symlink():
                link.symlink_to(program)
    return str(bin_dir)


@needs_root
def test_without_sudo_setup_says_so_and_changes_nothing(target: Path, tmp_path: Path) -> None:
    env = {"PATH": path_without(tmp_path, "sudo", "visudo")}
    before = snapshot(target)
    for extra in (("--dry-run",), ()):
        done = run_program(str(BIN), "setup", "--root", str(target), "--program", str(BIN),
                           "--name", "hal", *extra, env=env)
        assert done.returncode != 0, done.stdout
        assert "install sudo" in done.stderr and len(done.stderr.strip().splitlines()) == 1, (
            done.stderr)
        assert snapshot(target) == before


@needs_root
def test_setup_replaces_the_commands_commands_install_made_and_nothing_else(
        target: Path) -> None:
    config = target / "etc/ai-sysadmin/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('ai_name = "hal"\n')
    bin_dir = target / "usr/local/bin"
    bin_dir.mkdir(parents=True)
    made = run_program(str(BIN), "--config", str(config), "commands", "install", "--bin-dir",
                       str(bin_dir))
    assert made.returncode == 0, made.stderr
    planned = run_program(str(BIN), "setup", "--root", str(target), "--program", str(BIN),
                          "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert re.search(r"would update\s+link\s+/usr/local/bin/hal-check  -> \S+ \(replaces the "
                     r"`commands install` wrapper\)", planned.stdout), planned.stdout
    done = setup(target)
    assert done.returncode == 0, done.stderr
    assert all(os.readlink(p) == str(BIN) for p in bin_dir.iterdir())
    # a file of the same name that something else made is the operator's: never replaced
    (bin_dir / "hal-check").unlink()
    (bin_dir / "hal-check").write_text("#!/bin/sh\n# my own hal-check\n")
    refused = setup(target)
    assert refused.returncode != 0
    assert "hal-check exists and is not a symbolic link" in refused.stderr
    assert (bin_dir / "hal-check").read_text() == "#!/bin/sh\n# my own hal-check\n"


@needs_root
def test_a_persons_own_link_of_a_commands_name_is_never_replaced(target: Path) -> None:
    """A link of a command's name that leads elsewhere than an ai-sysadmin program is the
    operator's (uninstall says so too): refused, as a file of that name is; a link to an
    older install's program is setup's, and follows the new one."""
    bin_dir = target / "usr/local/bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "hal-chat").symlink_to("/opt/mytools/chat")
    before = snapshot(target)
    for extra in (("--dry-run",), ()):
        refused = setup(target, "--name", "hal", *extra)
        assert (refused.returncode, refused.stdout) == (2, ""), refused.stderr
        assert refused.stderr == (
            "error: /usr/local/bin/hal-chat exists and leads to /opt/mytools/chat, not to "
            "ai-sysadmin: setup never replaces it; remove it, or install the commands "
            "elsewhere (--bin-dir)\n")
        assert snapshot(target) == before
    (bin_dir / "hal-chat").unlink()
    (bin_dir / "hal-chat").symlink_to("/opt/old-venv/bin/ai-sysadmin")
    done = setup(target, "--name", "hal")
    assert done.returncode == 0, done.stderr
    assert os.readlink(bin_dir / "hal-chat") == str(BIN)


def test_setup_run_by_a_relative_path_installs_that_program_by_its_absolute_path(
        target: Path) -> None:
    # the README's pattern: `sudo .venv/bin/ai-sysadmin setup`, from the checkout
    relative = f"{BIN.parent.name}/{BIN.name}"
    done = subprocess.run([relative, "setup", "--root", str(target), "--name", "hal",
                           "--dry-run", "--json"], cwd=BIN.parent.parent, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    links = [s for s in json.loads(done.stdout) if s["kind"] == "link"]
    assert links and {s["detail"] for s in links} == {f"-> {os.path.abspath(BIN)}"}


def test_a_name_commands_cannot_carry_is_one_line_and_exit_2(target: Path) -> None:
    before = snapshot(target)
    done = setup(target, "--name", "BAD NAME", "--dry-run")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("error: Invalid value for '--name': 'BAD NAME': must be 1-32 "
                                  "characters of a-z, 0-9, '-' or '_'")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert snapshot(target) == before


def test_a_relative_bin_dir_is_refused_rather_than_taken_from_the_root(
        target: Path, tmp_path: Path) -> None:
    """`--bin-dir ./bin` was a directory of the target taken from its root: run as root on
    a merged-usr system, 14 links went into /usr/bin, not into the working directory's bin."""
    (tmp_path / "work" / "bin").mkdir(parents=True)
    before = snapshot(target)
    for args in (("--dry-run",), (), ("--uninstall",)):
        done = subprocess.run([str(BIN), "setup", "--root", str(target), "--program", str(BIN),
                               "--name", "hal", "--bin-dir", "./bin", *args],
                              cwd=tmp_path / "work", capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout) == (2, ""), args
        assert done.stderr.startswith("error: Invalid value for '--bin-dir': './bin' is "
                                      "relative: name the directory of the target system by "
                                      "its absolute path"), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert snapshot(target) == before
    assert list((tmp_path / "work" / "bin").iterdir()) == []


def given(target: Path, config: Path, *args: str, env: bool = False
          ) -> subprocess.CompletedProcess[str]:
    """setup with a config named with -c, or with AI_SYSADMIN_CONFIG (``env``)."""
    named = () if env else ("-c", str(config))
    return run_program(str(BIN), *named, "setup", "--root", str(target), "--program",
                       str(BIN), "--json", *args,
                       env={"AI_SYSADMIN_CONFIG": str(config)} if env else None)


KIT = 'ai_name = "kit"\nstate_dir = "/srv/kit-state"\n[safety]\nclean_paths = ["/var/cache/kit"]\n'


@pytest.mark.parametrize("env", [False, True], ids=["option", "environment"])
def test_a_named_config_is_the_one_planned_from(target: Path, tmp_path: Path, env: bool) -> None:
    config = tmp_path / "kit.toml"
    config.write_text(KIT)
    before = snapshot(target)
    done = given(target, config, "--dry-run", env=env)
    assert done.returncode == 0, done.stderr
    planned = {(s["kind"], s["target"]): s["detail"] for s in json.loads(done.stdout)}
    assert ("file", "/etc/systemd/system/kit-ai.service") in planned
    assert ("directory", "/srv/kit-state") in planned
    assert not any("/var/lib/ai-sysadmin" in where or "hal-" in where for _, where in planned)
    assert planned[("file", "/etc/ai-sysadmin/config.toml")] == (
        f"root:ai-sysadmin 0640, a copy of {config}")
    assert snapshot(target) == before
    refused = given(target, config, "--dry-run", "--name", "hal", env=env)
    assert refused.returncode == 2
    assert refused.stderr == (f"error: {config} names the assistant 'kit': change ai_name "
                              "there, or drop --name\n")



def test_a_named_config_without_ai_name_is_not_said_to_name_the_assistant(
        target: Path, tmp_path: Path) -> None:
    # the name such a config gives is the host's: saying the file names it sent the reader
    # looking for an ai_name that is not there
    config = tmp_path / "plain.toml"
    config.write_text('state_dir = "/srv/plain-state"\n')
    host = Settings(state_dir=Path("/")).ai_name
    refused = given(target, config, "--dry-run", "--name", "hal")
    assert refused.returncode == 2
    assert refused.stderr == (f"error: {config} sets no ai_name, so the assistant is named "
                              f"after this host ({host!r}): set ai_name = \"hal\" there, or "
                              "drop --name\n")

@needs_root
def test_a_named_config_is_installed_and_an_installed_other_one_is_never_replaced(
        target: Path, tmp_path: Path) -> None:
    config = tmp_path / "kit.toml"
    config.write_text(KIT)
    done = given(target, config)
    assert done.returncode == 0, done.stderr
    installed = target / "etc/ai-sysadmin/config.toml"
    assert installed.read_text() == KIT
    daemon = (target / "etc/systemd/system/kit-ai.service").read_text()
    assert "Environment=HOME=/srv/kit-state\n" in daemon
    assert "ai-sysadmin-clean /var/cache/kit -- *" in (target / "etc/sudoers.d/ai-sysadmin"
                                                      ).read_text()
    # the same config again, or none: the installed one; nothing to change
    for again in (given(target, config), setup(target)):
        assert {s["action"] for s in json.loads(again.stdout)} == {"keep"}, again.stderr
    before = snapshot(target)
    config.write_text(KIT.replace("/var/cache/kit", "/var/cache/other"))
    refused = given(target, config)
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.startswith(f"error: {installed} is installed and differs from "
                                     f"{config}: setup never overwrites an installed config")
    assert snapshot(target) == before


def test_the_programs_not_found_under_root_are_all_named_with_where_to_set_them(
        tmp_path: Path) -> None:
    empty = tmp_path / "image"
    empty.mkdir()
    looked = "in none of /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin under"
    done = setup(empty, "--name", "hal", "--dry-run")
    assert done.returncode == 2
    # every one at once: not one a run, each found missing only once the last is set
    assert done.stderr == (f"error: systemctl, journalctl, kill, sh and setpriv are {looked} "
                           f"{empty}; set programs.systemctl, programs.journalctl, "
                           "programs.kill, programs.sh and programs.setpriv to their absolute "
                           "paths in a config file named with `ai-sysadmin -c FILE setup`\n")
    # those set in the named config are not named; the same file is named for the rest
    config = tmp_path / "hal.toml"
    config.write_text('ai_name = "hal"\n[programs]\nsystemctl = "/usr/bin/systemctl"\n'
                      'journalctl = "/usr/bin/journalctl"\nkill = "/usr/bin/kill"\n'
                      'sh = "/bin/sh"\n')
    done = given(empty, config, "--dry-run")
    assert done.returncode == 2
    assert done.stderr == (f"error: setpriv is {looked} {empty}; set programs.setpriv to its "
                           f"absolute path in {config}\n")
    assert list(empty.iterdir()) == []


def test_both_units_name_the_state_dir_a_config_without_one_gets(target: Path) -> None:
    """A config that names no state_dir: setup makes /var/lib/ai-sysadmin, and the daemon and
    its worker, run as their own user, must use it too, not that user's default
    (~/.local/state/ai-sysadmin), where a person's `hal-issues` would never look."""
    config = target / "etc/ai-sysadmin/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('ai_name = "kit"\n')
    assert setup(target).returncode == 0
    for unit in ("kit-ai", "kit-llm-worker"):
        text = (target / f"etc/systemd/system/{unit}.service").read_text()
        assert "Environment=AI_SYSADMIN_STATE_DIR=/var/lib/ai-sysadmin\n" in text, unit
        environ = dict(line.removeprefix("Environment=").split("=", 1)
                       for line in text.splitlines() if line.startswith("Environment="))
        loaded = load_settings(config, environ)
        assert str(loaded.settings.state_dir) == "/var/lib/ai-sysadmin", unit


def test_a_setting_no_release_reads_is_said_by_setup_too(target: Path, tmp_path: Path) -> None:
    """The upgrade's own step, setup from the last release's config, says what it passes
    over, as every other command does."""
    config = tmp_path / "config.toml"
    config.write_text('ai_name = "hal"\n[programs]\ngrep = "/usr/bin/grep"\n')
    done = given(target, config, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(f"note: programs.grep (file {config}) is no longer used") == 1


def closed_home(target: Path, name: str = "alice", uid: int = 1000) -> Path:
    """A person's home in the tree that only they may enter, as Debian makes them (0700)."""
    add_account(target, name, uid, f"/home/{name}")
    home = target / "home" / name
    home.mkdir(parents=True)
    os.chown(home, uid, uid)
    home.chmod(0o700)
    return home


def console_script(where: Path, python: str) -> None:
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text(f"#!{python}\nfrom ai_sysadmin.cli.main import main\n")
    where.chmod(0o755)


def program_in_the_tree(target: Path, path: Path, python: str) -> None:
    """A venv's console script at ``path`` of the tree, its #! naming ``python``; a copy at
    the same path here, where --program is looked for."""
    for where in (path, target / str(path).lstrip("/")):
        console_script(where, python)


@needs_root
def test_a_program_in_a_home_the_daemons_account_cannot_enter_is_refused(
        target: Path, tmp_path: Path) -> None:
    """A venv inside a 0700 home made a unit that could never start: setpriv hands the
    program to the account, which cannot read it nor import from its venv (exit 2, which the
    unit does not restart)."""
    closed_home(target)
    # the tree's copy of this directory is alice's, and closed
    venv = tmp_path / "venv"
    program = venv / "bin" / "ai-sysadmin"
    program_in_the_tree(target, program, f"{venv}/bin/python")
    inside = target / str(venv).lstrip("/")
    os.chown(inside, 1000, 1000)
    inside.chmod(0o700)
    before = snapshot(target)
    done = run_program(str(BIN), "setup", "--root", str(target), "--program", str(program),
                       "--name", "hal", "--dry-run")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"error: the daemon's account ai-sysadmin could not reach the program {program}: "
        f"{venv} (drwx------ alice:alice) is closed to it; install ai-sysadmin where that "
        "account can read it (a venv in /opt), or name such a program with --program\n")
    assert snapshot(target) == before


@needs_root
def test_a_venv_whose_python_lives_in_a_closed_home_is_refused_until_the_account_may_enter(
        target: Path, tmp_path: Path) -> None:
    """The venv open to all, its python a link into a home only its owner may enter (a
    pyenv Python): the daemon's Python could not find its own library. Opened to a group
    setup puts the account in (adm), it can."""
    home = closed_home(target)
    pyenv = home / ".pyenv" / "bin"
    pyenv.mkdir(parents=True)
    (pyenv / "python3").write_text("")
    (pyenv / "python3").chmod(0o755)
    venv = target / "opt" / "ai" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to("/home/alice/.pyenv/bin/python3")
    program = tmp_path / "ai-sysadmin"
    console_script(program, "/opt/ai/bin/python")
    console_script(target / str(program).lstrip("/"), "/opt/ai/bin/python")

    def dry_run() -> subprocess.CompletedProcess[str]:
        return run_program(str(BIN), "setup", "--root", str(target), "--program", str(program),
                           "--name", "hal", "--dry-run")

    done = dry_run()
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"error: the daemon's account ai-sysadmin could not reach {program}'s interpreter "
        "/opt/ai/bin/python: /home/alice (drwx------ alice:alice) is closed to it"), done.stderr
    os.chown(home, 1000, 4)  # group adm, which setup adds the account to
    home.chmod(0o750)
    done = dry_run()
    assert done.returncode == 0, done.stderr


def set_acl(path: Path, *entries: tuple[int, int, int]) -> None:
    """``setfacl`` without it: the access ACL as the kernel keeps it (version 2, then each
    entry's tag, permission bits and id); a test is skipped where the file system keeps
    none."""
    import errno
    import struct

    raw = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    try:
        os.setxattr(path, "system.posix_acl_access", raw)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            pytest.skip(f"no ACLs on the file system of {path}")
        raise


NOBODY = 0xFFFFFFFF  # the id of an entry that names no one (owner, group, mask, others)


@needs_root
def test_a_closed_home_an_acl_opens_to_the_daemons_account_is_reached(
        target: Path, tmp_path: Path) -> None:
    """A venv in a 0700 home that `setfacl -m u:ai-sysadmin:x` opens to the daemon's account:
    the unit runs, and setup refused it as closed. A mask that takes the entry's bits away
    closes it again, and the refusal shows the ACL (``+``) as ``ls -l`` does."""
    add_account(target, "ai-sysadmin", 990, "/var/lib/ai-sysadmin")
    home = closed_home(target)
    venv = tmp_path / "venv"
    program = venv / "bin" / "ai-sysadmin"
    program_in_the_tree(target, program, "/usr/bin/python3")
    inside = target / str(venv).lstrip("/")
    os.chown(inside, 1000, 1000)
    inside.chmod(0o700)

    def dry_run() -> subprocess.CompletedProcess[str]:
        return run_program(str(BIN), "setup", "--root", str(target), "--program", str(program),
                           "--name", "hal", "--dry-run")

    for directory in (home, inside):  # u:990:x (a venv in a home) and u:990:rx
        set_acl(directory, (0x01, 7, NOBODY), (0x02, 1 if directory == home else 5, 990),
                (0x04, 0, NOBODY), (0x10, 5, NOBODY), (0x20, 0, NOBODY))
    done = dry_run()
    assert done.returncode == 0, done.stderr
    # g:adm:x, a group setup puts the account in, opens the home as well
    set_acl(home, (0x01, 7, NOBODY), (0x04, 0, NOBODY), (0x08, 1, 4), (0x10, 1, NOBODY),
            (0x20, 0, NOBODY))
    done = dry_run()
    assert done.returncode == 0, done.stderr
    set_acl(inside, (0x01, 7, NOBODY), (0x02, 5, 990), (0x04, 0, NOBODY), (0x10, 0, NOBODY),
            (0x20, 0, NOBODY))
    done = dry_run()
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(
        f"error: the daemon's account ai-sysadmin could not reach the program {program}: "
        f"{venv} (drwx------+ alice:alice) is closed to it"), done.stderr


@needs_root
def test_a_state_dir_the_daemons_account_cannot_reach_is_refused(
        target: Path, tmp_path: Path) -> None:
    """state_dir below a closed home (`~/ai-state` read as root is /root/ai-state): setup
    made a directory the daemon could never open."""
    closed_home(target)
    config = tmp_path / "hal.toml"
    config.write_text('ai_name = "hal"\nstate_dir = "/home/alice/ai-state"\n')
    before = snapshot(target)
    done = given(target, config, "--dry-run")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: the daemon's account ai-sysadmin could not reach state_dir "
        "/home/alice/ai-state: /home/alice (drwx------ alice:alice) is closed to it; set "
        f"state_dir in {config} to a directory that account can reach\n")
    assert snapshot(target) == before


def _planned_and_taken_back(target: Path, planned: subprocess.CompletedProcess[str]) -> None:
    """``planned`` (an --uninstall --dry-run) would remove hal's units, drop-in and commands,
    and --uninstall then takes them all back."""
    removing = {s["target"] for s in json.loads(planned.stdout) if s["action"] == "remove"}
    assert {"/etc/systemd/system/hal-ai.service", "/etc/systemd/system/hal-llm-worker.service",
            "/usr/local/bin/hal-check", "/etc/sudoers.d/ai-sysadmin"} <= removing
    done = setup(target, "--uninstall")
    assert done.returncode == 0, done.stderr
    assert not list((target / "etc/systemd/system").iterdir())
    assert not list((target / "usr/local/bin").iterdir())
    assert not (target / "etc/sudoers.d/ai-sysadmin").exists()
