from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from ai_sysadmin.config import (
    Settings,
    default_config_path,
    default_state_dir,
    getattr_dotted,
    load_settings,
    short_hostname,
    split_target,
)
from ai_sysadmin.errors import ConfigError
from ai_sysadmin.hosts.inventory import configured_hosts
from ai_sysadmin.setup_host import sample_config
from tests.conftest import BIN, run_program
from tests.support.terminal import on_a_terminal


def test_name_defaults_to_short_hostname() -> None:
    assert short_hostname("server.example.com") == "server"
    assert short_hostname("Web01.Lab") == "web01"
    loaded = load_settings(environ={})
    assert loaded.settings.ai_name == short_hostname()
    assert loaded.settings.autonomy_level == "suggest"
    assert loaded.settings.check_interval == 300
    assert loaded.settings.config_branch == "main"


def test_file_then_environment_with_sources(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'ai_name = "hal"\nautonomy_level = "auto-safe"\n[llm]\nmodel = "m1"\n'
        "[thresholds]\ndisk_warn_percent = 70\n"
    )
    loaded = load_settings(path, environ={"AI_SYSADMIN_LLM__MODEL": "m2",
                                          "AI_SYSADMIN_CHECK_INTERVAL": "60"})
    s = loaded.settings
    assert (s.ai_name, s.autonomy_level, s.llm.model, s.check_interval) == (
        "hal", "auto-safe", "m2", 60)
    assert s.thresholds.disk_warn_percent == 70
    assert loaded.source_of("ai_name") == f"file {path}"
    assert loaded.source_of("llm.model") == "env AI_SYSADMIN_LLM__MODEL"
    assert loaded.source_of("llm.url") == "default"


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("ai_name = 'hal\n", ["TOML syntax error"]),
        ("colour = 'blue'\n", ["unknown key 'colour'", "autonomy_level", "check_interval"]),
        ("[thresholds]\ndisk_warn = 3\n", ["unknown key 'thresholds.disk_warn'",
                                           "disk_warn_percent"]),
        ("check_interval = 'often'\n", ["key 'check_interval'", "number", "'often'"]),
        ("autonomy_level = 'yolo'\n", ["key 'autonomy_level'", "'observe'", "'auto-full'"]),
        ("[llm]\nbackend = 'gpt'\n", ["key 'llm.backend'", "'ollama'", "'openai'"]),
        ("ai_name = 'Bad Name!'\n", ["key 'ai_name'", "a-z"]),
        ("[safety]\nclean_paths = ['/var/cache', '/']\n", ["safety.clean_paths",
                                                          "'/' is a system directory"]),
        ("[safety]\nclean_paths = ['/etc/']\n", ["'/etc/' is a system directory"]),
        ("[safety]\nclean_paths = ['/var/cache/../lib/x']\n", ["plain absolute path"]),
        ("[safety]\nclean_paths = ['tmp']\n", ["plain absolute path"]),
        # a section given a value: the table a reader writes, not pydantic's class name
        ("llm = 'ollama'\n", ["key 'llm': should be a table of settings ([llm]) (got 'ollama')"]),
    ],
)
def test_bad_file_is_refused_with_file_key_and_allowed(
    tmp_path: Path, text: str, needles: list[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message


def test_a_top_level_key_appended_after_the_last_table_is_told_where_it_goes(
        tmp_path: Path, cli) -> None:
    """setup's sample config ends inside [knowledge]: a line appended at its end (echo >>,
    an editor's last line) went into that table, and "unknown key 'knowledge.remote_systems'"
    with knowledge's keys did not say that remote_systems belongs above it."""
    path = tmp_path / "config.toml"
    path.write_text(sample_config({"ai_name": "hal", "state_dir": str(tmp_path / "state")})
                    + 'remote_systems = ["web1", "admin@db1:2222"]\n')
    code, out, err = cli("--config", str(path), "config", "show")
    assert (code, out) == (2, "")
    said = " ".join(err.split())
    assert said.startswith(f"error: {path}: unknown key 'knowledge.remote_systems'; allowed "
                           "keys here: ")
    assert said.endswith("; remote_systems is a top-level key: put it above the first [table]")
    # a key no table has is told only what its table allows
    path.write_text("[knowledge]\nremote_sytems = []\n")
    code, _, err = cli("--config", str(path), "config", "show")
    assert code == 2 and "top-level" not in err


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="AI_SYSADMIN_AUTONOMY_LEVEL"):
        load_settings(environ={"AI_SYSADMIN_AUTONOMY_LEVEL": "maybe"})


def test_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_cli_refuses_bad_config_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("autonomy_level = 'yolo'\n")
    state = tmp_path / "never-created"
    result = run_program(str(BIN), "--config", str(path), "check",
                         env={"AI_SYSADMIN_STATE_DIR": str(state)})
    assert result.returncode == 2
    assert str(path) in result.stderr and "autonomy_level" in result.stderr
    assert "Traceback" not in result.stderr
    assert not state.exists()


@pytest.mark.parametrize(("var", "value", "said"), [
    ("AI_SYSADMIN_AI_NAME", "Bad Name!", "key 'ai_name' (from env AI_SYSADMIN_AI_NAME): must "
     "be 1-32 characters"),
    ("AI_SYSADMIN_LLM__TIMEOUT", "soon", "key 'llm.timeout' (from env "
     "AI_SYSADMIN_LLM__TIMEOUT): Input should be a valid number"),
    # a table judged as a whole names the variable that set a key in it
    ("AI_SYSADMIN_THRESHOLDS__DISK_WARN_PERCENT", "99", "key 'thresholds' (from env "
     "AI_SYSADMIN_THRESHOLDS__DISK_WARN_PERCENT): a warning threshold must come before"),
    ("AI_SYSADMIN_SAFETY__PROTECTED_UNITS", '["a/b"]', "key 'safety.protected_units' (env "
     "AI_SYSADMIN_SAFETY__PROTECTED_UNITS): entry 1"),
])
def test_a_bad_variable_is_the_environments_error_not_the_files(
        tmp_path: Path, var: str, value: str, said: str) -> None:
    path = tmp_path / "fine.toml"
    path.write_text('ai_name = "hal"\n')
    result = run_program(str(BIN), "--config", str(path), "config", "show", env={var: value})
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: the environment: {said}")
    assert str(path) not in result.stderr
    assert "Value error" not in result.stderr


def test_a_bad_file_and_a_bad_variable_name_each_their_origin(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("autonomy_level = 'yolo'\n")
    result = run_program(str(BIN), "--config", str(path), "config", "show",
                         env={"AI_SYSADMIN_AI_NAME": "Bad Name!"})
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}: ")
    assert "key 'autonomy_level': Input should be" in result.stderr
    assert "key 'ai_name' (from env AI_SYSADMIN_AI_NAME): must be 1-32" in result.stderr


@pytest.mark.parametrize("in_file", ['remote_systems = ["web1"]\n', ""])
def test_a_variable_that_sets_a_key_inside_a_list_is_named_in_the_error(
        config_file, in_file: str) -> None:
    """AI_SYSADMIN_REMOTE_SYSTEMS__0__HOST makes the file's list a table: the error blamed the
    file alone ("key 'remote_systems': Input should be a valid list") and never named the
    variable that made it so."""
    path = config_file(f'ai_name = "hal"\n{in_file}')
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={"AI_SYSADMIN_REMOTE_SYSTEMS__0__HOST": "web2"})
    assert refused.value.source == (str(path) if in_file else "the environment")
    assert ("key 'remote_systems' (from env AI_SYSADMIN_REMOTE_SYSTEMS__0__HOST): Input "
            "should be a valid list") in str(refused.value)


