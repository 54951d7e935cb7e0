"""The CLI as a careful user meets it (issue 11): fast start, arguments checked at the edge."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.cli.dispatch import dispatch
from ai_sysadmin.cli.identity import actor
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.snapshot import Snapshot
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from tests.conftest import BIN, run_program
from tests.support.machine import QUIET_THRESHOLDS

_LOADED = ("import sys; from ai_sysadmin.cli.main import main; main({args!r}); "
           "print(' '.join(sorted(m for m in sys.modules if m.startswith('ai_sysadmin'))))")


def _modules_after(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", _LOADED.format(args=list(args))],
                          capture_output=True, text=True, timeout=60, check=False)
    return set(done.stdout.splitlines()[-1].split())


def _layer(module: str) -> str:
    return (module.split(".") + [""])[1]


@pytest.mark.parametrize("args", [("--help",), ("-h",), ("--version",)])
def test_help_and_version_load_no_library_layer(args: tuple[str, ...]) -> None:
    # what the start costs is what it imports: the config model, the store, the LLM clients
    loaded = _modules_after(*args)
    assert not {m for m in loaded if _layer(m) in {
        "config", "store", "llm", "agent", "executor", "orchestrator", "monitor", "notify"}}


def test_help_loads_no_event_loop() -> None:
    # asyncio (and the ssl it pulls in) is a command's import: 80 ms of every --help otherwise
    done = subprocess.run([sys.executable, "-c", "import sys; from ai_sysadmin.cli.main "
                           "import main; main(['--help']); print('asyncio' in sys.modules)"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.splitlines()[-1] == "False"


def test_a_local_check_loads_no_llm_client_nor_executor() -> None:
    loaded = _modules_after("check", "--no-store")
    assert "ai_sysadmin.orchestrator.checker" in loaded
    assert not {m for m in loaded if _layer(m) in {"llm", "executor", "agent"}
                and m not in {"ai_sysadmin.agent", "ai_sysadmin.agent.prompt"}}


def test_version_and_short_help_flags() -> None:
    version = run_program(str(BIN), "--version")
    assert version.returncode == 0 and version.stdout.startswith("ai-sysadmin ")
    short = run_program(str(BIN), "issues", "-h")
    assert short.returncode == 0 and "resolve" in short.stdout


def test_python_m_runs_the_command_under_its_own_name() -> None:
    # where the venv's bin is not on the PATH: `python -m ai_sysadmin` is `ai-sysadmin`
    version = run_program(sys.executable, "-m", "ai_sysadmin", "--version")
    assert version.returncode == 0 and version.stdout.startswith("ai-sysadmin ")
    typo = run_program(sys.executable, "-m", "ai_sysadmin", "chekc")
    assert typo.returncode == 2
    assert typo.stderr.strip() == "error: No such command 'chekc'. (see `ai-sysadmin --help`)"


@pytest.mark.parametrize("args", [
    ("logs", "-n", "-5"),
    ("logs", "-n", "99999999999999999999"),
    ("issues", "show", "99999999999999999999"),
    # a count past what SQLite's LIMIT holds is refused at the edge too, not by the database
    ("issues", "show", "1", "-n", "9223372036854775808"),
    ("notify", "status", "-n", "9223372036854775808"),
    ("issues", "resolve", "99999999999999999999"),
    ("issues", "close", "0"),
    ("approve", "show", "99999999999999999999"),
    ("approve", "approve", "99999999999999999999"),
    ("approve", "reject", "0"),
    ("approve", "show", "seven"),
])
def test_bad_numbers_are_one_line_and_exit_2(cli, args: tuple[str, ...]) -> None:
    code, out, err = cli(*args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: Invalid value")
    assert "Traceback" not in err


@pytest.mark.parametrize("args", [
    ("issues", "show", "-1"),
    ("issues", "resolve", "-12"),
    ("issues", "close", "-3", "--reason", "gone"),
    ("approve", "show", "-1"),
    ("approve", "approve", "-5"),
    ("approve", "reject", "-1"),
    ("approve", "discuss", "-m", "why?", "-1"),
])
def test_a_negative_id_is_a_bad_id_not_an_unknown_option(cli, args: tuple[str, ...]) -> None:
    code, out, err = cli(*args)
    assert (code, out) == (2, "")
    assert err.startswith("error: Invalid value for 'ID': Input should be greater than or "
                          "equal to 1 (see `ai-sysadmin ")
    assert "No such option" not in err
    # an option that is no number is still an unknown option
    code, _, err = cli(*args[:2], "-x")
    assert code == 2 and err.startswith("error: No such option: -x")


def test_text_that_starts_with_a_dash_is_told_how_to_give(cli) -> None:
    """``ask -5 degrees?``: the question is no option; the error says how to ask it."""
    code, out, err = cli("ask", "-5 degrees outside, is the disk heater on?")
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: No such option: -5; as QUESTION, text that starts with a "
                          "dash goes after `--`: ai-sysadmin ask -- '-5 degrees outside, is "
                          "the disk heater on?'")
    # a mistyped option is still told as one, with what it may have meant
    code, _, err = cli("ask", "--jsn", "why?")
    assert code == 2 and err.startswith("error: No such option: --jsn (Possible options: --json)")


def test_unknown_command_is_one_line(cli) -> None:
    code, _, err = cli("chekc")
    assert code == 2 and err.strip() == ("error: No such command 'chekc'. "
                                         "(see `ai-sysadmin --help`)")


def test_logs_with_nothing_to_show_says_so(cli) -> None:
    code, out, _ = cli("logs")
    assert (code, out.strip()) == (0, "no orchestrator records yet")
    code, out, _ = cli("logs", "audit")
    assert (code, out.strip()) == (0, "no audit records yet")


def _add_unreachable(cli) -> None:
    # port 1 on loopback: refused at once, the way a host that is down answers
    code, _, err = cli("systems", "add", "--name", "web1", "root@127.0.0.1:1")
    assert code == 0, err


def test_check_all_is_a_block_per_host_and_one_summary(cli) -> None:
    _add_unreachable(cli)
    code, out, err = cli("check", "--all")
    lines = out.splitlines()
    assert code == 1 and err == ""
    assert lines[0].endswith("health check of 2 host(s)")
    (down,) = [line for line in lines if "web1" in line]
    assert down.startswith("web1 unreachable: connection refused (") and "127.0.0.1:1)" in down
    assert lines[-1].startswith("2 host(s): ") and lines[-1].endswith("1 unreachable")


def test_check_all_json_is_one_document_with_a_list_per_host(cli) -> None:
    _add_unreachable(cli)
    code, out, _ = cli("check", "--all", "--json", "--no-store")
    document = json.loads(out)
    by_host = {h["host"]: h for h in document["hosts"]}
    assert code == document["exit_code"] == 1 and len(by_host) == 2
    assert by_host["web1"]["reachable"] is False
    assert by_host["web1"]["findings"][0]["rule"] == "host_unreachable"


#: df and ps missing, as on a host without procps: its disks and processes go unjudged.
#: The units and the journal are left out too (on a host with systemd, a failed unit there
#: would be a finding), and what is still read from /proc is judged with thresholds no busy
#: host reaches: what was collected has nothing to find
PARTLY_COLLECTED = """
[programs]
df = "/nonexistent/df"
ps = "/nonexistent/ps"
systemctl = "/nonexistent/systemctl"
journalctl = "/nonexistent/journalctl"
coredumpctl = "/nonexistent/coredumpctl"
""" + QUIET_THRESHOLDS


def test_a_check_of_a_host_not_fully_collected_is_not_healthy(cli, config_file) -> None:
    config_file(PARTLY_COLLECTED)
    code, out, _ = cli("check", "--no-store")
    assert code == 2, out
    assert "not collected mounts: " in out and "not collected processes: " in out
    assert "no findings in what could be collected" in out
    code, out, _ = cli("check", "--json", "--no-store")
    report = json.loads(out)
    assert (code, report["healthy"], report["findings"]) == (2, False, [])
    assert {"mounts", "processes"} <= set(report["errors"])


def test_check_all_findings_anywhere_outrank_a_host_not_fully_collected(cli,
                                                                         config_file) -> None:
    config_file(PARTLY_COLLECTED)
    code, out, _ = cli("check", "--all", "--json", "--no-store")
    assert code == json.loads(out)["exit_code"] == 2
    code, out, _ = cli("check", "--all", "--no-store")
    assert code == 2 and out.splitlines()[-1].endswith("1 not fully collected")
    _add_unreachable(cli)
    code, out, _ = cli("check", "--all", "--json", "--no-store")
    document = json.loads(out)
    assert code == document["exit_code"] == 1
    assert [h["healthy"] for h in document["hosts"]] == [False, False]


def test_name_check_all_runs_the_fleet_check(cli) -> None:
    code, out, _ = cli("--all", argv0="hal-check")
    assert code in (0, 1) and "1 host(s): " in out.splitlines()[-1]


def test_unreachable_host_is_one_line_at_full_width(cli) -> None:
    _add_unreachable(cli)
    code, out, err = cli("check", "web1")
    assert code == 1 and err == ""
    (line,) = [line for line in out.splitlines() if "unreachable" in line]
    # not on a terminal: never folded at 80 columns
    assert line.startswith("web1 unreachable: ") and line.rstrip().endswith("1)")
    assert len(out.splitlines()) == 2


def test_systems_refresh_fails_when_a_host_is_unreachable(cli) -> None:
    _add_unreachable(cli)
    code, out, _ = cli("systems", "refresh")
    assert code == 1 and "web1: unreachable" in out
    code, out, _ = cli("check", "--all", "web1")
    assert code == 2


def test_config_show_json_keeps_value_types(cli) -> None:
    code, out, _ = cli("config", "show", "--json")
    shown = json.loads(out)
    assert code == 0
    assert shown["check_concurrency"]["value"] == 64
    assert isinstance(shown["check_interval"]["value"], float)
    assert shown["autonomy_level"]["value"] == "suggest"


def _incident(tmp_path: Path) -> int:
    store = IncidentStore(Database(tmp_path / "state" / "state.db"))
    finding = Finding("web1", "disk_space", "/var", Severity.CRITICAL, "/var is 97% full",
                      ("/var: 97 of 100 bytes used",))
    return store.record_check("web1", [finding], {"disk_space"}).opened[0]


def test_incident_history_and_resolving_twice(cli, tmp_path: Path) -> None:
    number = _incident(tmp_path)
    assert cli("issues", "resolve", str(number))[:2] == (0, f"incident {number} is now resolved\n")
    code, out, _ = cli("issues", "resolve", str(number))
    assert (code, out) == (0, f"incident {number} is already resolved; nothing changed\n")
    code, out, _ = cli("issues", "show", str(number))
    history = out.split("history:\n")[1].splitlines()
    assert "None" not in out
    assert history[0].endswith("monitor: opened /var is 97% full")
    # who: the account running it (tests/test_actor_identity.py)
    assert history[1].endswith(f"{actor()}: open -> resolved resolved by the operator")


def test_host_text_that_looks_like_markup_prints_as_it_is(cli, tmp_path: Path) -> None:
    # any local user names a process or a unit: "[/b]" must neither crash a listing nor vanish
    store = IncidentStore(Database(tmp_path / "state" / "state.db"))
    finding = Finding("web1", "runaway_process", "x[/b]", Severity.WARNING,
                      "x[/b] (pid 42) [bold]used[/bold] 99% CPU", ("[/x] from the host",))
    number = store.record_check("web1", [finding], {"runaway_process"}).opened[0]
    code, listing, err = cli("issues", "list")
    assert code == 0 and err == ""
    assert "x[/b] (pid 42) [bold]used[/bold] 99% CPU" in listing and "x[/b]" in listing
    code, shown, err = cli("issues", "show", str(number))
    assert code == 0 and err == ""
    assert f"#{number} x[/b] (pid 42) [bold]used[/bold] 99% CPU" in shown
    assert "  > [/x] from the host" in shown


def test_what_the_machine_refuses_is_one_line_and_exit_2(cli, tmp_path: Path) -> None:
    # root meets these too: a name too long for the file system, a directory under /proc
    too_long = f"{tmp_path}/{'x' * 300}/config.toml"
    code, _, err = cli("--config", too_long, "check")
    assert code == 2 and err.startswith("error: ") and "cannot read: File name too long" in err
    assert "Traceback" not in err
    code, _, err = cli("commands", "install", "--bin-dir", "/proc")
    assert code == 2 and err.startswith("error: /proc/.")
    assert err.endswith(": No such file or directory\n") and len(err.splitlines()) == 1


@pytest.mark.parametrize(("args", "shown"), [
    # bytes that are not UTF-8 reach Python as lone surrogates (os.fsdecode)
    (("issues", "list", "--host", os.fsdecode(b"caf\xe9")), r"'caf\xe9'"),
    (("systems", "remove", os.fsdecode(b"x\xffy")), r"'x\xffy'"),
    (("queue", "show", os.fsdecode(b"q-\xff")), r"'q-\xff'"),
])
def test_an_argument_that_is_not_utf8_is_one_line_and_exit_2(cli, args: tuple[str, ...],
                                                              shown: str) -> None:
    code, out, err = cli(*args)
    assert (code, out) == (2, "")
    assert err == f"error: argument {shown} is not UTF-8\n"


def test_policy_check_prints_a_readable_verdict(cli) -> None:
    code, out, _ = cli("policy", "check", "--command", "--", "rm", "-rf", "/")
    assert code == 1
    assert out.splitlines() == [
        "rm -rf /",
        "  as an investigation: refused ('rm' is not on the read-only allow-list: rm writes, "
        "moves or deletes files)",
        "  as a fix:",
        "    run_command rm -rf /: refused",
        "      why: 'rm' is not on the remediation allow-list: rm writes, moves or deletes files",
    ]
    code, out, _ = cli("policy", "check", '{"kind": "vacuum_journal", "parameters": '
                       '{"max_size": "500M"}}')
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("vacuum_journal") and ": allowed, risk " in lines[0]
    assert lines[1].startswith("  at autonomy suggest: ")
    assert any(line.startswith("  runs: journalctl --vacuum-size=") for line in lines)


def _leaf_commands(command: Any, path: tuple[str, ...] = ()
                   ) -> Iterator[tuple[tuple[str, ...], Any]]:
    if hasattr(command, "list_commands"):
        ctx = command.context_class(command, info_name=" ".join(path) or "ai-sysadmin")
        for name in command.list_commands(ctx):
            yield from _leaf_commands(command.get_command(ctx, name), (*path, name))
    else:
        yield path, command


def test_every_option_says_what_it_does() -> None:
    import typer

    from ai_sysadmin.cli.main import app

    silent = [f"{' '.join(path)} {param.name}"
              for path, command in _leaf_commands(typer.main.get_command(app))
              for param in command.params
              if param.param_type_name in ("option", "argument")
              and not getattr(param, "hidden", False) and not param.help]
    assert silent == []


def test_help_shows_flags_without_a_type(cli) -> None:
    code, out, _ = cli("logs", "--help")
    assert code == 0 and "<bool>" not in out
    assert "--json         Print the records as JSON." in out
    assert "-n, --lines N" in out


def test_commands_install_never_replaces_what_it_did_not_make(tmp_path: Path,
                                                              config_file) -> None:
    config_file('ai_name = "hal"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    theirs = bin_dir / "hal-logs"
    theirs.write_text("#!/bin/sh\necho mine\n")
    done = run_program(str(BIN), "commands", "install", "--bin-dir", str(bin_dir))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"error: {theirs} exists and was not made by `commands install`; "
                           "remove it, or replace it with --force\n")
    assert theirs.read_text() == "#!/bin/sh\necho mine\n" and len(list(bin_dir.iterdir())) == 1
    forced = run_program(str(BIN), "commands", "install", "--bin-dir", str(bin_dir), "--force")
    assert forced.returncode == 0 and "mine" not in theirs.read_text()
    # its own files (and the symlinks earlier versions made) it replaces without asking
    (bin_dir / "hal-check").unlink()
    (bin_dir / "hal-check").symlink_to(BIN)
    again = run_program(str(BIN), "commands", "install", "--bin-dir", str(bin_dir))
    assert again.returncode == 0 and not (bin_dir / "hal-check").is_symlink()


def test_commands_install_writes_nothing_for_a_directory_or_a_python_it_cannot_use(
        tmp_path: Path, config_file) -> None:
    config_file('ai_name = "hal"\n')
    typo = tmp_path / "typo" / "bin"
    done = run_program(str(BIN), "commands", "install", "--bin-dir", str(typo))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"error: {typo} is not a directory: create it (mkdir -p {typo}) or "
                           "name another with --bin-dir\n")
    assert not typo.parent.exists()
    # a file where the directory should be: mkdir -p could not make it
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    for given in (a_file, a_file / "bin"):
        done = run_program(str(BIN), "commands", "install", "--bin-dir", str(given))
        assert (done.returncode, done.stdout) == (2, "")
        inside = "" if given == a_file else f" (on the way to {given})"
        assert done.stderr == (f"error: {a_file} is not a directory{inside}: name a directory "
                               "with --bin-dir\n")
        assert "mkdir" not in done.stderr
    assert a_file.read_text() == "mine\n"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # a real Python without ai-sysadmin: every command would fail at its first line
    bare = tmp_path / "bare"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(bare)],
                   check=True, timeout=60)
    for python, said in ((tmp_path / "no-such-python", "is not an executable path: "),
                         (bare / "bin" / "python", "cannot import ai_sysadmin (")):
        done = run_program(str(BIN), "commands", "install", "--bin-dir", str(bin_dir),
                           "--python", str(python))
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert done.stderr.startswith(f"error: {python} {said}"), done.stderr
        assert done.stderr.endswith(": name the Python that has ai-sysadmin installed with "
                                    "--python\n")
        assert list(bin_dir.iterdir()) == []
    done = run_program(str(BIN), "commands", "install", "--bin-dir", str(bin_dir),
                       "--python", sys.executable)
    assert done.returncode == 0, done.stderr
    assert run_program(str(bin_dir / "hal-check"), "--help").returncode == 0


def test_commands_install_refuses_a_python_a_shebang_cannot_name(tmp_path: Path,
                                                                   config_file) -> None:
    # "#!/opt/my tools/bin/python": the kernel runs "/opt/my", and every command failed
    config_file('ai_name = "hal"\n')
    spaced = tmp_path / "my tools" / "python"
    spaced.parent.mkdir()
    spaced.symlink_to(sys.executable)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    done = run_program(str(BIN), "commands", "install", "--bin-dir", str(bin_dir),
                       "--python", str(spaced))
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr == (f"error: {str(spaced)!r} has whitespace in its path, which a #! "
                           "line cannot hold: name the Python by a path without it with "
                           "--python (a symlink to it will do)\n")
    assert list(bin_dir.iterdir()) == []


def test_installed_commands_work_with_a_config_path_of_any_characters(tmp_path: Path) -> None:
    odd = tmp_path / "odd\ndir" / "config.toml"
    odd.parent.mkdir()
    odd.write_text(f'ai_name = "hal"\nstate_dir = "{tmp_path}/state"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {"AI_SYSADMIN_CONFIG": str(odd)}
    assert run_program(str(BIN), "commands", "install", "--bin-dir", str(bin_dir),
                       env=env).returncode == 0
    done = run_program(str(bin_dir / "hal-logs"), "audit")
    assert (done.returncode, done.stdout, done.stderr) == (0, "no audit records yet\n", "")


def test_an_installed_command_whose_config_moved_says_to_install_again(
        tmp_path: Path, config_file) -> None:
    config = config_file(f'ai_name = "hal"\nstate_dir = "{tmp_path}/state"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    assert run_program(str(BIN), "commands", "install", "--bin-dir",
                       str(bin_dir)).returncode == 0
    moved = tmp_path / "etc" / "config.toml"
    moved.parent.mkdir()
    config.rename(moved)
    done = run_program(str(bin_dir / "hal-logs"), "audit",
                       env={"AI_SYSADMIN_CONFIG": str(moved)})
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"error: {config}: file does not exist; hal-logs was made by "
                           "`ai-sysadmin commands install` with this config: run `ai-sysadmin "
                           "--config FILE commands install` again, naming the config where "
                           "it is now\n")
    # a config named on the line is the user's own: its error is the usual one
    gone = tmp_path / "gone.toml"
    done = run_program(str(bin_dir / "hal-logs"), "audit", "-c", str(gone))
    assert done.stderr == f"error: {gone}: file does not exist\n"


def test_commands_install_never_hides_a_program_of_the_same_name(tmp_path: Path,
                                                                  config_file) -> None:
    # ai_name "pkg": pkg-config ahead of the system's, run by every build
    config_file('ai_name = "pkg"\n')
    system = tmp_path / "usr-bin"
    system.mkdir()
    (system / "pkg-config").write_text("#!/bin/sh\necho system\n")
    (system / "pkg-config").chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {"PATH": os.pathsep.join([str(bin_dir), str(system), os.environ["PATH"]])}
    done = run_program(str(BIN), "commands", "install", "--bin-dir", str(bin_dir), env=env)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr == (f"error: {system}/pkg-config is already on PATH: a command of the "
                           "same name for this ai_name would run in its place (or never run); "
                           "set another ai_name, or write them anyway with --force\n")
    assert list(bin_dir.iterdir()) == []
    forced = run_program(str(BIN), "commands", "install", "--bin-dir", str(bin_dir), "--force",
                         env=env)
    assert forced.returncode == 0, forced.stderr
    # its own commands, in its directory or another on PATH, are no program in the way
    other = tmp_path / "bin2"
    other.mkdir()
    env = {"PATH": os.pathsep.join([str(bin_dir), os.environ["PATH"]])}
    again = run_program(str(BIN), "commands", "install", "--bin-dir", str(other), env=env)
    assert again.returncode == 0, again.stderr


def test_installed_commands_carry_their_config(tmp_path: Path, config_file) -> None:
    hal = config_file(f'ai_name = "hal"\nstate_dir = "{tmp_path}/hal"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    assert run_program(str(BIN), "commands", "install", "--bin-dir",
                       str(bin_dir)).returncode == 0
    other = tmp_path / "other.toml"
    other.write_text(f'ai_name = "eve"\nstate_dir = "{tmp_path}/eve"\n')
    bare = {"PATH": os.environ["PATH"], "AI_SYSADMIN_CONFIG": str(other)}
    shown = run_program(str(bin_dir / "hal-config"), "show", "--json", env=bare)
    assert json.loads(shown.stdout)["ai_name"]["value"] == "hal", shown.stderr
    # -c after the command's name is the root's option, and wins
    chosen = run_program(str(bin_dir / "hal-config"), "show", "--json", "-c", str(other))
    assert json.loads(chosen.stdout)["ai_name"]["value"] == "eve", chosen.stderr
    assert hal.is_file()


def test_an_options_value_that_starts_with_dash_c_is_that_value_to_a_tool(
        tmp_path: Path, config_file) -> None:
    config_file(f'ai_name = "hal"\nstate_dir = "{tmp_path}/state"\n')
    db = Database(tmp_path / "state" / "state.db")
    incident = IncidentStore(db).record_check(
        "web1", [Finding("web1", "disk_space", "/var", Severity.CRITICAL, "full")],
        {"disk_space"}).opened[0]
    action = ActionStore(db).create(
        incident_id=incident, proposal_id=None, host="web1", kind="vacuum_journal",
        params={"max_size": "500M"}, subject="journal", risk="medium", plan={},
        outcome="approval", reason="w", state="pending", ttl_seconds=3600).id
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    assert run_program(str(BIN), "commands", "install", "--bin-dir",
                       str(bin_dir)).returncode == 0
    done = run_program(str(bin_dir / "hal-approve"), "reject", str(action), "--reason",
                       "-cheaper to wait")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    shown = run_program(str(BIN), "approve", "show", str(action), "--json")
    assert "-cheaper to wait" in shown.stdout, shown.stderr


def test_a_question_that_starts_with_dash_c_is_the_question_to_hal_ask(
        tmp_path: Path, config_file) -> None:
    """``hal-ask "-cpu at 100%, why?"``: the question was taken for ``-c`` joined to a config
    file named "pu at 100%, why?", and the error said the question was missing. It is the
    question, which the error says to give after ``--``, as ``ai-sysadmin ask`` says it, in
    the words typed (it said ``hal-ask -- '-c ...'``, the option click read)."""
    from tests.support.scripted_model import ScriptedModel, say

    config_file(f'ai_name = "hal"\nstate_dir = "{tmp_path}/state"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    assert run_program(str(BIN), "commands", "install", "--bin-dir",
                       str(bin_dir)).returncode == 0
    question = "-cpu at 100%, why?"
    with ScriptedModel([say("a busy loop")]) as model:
        env = {"AI_SYSADMIN_LLM__URL": model.url, "AI_SYSADMIN_LLM__BACKEND": "openai",
               "AI_SYSADMIN_LLM__MODEL": "scripted"}
        refused = run_program(str(bin_dir / "hal-ask"), question, env=env)
        asked = run_program(str(bin_dir / "hal-ask"), "--", question, env=env)
        sent = [m["content"] for r in model.requests for m in r["messages"]
                if m["role"] == "user"]
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.startswith(
        "error: No such option: -c; as QUESTION, text that starts with a dash goes after "
        "`--`: hal-ask -- '-cpu at 100%, why?'"), refused.stderr
    assert asked.returncode == 0 and "a busy loop" in asked.stdout, asked.stderr
    assert sent == [question]


def test_a_config_joined_to_dash_c_is_a_file_or_reads_as_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").write_text("")
    for given, taken in [("-c/x.toml", "/x.toml"), ("-cx.toml", "x.toml"),
                         ("-cmine", "mine"), ("-c./etc/x", "./etc/x")]:
        assert dispatch("hal-check", [given]) == ("hal-check", ["--config", taken, "check"])
    for text in ("-cpu at 100%, why?", "-cpu", "-c mine"):
        assert dispatch("hal-ask", [text], config="/x.toml") == (
            "hal-ask", ["--config", "/x.toml", "ask", text])


@pytest.mark.parametrize("config", ["-c{}", "--config={}"])
def test_the_config_joined_to_its_option_leaves_json_and_listing_anywhere(
        tmp_path: Path, config: str) -> None:
    path = tmp_path / "joined.toml"
    path.write_text(f'ai_name = "hal"\nstate_dir = "{tmp_path}/state"\n')
    issues = run_program(str(BIN), config.format(path), "--json", "issues")
    assert (issues.returncode, json.loads(issues.stdout)) == (0, []), issues.stderr
    waiting = run_program(str(BIN), config.format(path), "approve", "--all")
    assert (waiting.returncode, waiting.stderr) == (0, ""), waiting.stderr


def test_config_option_after_a_tool_name_moves_in_front() -> None:
    assert dispatch("hal-check", ["--json", "-c", "/x.toml"]) == (
        "hal-check", ["--config", "/x.toml", "check", "--json"])
    assert dispatch("hal-check", ["--config=/y.toml"], config="/x.toml") == (
        "hal-check", ["--config", "/y.toml", "check"])
    assert dispatch("hal-ask", ["--", "-c"], config="/x.toml") == (
        "hal-ask", ["--config", "/x.toml", "ask", "--", "-c"])


def test_a_tool_is_called_by_its_own_name_in_help_and_errors(cli) -> None:
    code, out, _ = cli("--help", argv0="hal-check")
    assert code == 0 and out.splitlines()[0] == "Usage: hal-check [OPTIONS] [HOST]"
    code, _, err = cli("show", "0", argv0="/usr/local/bin/hal-issues")
    assert code == 2 and err.rstrip().endswith("(see `hal-issues show --help`)")


def test_every_option_with_a_value_names_it() -> None:
    import typer

    from ai_sysadmin.cli.main import app

    unnamed = [f"{' '.join(path)} {param.name}"
               for path, command in _leaf_commands(typer.main.get_command(app))
               for param in command.params
               if param.param_type_name == "option" and not param.is_flag
               and not param.metavar]
    assert unnamed == []


def test_json_is_asked_for_the_same_way_anywhere_on_the_line(cli) -> None:
    behind = cli("issues", "list", "--json")
    before = cli("--json", "issues", "list")
    assert behind[0] == before[0] == 0 and json.loads(before[1]) == json.loads(behind[1])
    # a group that lists when given no command lists as JSON too
    for group in ("issues", "approve", "systems", "knowledge", "queue"):
        for line in ((group, "--json"), ("--json", group)):
            code, out, err = cli(*line)
            assert code == 0, (line, err)
            json.loads(out)
    action = '{"kind": "vacuum_journal", "parameters": {"max_size": "500M"}}'
    # policy check stops reading options at its first argument: --json after it still counts
    code, out, _ = cli("policy", "check", action, "--json")
    assert code == 0 and json.loads(out)["kind"] == "vacuum_journal"
    code, out, _ = cli("policy", "check", "--json", "--command", "--", "ls", "--json")
    assert json.loads(out)["argv"] == ["ls", "--json"]  # after --, it is the argv's own


def test_shell_completion_completes_commands_and_subcommands() -> None:
    def complete(words: str, index: int) -> str:
        env = {**os.environ, "_AI_SYSADMIN_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(index)}
        return subprocess.run([str(BIN)], env=env, capture_output=True, text=True,
                              timeout=30).stdout.split()

    assert complete("ai-sysadmin iss", 1) == ["issues"]
    assert complete("ai-sysadmin approve ap", 2) == ["approve"]
    # typer names the shell by the process that started the command: a bash, here, whatever
    # started the test run (a detached one has none to find; "exit" keeps bash from exec-ing it)
    shown = subprocess.run(["bash", "-c", f"{shlex.quote(str(BIN))} --show-completion; exit $?"],
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and "_ai_sysadmin_completion" in shown.stdout


@pytest.mark.parametrize(("group", "option"), [
    ("approve", "--all"), ("systems", "--all"), ("knowledge", "--category=systemd"),
    ("issues", "--all")])
def test_a_group_that_lists_takes_the_lists_options_without_the_word_list(
        cli, group: str, option: str) -> None:
    for asked in ((option,), (option, "--json")):
        listed = cli(group, "list", *asked)
        assert listed[0] == 0, listed
        assert cli(group, *asked) == listed, asked
    # the group's own options stay its own, and a mistyped one is still refused
    code, out, _ = cli(group, "--help")
    assert code == 0 and "list" in out
    code, _, err = cli(group, "--no-such-option")
    assert code == 2 and "--no-such-option" in err


def test_help_texts_are_plain_text_without_rest_quotes(cli) -> None:
    # a docstring's ``literal`` is for the reader of the code; --help shows it as written
    import typer

    from ai_sysadmin.cli.main import app

    quoted = []
    for path, _ in _leaf_commands(typer.main.get_command(app)):
        code, out, _ = cli(*path, "--help")
        assert code == 0, path
        if "``" in out:
            quoted.append(" ".join(path))
    assert quoted == []


def test_an_optional_argument_is_bracketed_once_in_usage(cli) -> None:
    # click brackets an optional argument's metavar itself: "[FILE]" became "[[FILE]]"
    import typer

    from ai_sysadmin.cli.main import app

    usages = {}
    for path, _ in _leaf_commands(typer.main.get_command(app)):
        _, out, _ = cli(*path, "--help")
        usages[" ".join(path)] = out.splitlines()[0]
    assert [u for u in usages.values() if "[[" in u] == []
    assert usages["knowledge import"].endswith("knowledge import [OPTIONS] [FILE]")
    assert usages["knowledge export"].endswith("knowledge export [OPTIONS] [FILE]")


def test_check_all_with_one_check_that_raises_still_reports_the_others(
        cli, monkeypatch) -> None:
    # a bug in one host's check (no host answer is known to make one raise: the collection
    # is made to raise, as tests/orchestrator/test_check_failing.py does) cost every other
    # host's report: the command ended at the first with one line
    _add_unreachable(cli)
    collect = Collector.collect

    async def raising_here(self: Collector, *args: object, **kwargs: object) -> Snapshot:
        if self.transport.host != "web1":
            raise ValueError("a parser's bug")
        return await collect(self, *args, **kwargs)

    monkeypatch.setattr(Collector, "collect", raising_here)
    code, out, err = cli("check", "--all", "--no-store")
    lines = out.splitlines()
    assert code == 1, out + err  # web1's finding outranks the failed check
    assert lines[0].endswith("health check of 2 host(s)")
    assert any(line.startswith("web1 unreachable: connection refused") for line in lines), out
    assert any(" check failed: ValueError: a parser's bug" in line for line in lines), out
    assert lines[-1] == "2 host(s): 0 healthy, 0 with findings, 1 unreachable, 1 whose check failed"
    code, out, _ = cli("check", "--all", "--json", "--no-store")
    by_host = {h["host"]: h for h in json.loads(out)["hosts"]}
    assert by_host["web1"]["reachable"] is False
    [local] = [h for name, h in by_host.items() if name != "web1"]
    assert local["healthy"] is False and "ValueError: a parser's bug" in local["error"]
    # the shape of every host's entry, as a script reads it
    assert set(local) == set(by_host["web1"]) | {"error"}
    assert local["findings"] == [] and "a parser's bug" in local["errors"]["check"]


def test_an_empty_host_name_is_refused_not_read_as_every_host(cli) -> None:
    """A cron script's unset variable, `issues --host "$H"`: it listed every host's incidents
    (exit 0) and `systems refresh ""` checked the whole fleet."""
    for command in (("issues", "--host", ""), ("issues", "list", "--json", "--host", " "),
                    ("logs", "audit", "--host", ""), ("systems", "refresh", "")):
        code, out, err = cli(*command)
        assert code == 2 and out == "", command
        assert "an empty host name names no host" in err, (command, err)



@pytest.mark.parametrize("named", [("-c~/hal.toml",), ("--config=~/hal.toml",),
                                   ("--config", "~/hal.toml"), ()])
def test_a_config_named_from_the_home_directory_is_found(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named: tuple[str, ...]) -> None:
    """A ``~`` the shell left as it is (it expands one only at a word's start: ``-c~/x``,
    ``--config=~/x``; a wrapper's quoted word, a unit's Environment=) was "file does not
    exist"."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "hal.toml").write_text('ai_name = "halfrom"\n')
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", "~/hal.toml")  # () : the variable names it
    code, out, err = cli(*named, "config", "show", "--json")
    assert code == 0, err
    assert json.loads(out)["ai_name"] == {"value": "halfrom",
                                          "source": f"file {home / 'hal.toml'}"}