def test_config_show_masks_secrets_and_names_sources(cli, config_file, tmp_path: Path) -> None:
    token = tmp_path / "gotify.token"
    token.write_text("AppTok\n")
    token.chmod(0o600)
    path = config_file('ai_name = "hal"\ngotify_url = "https://bot:s3cret@push.example"\n'
                       f'gotify_token_file = "{token}"\n')
    code, out, _ = cli("config", "show", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["gotify_url"]["value"] == "https://bot:****@push.example"
    assert "s3cret" not in out
    assert shown["ai_name"] == {"value": "hal", "source": f"file {path}"}
    assert shown["autonomy_level"]["source"] == "default"
    assert shown["state_dir"]["source"] == "env AI_SYSADMIN_STATE_DIR"


def _on_a_terminal(argv: list[str], env: dict[str, str], columns: int) -> str:
    """What a command prints to a terminal ``columns`` wide (a pseudo-terminal of its own)."""
    _, said = on_a_terminal(argv, {**os.environ, **env, "COLUMNS": str(columns)})
    # as a person sees it: without the escapes that make it bold or dim
    return re.sub(r"\x1b\[[0-9;]*m", "", said.decode()).replace("\r\n", "\n")


def test_a_config_file_with_a_password_that_every_user_may_read_is_said(
        cli, config_file, tmp_path: Path) -> None:
    """A password in llm.url makes the config file a credential, as llm.api_key_file is one:
    that file every user could read was said; the config file holding the password, not."""
    path = config_file(f'state_dir = "{tmp_path / "state"}"\n[llm]\nbackend = "openai"\n'
                       'url = "http://alice:s3cret@127.0.0.1:9"\nmodel = "m"\n')
    path.chmod(0o644)
    code, out, err = cli("config", "show")
    assert code == 0 and "s3cret" not in out + err
    assert err == (f"note: {path} holds a credential (in llm.url) and is readable by every "
                   "user: chmod o-r it\n")
    path.chmod(0o640)
    assert cli("config", "show")[2] == ""
    # readable by all, with no password in it: nothing to say
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n[llm]\nurl = "http://127.0.0.1:9"\n')
    path.chmod(0o644)
    assert cli("config", "show")[2] == ""


def test_config_show_is_a_line_a_setting_piped_and_fits_80_columns(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('ai_name = "hal"\n[thresholds]\ndisk_warn_percent = 80\n')
    env = {"AI_SYSADMIN_CONFIG": str(path), "AI_SYSADMIN_STATE_DIR": str(tmp_path / "st")}
    piped = run_program(str(BIN), "config", "show", env=env)
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    # each setting on a line of its own, as long as it is and no longer (it was a table
    # padded to 276 columns on every line); where it came from, unless the default
    assert 'ai_name = "hal"  # file' in lines
    assert f'state_dir = "{tmp_path / "st"}"  # env AI_SYSADMIN_STATE_DIR' in lines
    assert "thresholds.disk_warn_percent = 80.0  # file" in lines
    assert "thresholds.disk_critical_percent = 95.0" in lines
    assert not [line for line in lines if line != line.rstrip()]
    # only a value longer than a line makes one (here the test's own paths, and a list of
    # patterns): whole, for grep
    long = [line for line in lines if len(line) > 80 and str(tmp_path) not in line]
    assert [line.split(" = ")[0] for line in long] == ["config_repo_exclude"]
    assert long[0].endswith('"*shadow*"]')
    shown = _on_a_terminal([str(BIN), "config", "show"], env, columns=80)
    on_screen = shown.splitlines()
    assert max(len(line) for line in on_screen) <= 80
    # a key is never cut in two; a long value goes on under its own key, indented
    assert "thresholds.memory_available_critical_percent = 5.0" in on_screen
    at = next(i for i, line in enumerate(on_screen) if line.startswith("config_repo_exclude"))
    assert on_screen[at + 1].startswith("    ") and '"*shadow*"]' in on_screen[at + 2]


def test_config_show_masks_tokens_in_user_names_and_queries(cli, config_file,
                                                            monkeypatch) -> None:
    config_file('config_repo = "https://ghp_TOKEN1234@github.com/me/nixos.git"\n'
                '[llm]\nurl = "http://127.0.0.1:8080/v1?api_key=QUERYSECRET"\n')
    code, out, _ = cli("config", "show", "--json")
    assert code == 0 and "TOKEN1234" not in out and "QUERYSECRET" not in out
    shown = json.loads(out)
    assert shown["config_repo"]["value"] == "https://****@github.com/me/nixos.git"
    assert shown["llm.url"]["value"] == "http://127.0.0.1:8080/v1?api_key=****"


def test_a_refused_url_under_any_key_is_never_echoed(cli, monkeypatch) -> None:
    monkeypatch.setenv("AI_SYSADMIN_KNOWLEDGE__OLLAMA_URL", "ftp://admin:Hunter2Secret@x:1")
    code, _, err = cli("config", "show")
    assert code == 2 and "knowledge.ollama_url" in err
    assert "Hunter2Secret" not in err


@pytest.mark.parametrize(("variable", "url"), [
    ("AI_SYSADMIN_QUEUE__URL", "redis://:Xk9/Qw+Zr8pL@redis.lan:6379/0"),
    ("AI_SYSADMIN_GOTIFY_URL", "https://admin:s3cr#tXk9@push.lan"),
    ("AI_SYSADMIN_LLM__URL", "http://bot:Xk9/Qw?Zr8pL@llm.lan:11434"),
])
def test_a_password_of_base64_or_with_a_hash_is_masked_in_any_error_or_show(
        cli, monkeypatch, variable: str, url: str) -> None:
    """A password holding '/', '?' or '#' (as `openssl rand -base64` writes them) ended
    where urlsplit takes the path to start: nothing was hidden, and the refused URL was
    printed whole (in the journal too, when the daemon would not start)."""
    monkeypatch.setenv(variable, url)
    _, out, err = cli("config", "show")
    assert "Xk9" not in out + err and "s3cr" not in out + err, out + err


def test_a_settle_time_past_the_verify_timeout_is_refused(config_file) -> None:
    """Every fix counts once its finding stayed gone verify_settle_seconds, within
    verify_timeout: with the settle time the longer, each fix that worked was "not verified
    after N s", failed and escalated."""
    path = config_file("[safety]\nverify_timeout = 3\nverify_settle_seconds = 5\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    assert "verify_settle_seconds (5) is not below verify_timeout (3)" in str(refused.value)


@pytest.mark.parametrize("key", ["[llm]\napi_key_file", "gotify_token_file",
                                 "[notify]\napprise_urls_file", "[knowledge]\ntoken_file"])
def test_a_credential_file_is_found_by_its_home_path_and_never_by_a_relative_one(
        config_file, monkeypatch, tmp_path: Path, key: str) -> None:
    """'~/llm.key' was looked for in a directory named '~', and 'llm.key' or '' in whatever
    directory the command ran from: it worked from a shell and failed in the daemon (/)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    name = key.rpartition("\n")[2]
    loaded = load_settings(config_file(f'{key} = "~/secret"\n')).settings
    assert getattr_dotted(loaded, {"api_key_file": "llm.api_key_file",
                                   "apprise_urls_file": "notify.apprise_urls_file",
                                   "token_file": "knowledge.token_file"}.get(name, name)
                          ) == tmp_path / "secret"
    for relative in ("secret", ""):
        with pytest.raises(ConfigError, match=f"{name}': must be an absolute path"):
            load_settings(config_file(f'{key} = "{relative}"\n'))


def test_non_root_gets_xdg_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "st"))
    assert default_config_path() == tmp_path / "cfg" / "ai-sysadmin" / "config.toml"
    assert default_state_dir() == tmp_path / "st" / "ai-sysadmin"
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert default_config_path() == Path("/etc/ai-sysadmin/config.toml")
    assert default_state_dir() == Path("/var/lib/ai-sysadmin")


def test_cli_refuses_a_protected_unit_that_is_no_unit_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[safety]\nprotected_units = ["postgresql*", "ssh d"]\n')
    result = run_program(str(BIN), "--config", str(path), "config", "show",
                         env={"AI_SYSADMIN_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 2
    assert str(path) in result.stderr and "safety.protected_units" in result.stderr
    assert "entry 2" in result.stderr and "whitespace" in result.stderr


def test_every_config_example_in_the_readme_loads(tmp_path: Path) -> None:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    blocks = re.findall(r"```toml\n(.*?)```", readme.read_text(), re.S)
    assert len(blocks) >= 2
    for n, block in enumerate(blocks):
        path = tmp_path / f"example{n}.toml"
        path.write_text(block)
        load_settings(path, environ={})  # a ConfigError here names the key the README got wrong


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('remote_systems = ["user@:99999"]\n', ["remote_systems", "'user@:99999' names no host"]),
        ('remote_systems = ["web1:99999"]\n', ["remote_systems", "port 99999 is not 1-65535"]),
        ('remote_systems = ["[zz]:22"]\n', ["remote_systems", "is not an IPv6 address"]),
        ('remote_systems = [{host = "-oProxyCommand=x"}]\n', ["remote_systems", "host name"]),
        ("[thresholds]\ndisk_warn_percent = 97\n",
         ["thresholds", "disk_warn_percent (97) is above disk_critical_percent (95)"]),
        ("[thresholds]\nmemory_available_warn_percent = 3\n",
         ["memory_available_warn_percent (3) is below memory_available_critical_percent (5)"]),
        ("[thresholds]\nload_per_core_warn = 8\ninode_warn_percent = 99\n",
         ["load_per_core_warn (8) is above", "inode_warn_percent (99) is above"]),
        ('state_dir = "state"\n', ["state_dir", "must be an absolute path"]),
    ],
)
def test_values_that_cannot_work_are_refused_at_load(
    tmp_path: Path, text: str, needles: list[str]
) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert str(path) in str(info.value)
    for needle in needles:
        assert needle in str(info.value)


def test_ipv6_remote_systems_load(tmp_path: Path) -> None:
    path = tmp_path / "v6.toml"
    path.write_text('remote_systems = ["[2001:db8::1]:22", "admin@[::2]:2222", '
                    '{host = "[fe80::1]"}]\n'
                    '[thresholds]\ndisk_warn_percent = 95\n')
    assert len(load_settings(path, environ={}).settings.remote_systems) == 3


@pytest.mark.parametrize(("entries", "needle"), [
    ('["127.0.0.9:2201", "127.0.0.9:2202"]', "are both named '127.0.0.9'"),
    ('[{host = "127.0.0.11", port = 2201, name = "web"}, '
     '{host = "127.0.0.12", port = 2201, name = "web"}]',
     "are both named 'web'"),
    ('[{host = "127.0.0.13", port = 2201, name = "@here@"}]', "the name of this machine"),
    # a name's case and a trailing dot made three systems of one: one SSH host, every
    # incident tripled
    ('["web9", "WEB9", "web9."]',
     "'web9' and 'WEB9' are both named 'web9' (a name's case and a trailing dot make no "
     "other host)"),
    ('["web1", "web1."]', "'web1' and 'web1.' are both named 'web1'"),
    ('[{host = "127.0.0.14", port = 2201, name = "Web"}, '
     '{host = "127.0.0.15", port = 2201, name = "web."}]',
     "are both named 'web'"),
    ('[{host = "127.0.0.13", port = 2201, name = "@HERE@."}]', "the name of this machine"),
    ('["@HERE@:2201"]', "the name of this machine"),
])
def test_two_remote_systems_of_one_name_are_refused(tmp_path: Path, entries: str,
                                                    needle: str) -> None:
    # one of them would never be watched: a host is known by its name
    from ai_sysadmin.config import short_hostname

    path = tmp_path / "twice.toml"
    entries = entries.replace("@here@", short_hostname()).replace(
        "@HERE@", short_hostname().upper())
    path.write_text(f"remote_systems = {entries}\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    assert needle in str(refused.value)


@pytest.mark.parametrize(("entries", "needle"), [
    ('[{host = "192.0.2.10", name = "web-a"}, {host = "192.0.2.10", name = "web-b", '
     'user = "ops"}, "192.0.2.10:22"]',
     "remote_systems[0] {host = '192.0.2.10', name = 'web-a'} and remote_systems[1] "
     "{host = '192.0.2.10', name = 'web-b'} are one machine (192.0.2.10:22"),
    ('["web1", "db1", {host = "WEB1.", port = 22, user = "ops", name = "w"}]',
     "remote_systems[0] 'web1' and remote_systems[2] {host = 'WEB1.', port = 22, name = 'w'} "
     "are one machine (web1:22"),
    ('["[2001:db8::1]:2222", {host = "2001:db8::1", port = 2222, name = "v6"}]',
     "are one machine ([2001:db8::1]:2222"),
])
def test_one_machine_twice_in_remote_systems_is_refused(tmp_path: Path, entries: str,
                                                        needle: str) -> None:
    # under two names (or users) one machine was checked twice: every incident twice, and
    # two fixes could race on it
    path = tmp_path / "twins.toml"
    path.write_text(f"remote_systems = {entries}\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    assert needle in str(refused.value) and "list it once" in str(refused.value)


def test_one_host_at_two_ports_is_two_machines(tmp_path: Path) -> None:
    # another port is another sshd (a container, a VM behind a forward)
    path = tmp_path / "ports.toml"
    path.write_text('remote_systems = ["web1", {host = "web1", port = 2222, name = "vm1"}]\n')
    assert len(load_settings(path, environ={}).settings.remote_systems) == 2


@pytest.mark.parametrize(("entry", "why"), [
    ('"127.0.0.1"', "127.0.0.1 names it"),
    ('"root@localhost:22"', "localhost names it"),
    ('"[::1]"', "::1 names it"),
    ('"@HERE@"', "@here@ names it"),
    ('{host = "127.0.1.1", name = "self"}', "127.0.1.1 names it"),
    # the C library's numeric forms, as ssh reads them
    ('"127.1"', "127.1 names it"),
    ('"0x7f000001:22"', "0x7f000001 names it"),
    # the name /etc/hosts gives one of this machine's addresses (its FQDN)
    ('"box.example.org"', "box.example.org is its address 127.0.0.1"),
])
def test_this_machine_in_remote_systems_is_refused(tmp_path: Path, monkeypatch, entry: str,
                                                   why: str) -> None:
    """This machine listed as a remote system was checked twice, under two names, and two
    fixes could race on it; its sshd at another port (a container's, a VM's forward) is a
    host of its own."""
    from ai_sysadmin import here
    from ai_sysadmin.config import short_hostname

    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost box.example.org\n192.0.2.99 web7\n")
    monkeypatch.setattr(here, "HOSTS_FILE", hosts)
    path = tmp_path / "here.toml"
    entry = entry.replace("@HERE@", short_hostname().upper())
    path.write_text(f"remote_systems = [{entry}]\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    said = str(refused.value)
    assert f"is this machine ({why.replace('@here@', short_hostname().upper())}), which every " \
        "check watches already" in said and "remote_systems" in said
    path.write_text('remote_systems = ["127.0.0.1:2222", {host = "box.example.org", port = '
                    '2200, name = "box-vm"}, "web7"]\n')
    assert len(load_settings(path, environ={}).settings.remote_systems) == 3


def test_a_remote_system_that_is_no_host_name_is_named_once(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text('remote_systems = ["web 1"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    said = str(info.value)
    assert "key 'remote_systems': 'web 1' is not a host name (" in said
    assert said.count("'web 1'") == 2  # the entry, and what the value was (got [...])


def test_a_remote_systems_name_is_a_host_name_as_systems_add_takes(tmp_path: Path) -> None:
    # it keys the host in the store, `systems NAME` and every notification's title
    path = tmp_path / "named.toml"
    path.write_text('remote_systems = [{host = "10.0.0.5", name = "db one/primary"}]\n')
    with pytest.raises(ConfigError, match=r"key 'remote_systems\[0\]\.name': 'db one/primary' is "
                       "not a host name"):
        load_settings(path, environ={})
    path.write_text('remote_systems = [{host = "10.0.0.5", name = "db1"}]\n')
    (system,) = load_settings(path, environ={}).settings.remote_systems
    assert not isinstance(system, str) and system.name == "db1"


@pytest.mark.parametrize(("text", "needle"), [
    ('remote_systems = ["user@:99999"]\n', "'user@:99999' names no host"),
    ("[thresholds]\ndisk_warn_percent = 97\n", "disk_warn_percent (97) is above"),
    ('state_dir = "state"\n', "must be an absolute path"),
    # it was `knowledge list`'s traceback: the socket's timeout overflowed
    ("[knowledge]\ntimeout = 1e300\n", "key 'knowledge.timeout': must be at most a day"),
])
def test_cli_names_the_file_of_a_value_that_cannot_work(
    tmp_path: Path, text: str, needle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AI_SYSADMIN_STATE_DIR")  # the file's state_dir is the one judged
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = run_program(str(BIN), "--config", str(path), "systems", "list")
    assert result.returncode == 2
    assert str(path) in result.stderr and needle in result.stderr
    assert "Traceback" not in result.stderr


def test_a_value_and_a_key_inside_it_from_the_environment_is_one_clear_error(
        tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("")
    with pytest.raises(ConfigError, match="AI_SYSADMIN_LLM sets 'llm' to a value and "
                       "AI_SYSADMIN_LLM__MODEL sets a key inside it"):
        load_settings(path, environ={"AI_SYSADMIN_LLM": "x", "AI_SYSADMIN_LLM__MODEL": "y"})


def test_a_mistake_in_a_remote_system_table_names_its_entry_key_and_the_allowed_ones(
        tmp_path: Path) -> None:
    # which of the entries: a fleet of fifty had "remote_systems.hosst" to search for
    path = tmp_path / "typo.toml"
    path.write_text('remote_systems = ["web1", {host = "a", hosst = "b"}, {name = "c"}]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert caught.value.problems == [
        "unknown key 'remote_systems[1].hosst'; allowed keys here: host, key_file, name, port, "
        "sudo, user", "key 'remote_systems[2].host': Field required (got a table)"]


def test_ssh_concurrency_stays_within_what_sshd_allows_a_connection(tmp_path: Path) -> None:
    # OpenSSH's MaxSessions is 10: 9 commands + the check's shell + the journal follower
    # would have their channels refused
    from ai_sysadmin.config import load_settings

    config = tmp_path / "config.toml"
    config.write_text("[ssh]\nconcurrency = 9\n")
    with pytest.raises(ConfigError, match="ssh.concurrency"):
        load_settings(config)
    config.write_text("[ssh]\nconcurrency = 8\n")
    assert load_settings(config).settings.ssh.concurrency == 8


@pytest.mark.parametrize(("var", "url", "needle"), [
    ("AI_SYSADMIN_LLM__URL", "http://127.0.0.1:99999", "its port is not 1-65535"),
    ("AI_SYSADMIN_LLM__URL", "notaurl", "or a bare host:port"),
    ("AI_SYSADMIN_LLM__URL", "ftp://x", "must be an http:// or https:// URL with a valid host"),
    ("AI_SYSADMIN_LLM__URL", "http://exa mple:11434", "'exa mple' is not a host name"),
    ("AI_SYSADMIN_GOTIFY_URL", "https://push.example:0", "its port is not 1-65535"),
    ("AI_SYSADMIN_KNOWLEDGE__URL", "http://127.0.0.1:99999", "its port is not 1-65535"),
    ("AI_SYSADMIN_QUEUE__URL", "redis://127.0.0.1:99999/0", "its port is not 1-65535"),
    ("AI_SYSADMIN_QUEUE__URL", "ftp://x", "'redis://host:port/db'"),
    ("AI_SYSADMIN_QUEUE__URL", "redis://127.0.0.1/queue", "the database number"),
])
def test_a_server_url_that_cannot_work_is_refused_at_load(var: str, url: str,
                                                          needle: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={var: url})
    message = str(refused.value)
    assert f"(from env {var})" in message and needle in message


@pytest.mark.parametrize("url", ["127.0.0.1:11434", "[::1]:11434", "http://gpu-box",
                                 "https://u:pw@llm.example:8443/v1?key=k"])
def test_an_llm_url_that_can_work_loads(url: str) -> None:
    assert load_settings(environ={"AI_SYSADMIN_LLM__URL": url}).settings.llm.url == url


@pytest.mark.parametrize(("text", "shown"), [
    ('gotify_url = "https://bot:hunter2@[push/?token=Tok99"\n',
     "'https://bot:****@[push/?token=****'"),
    ('[queue]\nurl = "redis://:hunter2@[::1/0"\n', "'redis://:****@[::1/0'"),
    ('[llm]\nurl = "http://u:hunter2@[bad/?key=Tok99"\n', "'http://u:****@[bad/?key=****'"),
])
def test_a_refused_url_that_does_not_parse_is_shown_with_its_secrets_masked(
        config_file, text: str, shown: str) -> None:
    path = config_file(text)
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    message = str(refused.value)
    assert shown in message
    assert "hunter2" not in message and "Tok99" not in message


@pytest.mark.parametrize("var", ["AI_SYSADMIN_CHECK_INTERVAL", "AI_SYSADMIN_LLM__TIMEOUT",
                                 "AI_SYSADMIN_SSH__CONNECT_TIMEOUT",
                                 "AI_SYSADMIN_QUEUE__WAIT_TIMEOUT",
                                 "AI_SYSADMIN_SAFETY__COMMAND_TIMEOUT",
                                 "AI_SYSADMIN_COMMAND_TIMEOUT"])
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity"])
def test_infinite_or_nan_numbers_are_refused(var: str, value: str) -> None:
    # an infinite interval checks once and never again; nothing infinite ever times out
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={var: value})
    assert f"(from env {var})" in str(refused.value)
    assert "should be a finite number" in str(refused.value)


def _float_keys(model: type = Settings, prefix: str = "") -> list[str]:
    """The dotted key of every number setting with a fraction, tables' included."""
    keys = []
    for name, info in model.model_fields.items():  # type: ignore[attr-defined]
        if isinstance(info.annotation, type) and hasattr(info.annotation, "model_fields"):
            keys += _float_keys(info.annotation, f"{prefix}{name}.")
        elif info.annotation in (float, float | None):
            keys.append(prefix + name)
    return keys


def _file_setting(path: Path, dotted: str, value: str) -> Path:
    table, _, key = dotted.rpartition(".")
    path.write_text(f"[{table}]\n{key} = {value}\n" if table else f"{key} = {value}\n")
    return path


def test_infinity_in_the_file_is_refused_for_every_float_setting(tmp_path: Path) -> None:
    keys = _float_keys()
    assert len(keys) > 30
    for dotted in keys:
        path = _file_setting(tmp_path / "inf.toml", dotted, "inf")
        with pytest.raises(ConfigError, match=f"'{re.escape(dotted)}'.*finite number"):
            load_settings(path, environ={})


#: the keys of a duration: a timeout, an interval, a window, an age
_DURATION_KEYS = [k for k in _float_keys() if re.search(
    r"timeout|seconds|minutes|hours|days|interval|every|gap", k.rpartition(".")[2])]


def test_every_duration_setting_is_found() -> None:
    assert len(_DURATION_KEYS) >= 28, _DURATION_KEYS


@pytest.mark.parametrize("dotted", _DURATION_KEYS)
def test_a_duration_past_any_sensible_length_is_refused_at_load(tmp_path: Path,
                                                                 dotted: str) -> None:
    # a finite 1e300 passed: an approval expiring then crashed `approve list`, a
    # knowledge.timeout overflowed the socket's timeout at the first request
    path = _file_setting(tmp_path / "long.toml", dotted, "1e300")
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    assert re.search(rf"key '{re.escape(dotted)}': must be at most a (day|year) "
                     r"\(\d+ (seconds|minutes|hours|days)\) \(got 1e\+300\)",
                     str(refused.value)), str(refused.value)


@pytest.mark.parametrize(("dotted", "most"), [
    ("knowledge.timeout", "86400"), ("safety.approval_ttl_hours", "8784"),
    ("notify.repeat_window_minutes", "527040"), ("check_interval", "31622400"),
    ("thresholds.certificate_expiry_warn_days", "366")])
def test_a_duration_at_its_ceiling_loads(tmp_path: Path, dotted: str, most: str) -> None:
    path = _file_setting(tmp_path / "most.toml", dotted, most)
    settings = load_settings(path, environ={}).settings
    from ai_sysadmin.config import getattr_dotted

    assert getattr_dotted(settings, dotted) == float(most)


@pytest.mark.parametrize("var", ["AI_SYSADMIN_", "AI_SYSADMIN_LLM__", "AI_SYSADMIN_LLM____MODEL"])
def test_a_variable_that_names_no_key_is_named(var: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={var: "y"})
    assert refused.value.source == "the environment"
    assert f"{var} holds an empty key name" in str(refused.value)
    assert "(top level)" not in str(refused.value)


def test_a_directory_where_the_default_config_file_should_be_is_refused_not_passed_over(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cli) -> None:
    """A container's bind mount of a config file that was missing makes a directory there:
    passed over as no file, the daemon ran on the defaults, without any of its settings."""
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("AI_SYSADMIN_CONFIG")
    where = tmp_path / "cfg" / "ai-sysadmin" / "config.toml"
    where.mkdir(parents=True)
    code, out, err = cli("config", "show")
    assert (code, out, err) == (2, "", f"error: {where}: is a directory, not a config file\n")


@pytest.mark.parametrize("named", [False, True])
def test_a_link_to_nothing_where_the_config_file_should_be_is_refused_not_passed_over(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cli, named: bool) -> None:
    """A secret manager's target not there yet, a file moved away: the default path's link
    was taken for no file, and the defaults ran silently, none of the settings there."""
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("AI_SYSADMIN_CONFIG")
    where = tmp_path / "cfg" / "ai-sysadmin" / "config.toml"
    where.parent.mkdir(parents=True)
    where.symlink_to(tmp_path / "secrets" / "config.toml")
    code, out, err = cli(*(["--config", str(where)] if named else []), "config", "show")
    assert (code, out, err) == (2, "", f"error: {where}: is a link to {tmp_path}/secrets/"
                                       "config.toml, which does not exist\n")


def test_a_config_file_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    # Notepad's and PowerShell's UTF-8: it was "TOML syntax error: Invalid statement (at
    # line 1, column 1)", nothing a person could see there
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + 'ai_name = "hal"\n# caf\u00e9\n'.encode())
    assert load_settings(path, environ={}).settings.ai_name == "hal"
    path.write_bytes(b"\xef\xbb\xbfai_name = 'hal'\n\xe9\n")
    with pytest.raises(ConfigError, match="line 2 is not UTF-8 \\(byte 0xe9\\)"):
        load_settings(path, environ={})


def test_a_config_file_that_is_not_utf8_names_the_line(tmp_path: Path, cli) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('ai_name = "hal"\n# Serveur de café\n'.encode("latin-1"))
    code, _, err = cli("--config", str(path), "config", "show")
    # it said "'utf-8' codec can't decode byte 0xe9 in position 32: invalid continuation byte"
    assert (code, err) == (2, f"error: {path}: line 2 is not UTF-8 (byte 0xe9): save the file "
                              "as UTF-8\n")


def test_programs_env_an_earlier_release_took_is_passed_over(tmp_path: Path) -> None:
    # the generations were read with `env TZ=UTC nix-env ...` until 2026-12-05: a config
    # that named env stopped the daemon and every command with "unknown key"
    path = tmp_path / "config.toml"
    path.write_text(f"state_dir = '{tmp_path / 'state'}'\n[programs]\nenv = '/usr/bin/env'\n")
    loaded = load_settings(path, environ={})
    assert loaded.retired == [f"programs.env (file {path}) is no longer used: a rollback's "
                              "generations are read with find, their times in UTC as it "
                              "prints them; it can go"]


def test_a_setting_no_release_uses_any_more_is_said_and_passed_over(
        tmp_path: Path, cli) -> None:
    """An upgrade starts with the config the last release took: programs.grep (the checks
    read their counter files with sh's builtins since) is said, not refused."""
    path = tmp_path / "config.toml"
    path.write_text(f"state_dir = '{tmp_path / 'state'}'\n"
                    "[programs]\ngrep = '/usr/bin/grep'\nps = '/usr/bin/ps'\n")
    loaded = load_settings(path, environ={"AI_SYSADMIN_PROGRAMS__GREP": "/bin/grep"})
    assert loaded.settings.programs.ps == "/usr/bin/ps"
    assert loaded.retired == [f"programs.grep (file {path} and env AI_SYSADMIN_PROGRAMS__GREP)"
                              " is no longer used: the checks read the kernel's counter files "
                              "with sh's builtins; it can go"]
    # written as a table, or a variable under it: passed over alike, never a traceback
    table = tmp_path / "table.toml"
    table.write_text("[programs.grep]\npath = '/bin/grep'\n[programs]\nps = '/usr/bin/ps'\n")
    assert load_settings(table, environ={}).retired[0].startswith(
        f"programs.grep (file {table}) is no longer used")
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_settings(empty, environ={"AI_SYSADMIN_PROGRAMS__GREP__PATH": "x"}).retired[
        0].startswith("programs.grep (env AI_SYSADMIN_PROGRAMS__GREP__PATH) is no longer used")
    assert load_settings(path, environ={}).retired[0].startswith(
        f"programs.grep (file {path}) is no longer used")
    code, out, err = cli("--config", str(path), "config", "show", "--json")
    assert code == 0 and json.loads(out)["programs.ps"]["value"] == "/usr/bin/ps"
    assert f"note: programs.grep (file {path}) is no longer used" in err


@pytest.mark.parametrize("lease", ["0.001", "0.5"])
def test_a_lease_the_worker_would_renew_in_a_busy_loop_is_refused(tmp_path: Path,
                                                                  lease: str) -> None:
    # renewed every third of it, one write to the queue each: 0.001 s was ~700 writes a second
    path = _file_setting(tmp_path / "lease.toml", "queue.lease_seconds", lease)
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    said = str(refused.value)
    assert "key 'queue.lease_seconds': must be at least 1 second: a worker renews its lease " \
        "every third of it" in said
    assert "busy loop" in said
    path = _file_setting(tmp_path / "lease.toml", "queue.lease_seconds", "1")
    assert load_settings(path, environ={}).settings.queue.lease_seconds == 1


@pytest.mark.parametrize(("table", "said"), [
    # disk warn 30, margin 40: a disk that warned had to fall below -10 %, a 1 %-full one
    # still warned
    ("disk_warn_percent = 30\nclear_margin_percent = 40\n",
     "clear_margin_percent (40) is not below disk_warn_percent (30)"),
    ("inode_warn_percent = 2\ninode_critical_percent = 3\n",
     "clear_margin_percent (2) is not below inode_warn_percent (2)"),
    ("limit_warn_percent = 10\nclear_margin_percent = 10\n",
     "clear_margin_percent (10) is not below limit_warn_percent (10)"),
    ("memory_psi_some_avg60 = 1\n",
     "clear_margin_percent (2) is not below memory_psi_some_avg60 (1)"),
    ("runaway_cpu_percent = 20\nclear_margin_percent = 20\n",
     "clear_margin_percent (20) is not below runaway_cpu_percent (20)"),
    # memory had to be more than 100 % available to be well again
    ("memory_available_warn_percent = 70\nclear_margin_percent = 40\n",
     "memory_available_warn_percent (70) plus clear_margin_percent (40) is not below 100"),
    # every host has less than all its memory available: critical at every check
    ("memory_available_warn_percent = 100\nmemory_available_critical_percent = 100\n"
     "clear_margin_percent = 0\n",
     "memory_available_warn_percent (100) plus clear_margin_percent (0) is not below 100"),
])
def test_levels_a_finding_could_never_end_by_are_refused_naming_both_keys(
        tmp_path: Path, table: str, said: str) -> None:
    path = tmp_path / "levels.toml"
    path.write_text(f"[thresholds]\n{table}")
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    message = str(refused.value)
    assert "key 'thresholds': a finding must be able to end" in message
    assert said in message


def test_levels_with_room_to_come_back_load(tmp_path: Path) -> None:
    path = tmp_path / "levels.toml"
    path.write_text("[thresholds]\ndisk_warn_percent = 30\nclear_margin_percent = 29\n"
                    "memory_available_warn_percent = 60\nmemory_psi_some_avg60 = 30\n")
    assert load_settings(path, environ={}).settings.thresholds.clear_margin_percent == 29


#: every executable setting: each program, and the sudo fixes run under
_EXECUTABLE_KEYS = [f"programs.{name}" for name in Settings.model_fields[
    "programs"].annotation.model_fields] + ["safety.sudo"]  # type: ignore[union-attr]


@pytest.mark.parametrize("dotted", _EXECUTABLE_KEYS)
@pytest.mark.parametrize("value", ["", "sudo ps", "bin/ps", "./ps", "/usr/bin/", "ps\t"])
def test_an_executable_that_cannot_be_started_is_refused_at_load(
        tmp_path: Path, dotted: str, value: str) -> None:
    # each failed only when run, without naming the key: a check's "cannot start 'sudo ps'",
    # an empty safety.sudo after a person had approved the fix
    path = _file_setting(tmp_path / "program.toml", dotted, json.dumps(value))
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    assert f"key '{dotted}': must be one program, a name found on PATH ('ps') or an absolute " \
        "path ('/usr/bin/ps'): no spaces, no arguments, not empty" in str(refused.value)


@pytest.mark.parametrize("value", ["ps", "nix-collect-garbage",
                                   "/nix/store/0abc-procps-4.0.4/bin/ps"])
def test_an_executable_by_name_or_absolute_path_loads(tmp_path: Path, value: str) -> None:
    path = _file_setting(tmp_path / "program.toml", "programs.ps", json.dumps(value))
    assert load_settings(path, environ={}).settings.programs.ps == value


@pytest.mark.parametrize(("text", "said"), [
    # both were checked only by `configs --sync` and the daemon's sync, not by load or check
    ('config_branch = ""\n', "key 'config_branch': must be a branch name git accepts"),
    ('config_branch = "--upload-pack=touch /tmp/pwned"\n',
     "key 'config_branch': must be a branch name git accepts"),
    ('config_branch = "a..b"\n', "key 'config_branch': must be a branch name git accepts"),
    ('config_branch = "prod.lock"\n', "key 'config_branch': must be a branch name git accepts"),
    ('config_repo = "--upload-pack=touch /tmp/pwned"\n',
     "key 'config_repo': must be an https:// or ssh:// URL (git+ssh:// and file:// too), an "
     "scp-like user@host:path or an absolute path, not starting with '-'"),
    ('config_repo = ""\n', "key 'config_repo': must be an https:// or ssh:// URL"),
    ('config_repo = "fleet"\n', "a relative path would follow the working directory"),
    ('config_repo = "http://git.example/fleet.git"\n',
     "git fetches config_repo by https, ssh or a local path only"),
    ('config_repo = "git://git.example/fleet.git"\n',
     "git fetches config_repo by https, ssh or a local path only"),
    ('config_repo = "ext::sh -c touch% /tmp/pwned"\n', "git runs a remote helper"),
    ('config_repo = "file://fleet"\n', "a file:// URL names an absolute path"),
    ('config_repo = "https://git.example:99999/fleet.git"\n', "its port is not 1-65535"),
])
def test_a_config_repo_or_branch_git_cannot_fetch_is_refused_at_load(
        tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "repo.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    assert said in str(refused.value)


@pytest.mark.parametrize("repo", ["/srv/git/fleet.git", "file:///srv/git/fleet.git",
                                  "git@github.com:me/nixos.git", "github-work:me/nixos.git",
                                  "ssh://git@127.0.0.1:2222/srv/fleet.git",
                                  "git+ssh://git.example/fleet.git",
                                  "https://ghp_TOKEN1234@github.com/me/nixos.git",
                                  # as git reads them: localhost's path, an IPv6 address
                                  "file://localhost/srv/git/fleet.git", "git@[::1]:fleet.git"])
def test_a_config_repo_git_fetches_loads(tmp_path: Path, repo: str) -> None:
    path = tmp_path / "repo.toml"
    path.write_text(f'config_repo = "{repo}"\nconfig_branch = "prod/web-1"\n')
    settings = load_settings(path, environ={}).settings
    assert (settings.config_repo, settings.config_branch) == (repo, "prod/web-1")


def _context_refused(tmp_path: Path, text: str) -> str:
    """Why a config of ``text`` is refused at load (it must be)."""
    path = tmp_path / "context.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    return str(refused.value)


@pytest.mark.parametrize(("text", "said"), [
    ("[llm]\ncontext_size = 4096\n[agent]\nmax_context_chars = 24000\n",
     "llm.context_size (4096) must hold agent.max_context_chars (24000 characters of "
     "conversation: at least 8000 tokens at 3 characters a token) and the tools' descriptions "
     "(about 2200 tokens): at least 10200 tokens; raise llm.context_size"),
    ("[llm]\nmax_tokens = 8192\n[agent]\nmax_context_chars = 24000\n",
     "and the tools' descriptions (about 2200 tokens) and the answer (llm.max_tokens, 8192): "
     "at least 18392 tokens"),
    ('[llm]\ncontext_size = 4096\nmodel = "smollm2:135m"\n[agent]\nmax_context_chars = 3000\n'
     'evidence_max_tokens = 4000\n[agent.modes]\n"smollm2:135m" = "evidence"\n',
     "agent.max_context_chars (3000 characters of conversation: at least 1000 tokens at 3 "
     "characters a token) and the answer in evidence mode (agent.evidence_max_tokens, 4000): "
     "at least 5000 tokens"),
])
def test_a_context_too_small_for_the_agents_budget_is_refused_naming_the_keys(
        tmp_path: Path, text: str, said: str) -> None:
    # the server cut every long investigation (Ollama drops the beginning: the system prompt
    # and the incident) or refused it, and the config had said nothing
    refused = _context_refused(tmp_path, text)
    assert refused.startswith(f"{tmp_path / 'context.toml'}: llm.context_size (")
    assert said in refused


def test_a_context_a_variable_made_too_small_is_the_environments_error() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"AI_SYSADMIN_LLM__CONTEXT_SIZE": "2048"})
    assert refused.value.source == "the environment"
    assert "llm.context_size (2048) must hold" in str(refused.value)
    assert "(from env AI_SYSADMIN_LLM__CONTEXT_SIZE)" in str(refused.value)


@pytest.mark.parametrize(("text", "chars"), [
    ("[llm]\ncontext_size = 8192\n", (8192 - 2200) * 3),  # Llama 3's window
    ("[llm]\ncontext_size = 4096\nmax_tokens = 1024\n", (4096 - 2200 - 1024) * 3),
])
def test_a_smaller_context_with_the_conversation_left_to_its_default_makes_it_fit(
        tmp_path: Path, text: str, chars: int) -> None:
    # a context set for a smaller model, the conversation's size never set: the config that
    # loaded before the check was refused at the daemon's next start
    path = tmp_path / "context.toml"
    path.write_text(text)
    settings = load_settings(path, environ={}).settings
    assert settings.agent.max_context_chars == chars


@pytest.mark.parametrize(("text", "said"), [
    # Ollama's long-time default, alone: no conversation fits beside the tools
    ("[llm]\ncontext_size = 2048\n",
     "llm.context_size (2048) must hold the tools' descriptions (about 2200 tokens) and the "
     "least conversation (agent.max_context_chars 2000: 667 tokens): at least 2867 tokens; "
     "raise llm.context_size (and the server's own context)"),
    # the answer's size is what does not fit: it is named
    ("[llm]\ncontext_size = 4096\nmax_tokens = 2048\n",
     "at least 4915 tokens; raise llm.context_size (and the server's own context) or lower "
     "llm.max_tokens"),
])
def test_a_context_no_conversation_fits_names_what_would_help(
        tmp_path: Path, text: str, said: str) -> None:
    # it was told to lower agent.max_context_chars, a key the config never set, to a size
    # that still did not fit, and not the llm.max_tokens that did not
    refused = _context_refused(tmp_path, text)
    assert said in refused
    assert "lower agent.max_context_chars" not in refused


def test_a_small_context_with_a_budget_it_holds_loads(tmp_path: Path) -> None:
    path = tmp_path / "context.toml"
    path.write_text("[llm]\ncontext_size = 4096\n[agent]\nmax_context_chars = 5400\n")
    assert load_settings(path, environ={}).settings.llm.context_size == 4096


@pytest.mark.parametrize(("var", "value", "hint"), [
    ("AI_SYSADMIN_REMOTE_SYSTEMS", "web1",
     "Input should be a valid list; a list is given as JSON: "
     "AI_SYSADMIN_REMOTE_SYSTEMS='[\"web1\"]' (got 'web1')"),
    ("AI_SYSADMIN_CERTIFICATES", "/etc/a.pem,/etc/b.pem",
     "a list is given as JSON: AI_SYSADMIN_CERTIFICATES='[\"/etc/a.pem\", \"/etc/b.pem\"]'"),
    ("AI_SYSADMIN_REMOTE_SYSTEMS", "[web1]", "AI_SYSADMIN_REMOTE_SYSTEMS holds no valid JSON"),
    ("AI_SYSADMIN_AGENT__MODES", "evidence",
     "Input should be a valid dictionary; a table is given as JSON: "
     "AI_SYSADMIN_AGENT__MODES='{\"key\": \"value\"}' (got 'evidence')"),
])
def test_a_list_or_table_in_a_variable_is_told_its_json_form(var: str, value: str,
                                                             hint: str) -> None:
    # "Input should be a valid list (got 'web1')" said nothing of how a variable gives one
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={var: value})
    assert refused.value.source == "the environment"
    assert f"(from env {var})" in str(refused.value) and hint in str(refused.value)


def test_a_table_in_a_variable_is_read_as_json() -> None:
    # AI_SYSADMIN_AGENT__MODES='{...}' was "should be a valid dictionary": only '[' was JSON
    loaded = load_settings(environ={"AI_SYSADMIN_AGENT__MODES": '{"smollm2:135m": "evidence"}',
                                    "AI_SYSADMIN_REMOTE_SYSTEMS": '[{"host": "web1"}]'})
    assert loaded.settings.agent.mode_for("smollm2:135m") == "evidence"
    assert loaded.source_of("agent.modes.smollm2:135m") == "env AI_SYSADMIN_AGENT__MODES"
    (system,) = loaded.settings.remote_systems
    assert not isinstance(system, str) and system.host == "web1"


@pytest.mark.parametrize("seconds", [1, 59.5])
def test_a_knowledge_idle_time_too_short_to_be_of_use_is_refused_with_why(seconds) -> None:
    # closed between two steps of one investigation, opened again at each: seconds of CPU
    with pytest.raises(ValueError, match="must be 0 .kept open. or at least 60 seconds"):
        Settings(ai_name="hal", knowledge={"close_after_seconds": seconds})
    assert Settings(ai_name="hal", knowledge={"close_after_seconds": 0}
                    ).knowledge.close_after_seconds == 0
    assert Settings(ai_name="hal", knowledge={"close_after_seconds": 60}
                    ).knowledge.close_after_seconds == 60