@pytest.mark.parametrize("args", [("check", "--no-store"), ("version",), ("--help",)])
def test_a_command_started_with_its_stdout_closed_says_so_in_one_line(
        args: tuple[str, ...]) -> None:
    """``ai-sysadmin check >&-`` (a cron line, a wrapper that closed descriptor 1): every
    command was an AttributeError traceback, from the console made at import."""
    done = run_program("sh", "-c", 'exec "$0" "$@" >&-', str(BIN), *args)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("error: standard output is closed: give the command one "
                           "(>/dev/null to discard what it prints)\n")
    # with stderr closed too, nothing to say it on: the exit code alone
    done = run_program("sh", "-c", 'exec "$0" "$@" >&- 2>&-', str(BIN), *args)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", "")


@pytest.mark.parametrize("args", [("version",), ("check", "--no-store", "--json")])
def test_a_reader_that_closed_the_pipe_is_a_sigpipe_exit_not_findings(
        args: tuple[str, ...]) -> None:
    """``check --json | head -c1``: the reader gone, typer exited 1, which is "findings" to
    check, with nothing said. Now 141, as coreutils end (by SIGPIPE), and nothing said: the
    reader wanted no more."""
    read, write = os.pipe()
    os.close(read)  # the reader gone before the first write: each write fails (EPIPE)
    try:
        done = subprocess.run([str(BIN), *args], stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=120, check=False)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")