@pytest.mark.parametrize(("text", "token"), [
    ('gotify_token_file = "AqW3r5tY7uI9oP1"\n', "AqW3r5tY7uI9oP1"),
    ('[llm]\napi_key_file = "sk-proj-9f8e7d6c5b4a3secretKEY"\n', "secretKEY"),
    ('[llm]\napi_key_file = ["sk-proj-9f8e7d6c5b4a3secretKEY"]\n', "secretKEY"),
    ('[knowledge]\ntoken_file = "chroma-7f3a9c2e1b4d"\n', "chroma-7f3a9c2e1b4d"),
    ('[notify]\napprise_urls_file = "tgram://123456:AAHsecretBOT/987"\n', "AAHsecretBOT"),
])
def test_a_token_typed_where_its_files_path_goes_is_never_shown(
        cli, config_file, text: str, token: str) -> None:
    # the daemon's config error goes to the journal, which the adm group reads
    config_file(text)
    code, out, err = cli("config", "show")
    assert code == 2
    assert "(the value is not shown: it may be a credential)" in err
    assert token not in err + out


def test_a_token_in_a_variable_for_a_secret_files_path_is_never_shown() -> None:
    result = run_program(str(BIN), "config", "show",
                         env={"AI_SYSADMIN_GOTIFY_TOKEN_FILE": "AqW3r5tY7uI9oP1"})
    assert result.returncode == 2
    assert "key 'gotify_token_file' (from env AI_SYSADMIN_GOTIFY_TOKEN_FILE)" in result.stderr
    assert "AqW3r5tY7uI9oP1" not in result.stderr


@pytest.mark.parametrize(("text", "said"), [
    ('gotify_url = "http://127.0.0.1:9"\n',
     "{config}: key 'gotify_token_file': gotify_url is set: name the file"),
    ('[notify]\napprise_urls_file = "{dir}/apprise-not-there"\n',
     "{dir}/apprise-not-there: key 'notify.apprise_urls_file': cannot read: No such file"),
    ('[llm]\napi_key_file = "{dir}/key-not-there"\n',
     "{dir}/key-not-there: llm.api_key_file: No such file"),
])
@pytest.mark.parametrize("command", [("config", "show"), ("config", "check"), ("run",)])
def test_config_check_refuses_and_show_warns_of_what_run_refuses(
        tmp_path: Path, text: str, said: str, command: tuple[str, ...]) -> None:
    # `config show` passed these, and the daemon then refused them at its start with exit 2,
    # which its unit leaves stopped
    config = tmp_path / "config.toml"
    config.write_text('ai_name = "hal"\njournal_follow = false\ncheck_interval = 3600\n'
                      + text.format(dir=tmp_path))
    result = run_program(str(BIN), "--config", str(config), *command, timeout=60)
    said = said.format(config=config, dir=tmp_path)
    if command == ("config", "show"):  # shown, and what run refuses said last
        assert result.returncode == 0, result.stderr
        assert "autonomy_level = " in result.stdout
        assert f"warning: `run` would refuse it: {said}" in " ".join(result.stderr.split())
        return
    assert result.returncode == 2, result.stderr
    assert f"error: {said}" in result.stderr


def test_config_check_says_a_config_run_would_start_on() -> None:
    result = run_program(str(BIN), "config", "check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("empty-config.toml: ok")


def test_a_gotify_url_from_the_environment_without_its_token_file_blames_the_environment(
        ) -> None:
    result = run_program(str(BIN), "config", "check",
                         env={"AI_SYSADMIN_GOTIFY_URL": "http://127.0.0.1:9"})
    assert result.returncode == 2
    assert result.stderr.startswith("error: the environment: key 'gotify_token_file'")


@pytest.mark.parametrize(("text", "key"), [
    ('remote_systems = [{host = "web1", key_file = "keys/web1"}]\n', "remote_systems[0].key_file"),
    ('[ssh]\nknown_hosts = "known_hosts"\n', "ssh.known_hosts"),
    ('[ssh]\nkey_files = ["/etc/ai/id_ed25519", "id_ed25519"]\n', "ssh.key_files[1]"),
])
def test_a_relative_ssh_file_is_refused(config_file, text: str, key: str) -> None:
    # it was read from (known_hosts: written to) the working directory of each command: a
    # shell's here, / for the daemon
    path = config_file(text)
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    assert f"{path}: key '{key}': must be an absolute path or one under ~" in str(refused.value)


def test_ssh_files_under_home_are_left_for_ssh_to_expand(config_file) -> None:
    # a command run with sudo reads the config as root, then connects as the daemon's user
    path = config_file('remote_systems = [{host = "web1", key_file = "~/.ssh/web1"}]\n'
                       '[ssh]\nknown_hosts = "~/.ssh/kh"\nkey_files = ["/etc/ai/id", "~/id"]\n')
    settings = load_settings(path).settings
    assert (str(settings.ssh.known_hosts), [str(k) for k in settings.ssh.key_files]) == (
        "~/.ssh/kh", ["/etc/ai/id", "~/id"])
    assert str(settings.remote_systems[0].key_file) == "~/.ssh/web1"


@pytest.mark.parametrize(("entry", "said"), [
    ('{host = "web1", user = "a b"}', "key 'remote_systems[0].user': must be a login name"),
    ('{host = "web1", user = ""}', "key 'remote_systems[0].user': must be a login name"),
    ('{host = "web1", user = "-oProxyCommand=x"}', "key 'remote_systems[0].user': must be a "
     "login name"),
    ('{host = "web1", user = "a;b"}', "key 'remote_systems[0].user': must be a login name"),
    ('{host = "web1", user = "jane@"}', "key 'remote_systems[0].user': must be a login name"),
    ('{host = "web1:2222"}', "'web1:2222': a table gives the port apart: "
     '{host = "web1", port = 2222}'),
    ('{host = "[::1]:2222"}', '{host = "::1", port = 2222}'),
])
def test_a_remote_system_as_a_table_is_held_to_the_string_forms_rules(
        config_file, entry: str, said: str) -> None:
    # a user with a space or a leading '-' passed to ssh; 'web1:2222' was "not an IPv6
    # address"
    path = config_file(f"remote_systems = [{entry}]\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    assert said in str(refused.value)
    assert "IPv6" not in str(refused.value)


#: a directory's fully qualified login (SSSD, AD), longer than 32 characters
LONG_LOGIN = "jane.doe-smith@eu.corp-directory.example"


def test_a_directory_login_name_is_a_hosts_user_as_it_is_the_default_user(config_file) -> None:
    """``jane.doe@corp.example`` (realmd/SSSD's default, often past 32 characters) was
    refused as a host's user, in a table and in the string form, while ``[ssh] user``
    took it; ssh reads ``user@host`` up to the last '@'."""
    assert len(LONG_LOGIN) > 32
    path = config_file(
        f'remote_systems = [{{host = "web1.corp.example", user = "{LONG_LOGIN}"}}, '
        '"jane.doe@corp.example@web2:2222", "ops+x@corp@[2001:db8::7]"]\n'
        '[ssh]\nuser = "jane.doe@corp.example"\n')
    settings = load_settings(path).settings
    assert [(s.user, s.host, s.port) for s in configured_hosts(settings)] == [
        (LONG_LOGIN, "web1.corp.example", None), ("jane.doe@corp.example", "web2", 2222),
        ("ops+x@corp", "2001:db8::7", None)]
    assert settings.ssh.user == "jane.doe@corp.example"
    assert split_target("a@b@c@web3") == ("a@b@c", "web3", None)


@pytest.mark.parametrize("user", ["-oProxyCommand=touch /tmp/x", "jane doe", "a;b", "x\u0007",
                                  "@corp", "jane@", ""])
def test_a_default_ssh_user_is_held_to_a_hosts_rules(config_file, user: str) -> None:
    # `ssh -l USER` of config_repo's ssh took it as it came
    path = config_file(f"[ssh]\nuser = {json.dumps(user)}\n")
    with pytest.raises(ConfigError, match="key 'ssh.user': must be a login name"):
        load_settings(path)


@pytest.mark.parametrize("entry", ["-oProxyCommand=x@web1", "-o@::1", "jane@@web1", "a b@web1"])
def test_a_user_ssh_could_read_as_something_else_is_refused_in_the_string_form(
        entry: str) -> None:
    with pytest.raises(ValueError, match="is not 'host'|must be a login name"):
        split_target(entry)


def test_a_remote_system_table_with_a_user_and_an_ipv6_host_loads(config_file) -> None:
    path = config_file('remote_systems = [{host = "2001:db8::7", user = "ops.admin-1"}]\n')
    entry = load_settings(path).settings.remote_systems[0]
    assert (entry.host, entry.user) == ("2001:db8::7", "ops.admin-1")


@pytest.mark.parametrize("model", ["", "  "])
def test_a_blank_llm_model_is_refused(config_file, model: str) -> None:
    path = config_file(f'[llm]\nmodel = "{model}"\n')
    with pytest.raises(ConfigError, match="key 'llm.model': must name the model"):
        load_settings(path)


@pytest.mark.parametrize(("hostname", "name"), [
    ("_gw.lan", "gw"), ("__", "sysadmin"), ("-_x-", "x"), ("a_b", "a_b")])
def test_the_default_name_from_a_hostname_is_one_ai_name_takes(
        monkeypatch: pytest.MonkeyPatch, config_file, hostname: str, name: str) -> None:
    # '_gw.lan' gave '_gw', and the error blamed an ai_name the file never set
    monkeypatch.setattr("socket.gethostname", lambda: hostname)
    assert short_hostname() == name
    assert load_settings(config_file("")).settings.ai_name == name


def test_an_apprise_urls_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    # opened to be read, a FIFO held `config check` (and a daemon's SIGHUP check, and with
    # it the daemon's stop) until a writer came
    fifo = tmp_path / "apprise-urls"
    os.mkfifo(fifo)
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\n[notify]\napprise_urls_file = "{fifo}"\n')
    result = run_program(str(BIN), "--config", str(config), "config", "check", timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"{fifo}: key 'notify.apprise_urls_file': not a regular file" in result.stderr


#: $1 a directory made read-only in the command's own mount namespace, then the command: what
#: ProtectSystem=strict gives a path the unit does not list as writable
_READ_ONLY_THERE = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'


@pytest.mark.parametrize("there", ["queue.db", "sub/queue.db", "kept.db"])
def test_config_check_refuses_a_queue_file_the_start_cannot_open(
        tmp_path: Path, there: str) -> None:
    # `config check` (and the daemon's SIGHUP check) said ok; the start then exited 2 on it
    from ai_sysadmin.llm.queue.sqlite import SqliteQueue
    from tests.support.needs_root import needs_root

    needs_root("a read-only mount of its own")
    ro = tmp_path / "ro"
    ro.mkdir()
    if there == "kept.db":  # one a daemon had made before the file system went read-only
        SqliteQueue(ro / there).close()
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\n[queue]\nurl = "sqlite://{ro / there}"\n')
    before = sorted(ro.rglob("*"))
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _READ_ONLY_THERE,
         "sh", str(ro), str(BIN), "--config", str(config), "config", "check"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"error: cannot open the queue {ro / there}: ")
    assert "read-only" in result.stderr.lower()
    assert sorted(ro.rglob("*")) == before


def test_config_check_refuses_a_redis_queue_that_refuses_the_login(tmp_path: Path) -> None:
    from tests.queue.conftest import free_port, need_redis_server, redis_server_process

    need_redis_server()
    port = free_port()
    config = tmp_path / "config.toml"
    with redis_server_process(port, password="s3cret"):
        for password, code in (("s3cret", 0), ("wrongpass", 2)):
            config.write_text(f'ai_name = "hal"\n[queue]\n'
                              f'url = "redis://:{password}@127.0.0.1:{port}/0"\n')
            result = run_program(str(BIN), "--config", str(config), "config", "check")
            assert result.returncode == code, result.stderr
    # (a note before it: the config holds the password and every user may read it)
    assert f"\nerror: the queue at redis://:****@127.0.0.1:{port}/0 refused the login" in \
        result.stderr
    assert "wrongpass" not in result.stderr


def test_config_check_makes_no_state_where_there_is_none(tmp_path: Path) -> None:
    # it tries the state database and the queue file as the start opens them, and a check
    # leaves nothing behind: a redis server down is no refusal, as it is none at a start
    state = tmp_path / "state" / "deeper"
    config = tmp_path / "config.toml"
    config.write_text('ai_name = "hal"\n[queue]\nurl = "redis://127.0.0.1:9/0"\n')
    result = run_program(str(BIN), "--config", str(config), "config", "check",
                         env={"AI_SYSADMIN_STATE_DIR": str(state)})
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "state").exists()


def test_config_check_warns_of_a_knowledge_token_file_every_user_can_read(
        tmp_path: Path) -> None:
    # `config check` said so of llm.api_key_file and not of this one beside it
    token = tmp_path / "ktok.txt"
    token.write_text("tok123\n")
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\n[knowledge]\nurl = "http://127.0.0.1:9"\n'
                      f'token_file = "{token}"\n')
    for mode, said in ((0o600, ""), (0o644, f"warning: knowledge.token_file ({token}) is "
                                            "readable by every user: chmod o-r it\n")):
        token.chmod(mode)
        result = run_program(str(BIN), "--config", str(config), "config", "check")
        assert (result.returncode, result.stderr) == (0, said)
    assert "tok123" not in result.stdout + result.stderr


@pytest.mark.parametrize("value", ["relstate", "./here", ""])
def test_a_relative_xdg_directory_is_ignored_as_the_spec_says(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str) -> None:
    # XDG_STATE_HOME=relstate gave the state directory relstate/ai-sysadmin, which the
    # settings refused as relative, blaming relconf/ai-sysadmin/config.toml, not there
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", value)
    monkeypatch.setenv("XDG_STATE_HOME", value)
    monkeypatch.delenv("AI_SYSADMIN_CONFIG")
    monkeypatch.delenv("AI_SYSADMIN_STATE_DIR")
    monkeypatch.chdir(tmp_path)
    assert default_config_path() == tmp_path / "home/.config/ai-sysadmin/config.toml"
    assert default_state_dir() == tmp_path / "home/.local/state/ai-sysadmin"
    loaded = load_settings(None)
    assert loaded.config_path == default_config_path() and not loaded.config_found
    assert loaded.settings.state_dir == tmp_path / "home/.local/state/ai-sysadmin"
