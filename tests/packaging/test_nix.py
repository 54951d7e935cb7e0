"""The flake and the NixOS module, evaluated by a real Nix (Debian's nix-bin) against a small
stand-in of nixpkgs (tests/packaging/nix/): no nixpkgs can be fetched here. Every option must
land in the config file the daemon reads, in the units or in the sudo rules, and what lands
there is checked by the program itself (load_settings), systemd-analyze and visudo."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ai_sysadmin.agent.tools.network import PING
from ai_sysadmin.cli.dispatch import TOOLS
from ai_sysadmin.config import _URL_KEYS, Programs, SafetySettings, bracketed, load_settings
from ai_sysadmin.knowledge.config_repo import ssh_command
from ai_sysadmin.llm.backends.ollama import DEFAULT_PORT
from ai_sysadmin.llm.urls import base_url
from ai_sysadmin.safety.clean_script import SCRIPT, sudoers_rule
from ai_sysadmin.safety.readonly_commands import CUSTOM, READ_ONLY
from ai_sysadmin.safety.remediation_commands import REMEDIATION
from ai_sysadmin.safety.sudo_rules import SUDO_SHAPES
from ai_sysadmin.setup_host import find_templates
from ai_sysadmin.setup_host.units import TEMPLATES, fill
from tests.conftest import BIN

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "nix"
NIX = shutil.which("nix-instantiate")
STORE = "/nix/store/00000000000000000000000000000000-"


@pytest.fixture(scope="module")
def nix_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if NIX is None:
        if os.environ.get("CI"):
            pytest.fail("nix-instantiate missing: scripts/test.sh installs nix-bin")
        pytest.skip("nix-instantiate (Debian's nix-bin) is not installed")
    # every store, state and cache directory in a temporary one: /nix stays untouched
    base = tmp_path_factory.mktemp("nix")
    dirs = {"NIX_STORE_DIR": "store", "NIX_STATE_DIR": "state", "NIX_LOG_DIR": "log",
            "NIX_CONF_DIR": "conf", "XDG_CACHE_HOME": "cache", "HOME": "home"}
    env = {**os.environ, **{k: str(base / v) for k, v in dirs.items()}}
    for value in dirs.values():
        (base / value).mkdir()
    return env


def instantiate(env: dict[str, str], *args: str) -> str:
    assert NIX
    done = subprocess.run([NIX, "--option", "build-users-group", "", "--option", "substituters",
                           "", *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def evaluate(env: dict[str, str], options: dict[str, Any], enabled: bool = True,
             extra: Path | None = None) -> Any:
    """What the module makes of ``options``, and of ``extra``, a module file (for what JSON
    cannot say, such as a Nix path)."""
    config = {"services": {"ai-sysadmin": {"enable": enabled, **options}}}
    more = ("--arg", "extra", str(extra)) if extra else ()
    return json.loads(instantiate(env, "--eval", "--strict", "--json", str(HERE / "evaluate.nix"),
                                  "--argstr", "configJson", json.dumps(config),
                                  "--arg", "enabled", "true" if enabled else "false", *more))


def settings_of(tmp_path: Path, result: dict[str, Any]):
    path = tmp_path / "config.toml"
    path.write_text(result["configText"])
    return load_settings(path, environ={}).settings


def test_every_nix_file_parses_and_nix_stays_out_of_slash_nix(nix_env: dict[str, str]) -> None:
    had_nix = Path("/nix").exists()
    files = [ROOT / "flake.nix", *sorted((ROOT / "nix").glob("*.nix")), *sorted(HERE.glob("*.nix"))]
    assert len(files) >= 8
    for file in files:
        instantiate(nix_env, "--parse", str(file))
    assert Path("/nix").exists() == had_nix


EVERY_OPTION = {
    "aiName": "hal", "autonomyLevel": "auto-safe", "checkInterval": 120,
    "ollamaHost": "http://gpu-box:11434", "model": "llama3.1:8b",
    "gotifyUrl": "https://gotify.example.com", "gotifyTokenFile": "/run/secrets/gotify",
    "remoteSystems": ["web1", {"host": "10.0.0.7", "name": "nas", "sudo": True}],
    "configRepo": "https://git.example.com/hosts.git", "configBranch": "prod",
    "settings": {"thresholds": {"disk_warn_percent": 70}, "agent": {"investigate": False},
                 "llm": {"timeout": 30}, "safety": {"clean_paths": ["/var/cache/hal"]}},
}


def test_every_option_lands_in_the_config_file_the_daemon_reads(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    result = evaluate(nix_env, EVERY_OPTION)
    s = settings_of(tmp_path, result)
    assert (s.ai_name, s.autonomy_level, s.check_interval) == ("hal", "auto-safe", 120)
    assert (s.llm.url, s.llm.model, s.llm.timeout) == ("http://gpu-box:11434", "llama3.1:8b", 30)
    assert (s.gotify_url, str(s.gotify_token_file)) == ("https://gotify.example.com",
                                                       "/run/secrets/gotify")
    assert [str(r) if isinstance(r, str) else (r.host, r.name, r.sudo)
            for r in s.remote_systems] == ["web1", ("10.0.0.7", "nas", True)]
    assert (s.config_repo, s.config_branch) == ("https://git.example.com/hosts.git", "prod")
    assert (str(s.state_dir), s.queue.embedded_worker) == ("/var/lib/ai-sysadmin", False)
    assert (s.thresholds.disk_warn_percent, s.agent.investigate) == (70, False)
    assert s.safety.sudo == "/run/wrappers/bin/sudo"
    assert s.safety.clean_paths == ["/var/cache/hal"]
    for name in Programs.model_fields:
        value = getattr(s.programs, name)
        if name in ("apt_get", "dnf", "yum", "rpm_ostree", "pacman", "zypper",
                    "transactional_update"):
            assert value == name.replace("_", "-")  # only managed hosts of those kinds have it
        else:
            assert value.startswith(STORE) and value.endswith("/bin/" + name.replace("_", "-"))
    daemon = result["services"]["hal-ai"]["serviceConfig"]
    assert daemon["ExecStart"].endswith(f"--config {result['configFile']} run")
    assert daemon["ReadWritePaths"] == "/var/lib/ai-sysadmin -/var/log/journal -/var/cache/hal"
    # Ollama runs elsewhere: none here, and the units wait for none
    assert result["ollama"] is None
    assert "ollama.service" not in result["services"]["hal-ai"]["after"]


def test_by_default_ollama_runs_here_and_the_name_is_the_hostname(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    result = evaluate(nix_env, {"ollamaAcceleration": "cuda", "settings": {"llm": {
        "model": "qwen2.5:14b"}}})
    s = settings_of(tmp_path, result)
    assert s.ai_name == "hal9000"  # networking.hostName "Hal9000", as a command name
    assert (s.llm.url, s.llm.model) == ("http://127.0.0.1:11434", "qwen2.5:14b")  # settings win
    assert result["ollama"] == {"enable": True, "host": "127.0.0.1", "port": 11434,
                                "acceleration": "cuda",
                                "loadModels": ["qwen2.5:14b"]}  # the model it asks
    for unit in ("hal9000-ai", "hal9000-llm-worker"):
        assert "ollama.service" in result["services"][unit]["after"]
        assert result["services"][unit]["wantedBy"] == ["multi-user.target"]
    users = result["users"]
    assert users["users"]["ai-sysadmin"] == {
        "isSystemUser": True, "group": "ai-sysadmin", "home": "/var/lib/ai-sysadmin",
        "extraGroups": ["systemd-journal"]}
    assert users["groups"] == {"ai-sysadmin": {}}
    assert result["tmpfiles"] == ["d /var/lib/ai-sysadmin 0750 ai-sysadmin ai-sysadmin - -"]
    assert result["warnings"] == [] and result["failedAssertions"] == []
    other_port = evaluate(nix_env, {"ollamaHost": "http://localhost:11500"})
    assert (other_port["ollama"]["host"], other_port["ollama"]["port"]) == ("127.0.0.1", 11500)
    # Ollama listens on OLLAMA_HOST, which nixpkgs' module makes "${host}:${port}": where the
    # daemon connects, IPv6 loopback included (not nixpkgs' default 127.0.0.1)
    for url in ("http://[::1]:11500", "http://127.0.0.1:11434/"):
        here = evaluate(nix_env, {"ollamaHost": url})
        listens = f"{here['ollama']['host']}:{here['ollama']['port']}"
        assert listens == urlsplit(settings_of(tmp_path, here).llm.url).netloc, url
    # the config file decides, as the daemon reads it: an LLM elsewhere, or another kind of
    # server, needs no Ollama here, nor waits for one
    for llm in ({"url": "http://gpu-box:11434"}, {"backend": "openai"}):
        elsewhere = evaluate(nix_env, {"settings": {"llm": llm}})
        assert elsewhere["ollama"] is None, llm
        assert "ollama.service" not in elsewhere["services"]["hal9000-ai"]["after"]
    here = evaluate(nix_env, {"settings": {"llm": {"url": "http://127.0.0.1:11600"}}})
    assert here["ollama"]["port"] == 11600
    # what the daemon takes for the same server: a bare host:port (Ollama's OLLAMA_HOST
    # convention) and a scheme or host in capitals
    for given, listens in (("127.0.0.1:11434", "127.0.0.1:11434"),
                           ("localhost:11500", "127.0.0.1:11500"),
                           ("[::1]:11600", "[::1]:11600"),
                           ("http://LOCALHOST:11434", "127.0.0.1:11434"),
                           ("HTTP://127.0.0.1:11700/", "127.0.0.1:11700")):
        here = evaluate(nix_env, {"ollamaHost": given})
        assert here["ollama"] is not None, given
        assert f"{here['ollama']['host']}:{here['ollama']['port']}" == listens, given
        for unit in ("hal9000-ai", "hal9000-llm-worker"):
            assert "ollama.service" in here["services"][unit]["after"], given
        assert settings_of(tmp_path, here).llm.url == given  # the daemon accepts it as it is
    assert evaluate(nix_env, {"ollamaHost": "gpu-box:11434"})["ollama"] is None
    off = evaluate(nix_env, {}, enabled=False)
    assert off["services"] is None and off["configText"] is None and off["ollama"] is None


def unit_text(service: dict[str, Any]) -> str:
    """A NixOS service as NixOS writes its unit file."""
    lines = ["[Unit]", f"Description={service['description']}",
             f"After={' '.join(service['after'])}", f"Wants={' '.join(service['wants'])}",
             *(f"{k}={v}" for k, v in service["unitConfig"].items()), "", "[Service]"]
    for key, value in service["serviceConfig"].items():
        lines += [f"{key}={v}" for v in (value if isinstance(value, list) else [value])]
    return "\n".join(lines) + "\n"


def template_service(values: dict[str, str], template: str) -> dict[str, Any]:
    """The [Service] section of a template as setup fills it."""
    text = fill((find_templates() / template).read_text(), values)
    section, out = "", {}
    for line in text.splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def test_the_units_and_tmpfiles_follow_a_state_dir_given_in_settings(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    result = evaluate(nix_env, {"aiName": "hal", "settings": {
        "state_dir": "/srv/hal-state", "knowledge": {"path": "/srv/hal-knowledge"}}})
    s = settings_of(tmp_path, result)
    assert (str(s.state_dir), str(s.knowledge.path)) == ("/srv/hal-state", "/srv/hal-knowledge")
    daemon = result["services"]["hal-ai"]["serviceConfig"]
    assert daemon["ReadWritePaths"].startswith("/srv/hal-state ")
    assert daemon["ReadWritePaths"].endswith(" -/srv/hal-knowledge")
    assert "HOME=/srv/hal-state" in daemon["Environment"]
    assert result["tmpfiles"] == ["d /srv/hal-state 0750 ai-sysadmin ai-sysadmin - -",
                                  "d /srv/hal-knowledge 0750 ai-sysadmin ai-sysadmin - -"]
    assert result["users"]["users"]["ai-sysadmin"]["home"] == "/srv/hal-state"


def test_a_dollar_or_percent_in_a_path_reaches_the_units_as_systemd_reads_it(
        nix_env: dict[str, str]) -> None:
    """systemd keeps a `$$` as two in ReadWritePaths= (only Exec*= lines undo it), so a
    doubled `$` named no directory and the unit could not start; a `%` is a specifier there
    and in Environment=, where the state directory went undoubled."""
    result = evaluate(nix_env, {"aiName": "hal", "settings": {
        "state_dir": "/srv/a$1%b", "knowledge": {"path": "/srv/k$2%c"}}})
    daemon = result["services"]["hal-ai"]["serviceConfig"]
    paths = daemon["ReadWritePaths"].split()
    assert (paths[0], paths[-1]) == ("/srv/a$1%%b", "-/srv/k$2%%c")
    assert "HOME=/srv/a$1%%b" in daemon["Environment"]
    worker = result["services"]["hal-llm-worker"]["serviceConfig"]
    assert worker["ReadWritePaths"] == "/srv/a$1%%b"


def test_a_queue_file_outside_the_state_dir_is_made_and_both_units_write_it(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    result = evaluate(nix_env, {"aiName": "hal", "settings": {
        "queue": {"url": "sqlite:///srv/llm-queue/queue.db"}}})
    assert str(settings_of(tmp_path, result).queue.url) == "sqlite:///srv/llm-queue/queue.db"
    for unit in ("hal-ai", "hal-llm-worker"):
        paths = result["services"][unit]["serviceConfig"]["ReadWritePaths"].split()
        assert paths[0] == "/var/lib/ai-sysadmin" and "-/srv/llm-queue" in paths, unit
    assert "d /srv/llm-queue 0750 ai-sysadmin ai-sysadmin - -" in result["tmpfiles"]
    # the default queue, and a Redis one, are no directory of their own
    for url in ("sqlite://", "sqlite:///var/lib/ai-sysadmin/q.db", "redis://127.0.0.1:6379/0"):
        other = evaluate(nix_env, {"aiName": "hal", "settings": {"queue": {"url": url}}})
        worker = other["services"]["hal-llm-worker"]["serviceConfig"]
        assert worker["ReadWritePaths"] == "/var/lib/ai-sysadmin", url
        assert other["tmpfiles"] == ["d /var/lib/ai-sysadmin 0750 ai-sysadmin ai-sysadmin - -"]


def test_the_units_are_setups_templates_with_store_paths(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    result = evaluate(nix_env, {"aiName": "hal"})
    setpriv = f"{STORE}util-linux/bin/setpriv"
    values = {"name": "hal", "program": f"{STORE}ai-sysadmin-0.1.0/bin/ai-sysadmin",
              "config": result["configFile"], "user": "ai-sysadmin", "group": "ai-sysadmin",
              "state_dir": "/var/lib/ai-sysadmin", "setpriv": setpriv,
              "read_write_paths": "-/var/log/journal -/var/cache -/var/tmp -/tmp",
              "worker_read_write_paths": "/var/lib/ai-sysadmin"}
    for suffix, template in TEMPLATES.items():
        service = result["services"][f"hal-{suffix}"]
        assert service["serviceConfig"] == template_service(values, template)
    unit = tmp_path / "hal-ai.service"
    unit.write_text(unit_text(result["services"]["hal-ai"]))
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                          capture_output=True, text=True)
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    assert level and float(level.group(1)) < 4.5, done.stdout + done.stderr


def test_sudo_rules_are_the_catalogs_fixes_with_store_paths(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    roots = ["/var/cache/hal", "/srv/[cache]"]
    result = evaluate(nix_env, {"aiName": "hal", "settings": {"safety": {"clean_paths": roots}}})
    (rule,) = result["sudoRules"]
    assert (rule["users"], rule["runAs"]) == (["ai-sysadmin"], "root")
    assert {tuple(c["options"]) for c in rule["commands"]} == {("NOPASSWD",)}
    paths = {p: f"{STORE}{pkg}/bin/{p}" for p, pkg in (
        ("systemctl", "systemd-252"), ("journalctl", "systemd-252"), ("kill", "util-linux"))}
    prefix = "ai-sysadmin ALL=(root) NOPASSWD: "
    clean = sudoers_rule("ai-sysadmin", roots, f"{STORE}bash/bin/sh")
    expected = [s.format(**paths) for s in SUDO_SHAPES] + [clean.removeprefix(prefix)]
    assert [c["command"] for c in rule["commands"]] == expected
    # as NixOS renders extraRules, checked by sudo's own parser
    sudoers = tmp_path / "sudoers"
    sudoers.write_text("ai-sysadmin ALL=(root) " + ", ".join(
        f"NOPASSWD: {c['command']}" for c in rule["commands"]) + "\n")
    check = subprocess.run(["visudo", "-c", "-f", str(sudoers)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    default = evaluate(nix_env, {})["sudoRules"][0]["commands"][-1]["command"]
    assert default.endswith(" ".join(SafetySettings().clean_paths) + " -- *")


def test_a_token_in_the_store_warns_and_a_url_needs_a_token(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    inline = evaluate(nix_env, {"gotifyUrl": "https://g.example", "gotifyToken": "abc"})
    assert any("world-readable" in w for w in inline["warnings"])
    assert str(settings_of(tmp_path, inline).gotify_token_file).startswith(STORE)
    assert evaluate(nix_env, {})["warnings"] == []
    missing = evaluate(nix_env, {"gotifyUrl": "https://g.example"})["failedAssertions"]
    assert missing and "gotifyTokenFile" in missing[0]
    both = evaluate(nix_env, {"gotifyToken": "a", "gotifyTokenFile": "/run/t"})
    assert both["failedAssertions"] and "not both" in both["failedAssertions"][0]


def test_gotify_needs_a_token_file_wherever_the_url_and_the_file_are_given(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    """settings takes any key of the config: a token file there is the daemon's token file
    (the build refused it), and a URL there without one is what the daemon refuses (the
    build let it through)."""
    url, token = "https://gotify.example.com", "/run/secrets/gotify-token"
    for options in ({"gotifyUrl": url, "settings": {"gotify_token_file": token}},
                    {"settings": {"gotify_url": url, "gotify_token_file": token}},
                    {"settings": {"gotify_url": url}, "gotifyTokenFile": token}):
        result = evaluate(nix_env, options)
        assert result["failedAssertions"] == [], options
        s = settings_of(tmp_path, result)
        assert (s.gotify_url, str(s.gotify_token_file)) == (url, token)
    alone = evaluate(nix_env, {"settings": {"gotify_url": url}})["failedAssertions"]
    assert [m for m in alone if "services.ai-sysadmin.settings.gotify_url needs" in m], alone


def test_a_secret_file_given_as_a_nix_path_or_store_path_is_refused(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    """`key_file = ./id_ed25519;` copies the key into the Nix store, which every user of the
    machine can read: the module refuses it."""
    for name in ("id_ed25519", "api-key", "apprise-urls", "default-key"):
        (tmp_path / name).write_text("secret\n")
    module = tmp_path / "secrets.nix"
    module.write_text("""{
      services.ai-sysadmin.remoteSystems =
        [ "web1" { host = "10.0.0.7"; key_file = ./id_ed25519; } ];
      services.ai-sysadmin.settings = {
        llm.api_key_file = ./api-key;
        notify.apprise_urls_file = "${./apprise-urls}";
        ssh.key_files = [ "/run/secrets/ok" ./default-key ];
        knowledge.token_file = "/nix/store/00000000000000000000000000000000-token";
      };
    }\n""")
    result = evaluate(nix_env, {"aiName": "hal"}, extra=module)
    (refused,) = [m for m in result["failedAssertions"] if "Nix store" in m]
    named = re.findall(r"services\.ai-sysadmin\.[\w.-]+", refused)
    assert sorted(named) == [
        "services.ai-sysadmin.remoteSystems.1.key_file",
        "services.ai-sysadmin.settings.knowledge.token_file",
        "services.ai-sysadmin.settings.llm.api_key_file",
        "services.ai-sysadmin.settings.notify.apprise_urls_file",
        "services.ai-sysadmin.settings.ssh.key_files.1"]
    assert 'as a string ("/run/secrets/' in refused and "every user" in refused
    # strings of absolute paths outside the store (agenix, sops-nix) are what is wanted
    module.write_text("""{
      services.ai-sysadmin.remoteSystems = [ { host = "10.0.0.7"; key_file = "/run/agenix/nas"; } ];
      services.ai-sysadmin.settings.llm.api_key_file = "/run/secrets/api-key";
      services.ai-sysadmin.settings.ssh.key_files = [ "/var/lib/ai-sysadmin/.ssh/id_ed25519" ];
    }\n""")
    fine = evaluate(nix_env, {"aiName": "hal"}, extra=module)
    assert fine["failedAssertions"] == []
    assert settings_of(tmp_path, fine).llm.api_key_file == Path("/run/secrets/api-key")


def test_a_gotify_token_file_in_the_store_is_refused(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    """The option's type stops a bare Nix path, but a string made from one (copied to the
    store all the same) or a store path's string passed it, and the token sat in the
    world-readable store with neither an error nor a warning."""
    (tmp_path / "gotify-token").write_text("secret\n")
    module = tmp_path / "gotify.nix"
    for value in ('"${./gotify-token}"', f'"{STORE}gotify-token"'):
        module.write_text(f"{{ services.ai-sysadmin.gotifyTokenFile = {value}; }}\n")
        result = evaluate(nix_env, {"aiName": "hal", "gotifyUrl": "https://g.example"},
                          extra=module)
        refused = [m for m in result["failedAssertions"] if "Nix store" in m]
        assert refused and refused[0].startswith("services.ai-sysadmin.gotifyTokenFile:"), (
            value, result["failedAssertions"])
    # the store file gotifyToken writes on purpose only warns, as it did
    inline = evaluate(nix_env, {"gotifyUrl": "https://g.example", "gotifyToken": "abc"})
    assert inline["failedAssertions"] == [] and inline["warnings"]
    fine = evaluate(nix_env, {"gotifyUrl": "https://g.example",
                              "gotifyTokenFile": "/run/secrets/gotify"})
    assert fine["failedAssertions"] == []


def build_commands(result: dict[str, Any], tmp_path: Path, config: Path) -> Path:
    """The commands package's bin/, built as its runCommand script builds it: the store's
    ai-sysadmin, Python and config file stood in for by this test's."""
    (commands,) = [p for p in result["packages"] if p["name"].endswith("-commands")]
    package = tmp_path / "package"
    (package / "bin").mkdir(parents=True)
    (package / "bin" / "ai-sysadmin").symlink_to(BIN)
    out = tmp_path / "out"
    script = (commands["script"].replace(f"{STORE}ai-sysadmin-0.1.0", str(package))
              .replace(f"{STORE}python3-3.12-env/bin/python3", sys.executable)
              .replace(result["configFile"], str(config))
              .replace(f"{STORE}bash/bin/sh", "/bin/sh"))
    build = tmp_path / "build"
    build.mkdir()
    done = subprocess.run(["bash", "-euc", script], cwd=build, env={**os.environ, "out": str(out)},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out / "bin"


def test_the_commands_package_runs_each_tool_under_the_assistants_name(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    """The commands are those `commands install` writes: each carries the daemon's config, so
    that a member of its group who has no config of their own reads the daemon's, and takes
    ``-c FILE`` after the tool's name as the CLI's argv[0] dispatch does."""
    result = evaluate(nix_env, {"aiName": "hal"})
    config = tmp_path / "config.toml"
    config.write_text(result["configText"].replace("/var/lib/ai-sysadmin",
                                                   str(tmp_path / "state")))
    bin_dir = build_commands(result, tmp_path, config)
    assert sorted(p.name for p in bin_dir.iterdir()) == sorted(f"hal-{t}" for t in TOOLS)
    # a user with an empty home and no AI_SYSADMIN_CONFIG: the daemon's config, not defaults
    home = tmp_path / "home"
    home.mkdir()
    bare = {k: v for k, v in os.environ.items()
            if k not in ("AI_SYSADMIN_CONFIG", "XDG_CONFIG_HOME", "XDG_STATE_HOME")}
    shown = subprocess.run([str(bin_dir / "hal-config"), "show", "--json"],
                           env={**bare, "HOME": str(home)}, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    values = json.loads(shown.stdout)
    assert (values["ai_name"]["value"], values["state_dir"]["value"]) == (
        "hal", str(tmp_path / "state"))
    # -c after the tool's name: another config, as `hal-issues -c FILE list` documents
    other = tmp_path / "other.toml"
    other.write_text(f'ai_name = "kit"\nstate_dir = "{tmp_path / "kit-state"}"\n'
                     "[knowledge]\nenabled = false\n")
    listed = subprocess.run([str(bin_dir / "hal-issues"), "-c", str(other), "list"],
                            env={**bare, "HOME": str(home)}, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("kit"), listed.stdout


def test_the_flake_builds_the_package_pyproject_describes(nix_env: dict[str, str]) -> None:
    flake = json.loads(instantiate(nix_env, "--eval", "--strict", "--json",
                                   str(HERE / "flake-outputs.nix")))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in project["dependencies"]]
    package = flake["package"]
    assert (package["pname"], package["version"]) == (project["name"], project["version"])
    assert package["dependencies"] == wanted and package["mainProgram"] == "ai-sysadmin"
    assert flake["systems"] == ["aarch64-linux", "x86_64-linux"]
    assert flake["checks"] == ["module", "package"]
    assert flake["modulePackage"] == flake["packageOutPath"]


def test_the_module_copy_of_clean_directorys_script_is_current() -> None:
    copy = (ROOT / "nix" / "clean-script.txt").read_text().removesuffix("\n")
    assert copy == SCRIPT, ("nix/clean-script.txt is stale: python -c 'from ai_sysadmin."
                            "safety.clean_script import SCRIPT; print(SCRIPT)' > "
                            "nix/clean-script.txt")


def test_the_readmes_nixos_example_gives_the_daemon_its_config(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    (example,) = re.findall(r"```nix\n(# /etc/nixos/flake.nix\n.*?)```", readme, re.S)
    (tmp_path / "flake.nix").write_text(example)
    (tmp_path / "configuration.nix").write_text("{ }\n")
    result = json.loads(instantiate(nix_env, "--eval", "--strict", "--json",
                                    str(HERE / "readme-example.nix"),
                                    "--arg", "example", str(tmp_path / "flake.nix")))
    s = settings_of(tmp_path, result)
    assert (s.ai_name, s.autonomy_level, s.llm.model) == ("hal", "auto-safe",
                                                          "qwen2.5:7b-instruct")
    assert (s.gotify_url, len(s.remote_systems), s.thresholds.disk_warn_percent) == (
        "https://gotify.example.com", 2, 80)
    assert result["units"] == ["hal-ai", "hal-llm-worker"]
    assert result["ollama"]["enable"] and result["ollama"]["acceleration"] == "cuda"


def test_the_worker_goes_with_the_daemon_and_a_config_error_stops_both(
        nix_env: dict[str, str]) -> None:
    services = evaluate(nix_env, {"aiName": "hal"})["services"]
    assert services["hal-llm-worker"]["unitConfig"]["PartOf"] == "hal-ai.service"
    for unit in ("hal-ai", "hal-llm-worker"):
        assert services[unit]["serviceConfig"]["RestartPreventExitStatus"] == "2", unit
        # SIGHUP ends them as a clean stop would: started again, with the config read anew
        assert services[unit]["serviceConfig"]["RestartForceExitStatus"] == "SIGHUP", unit


def test_a_name_and_model_given_in_settings_name_the_units_commands_and_preload(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    result = evaluate(nix_env, {"aiName": "hal", "settings": {
        "ai_name": "kit", "llm": {"model": "llama3.1:8b"}}})
    s = settings_of(tmp_path, result)
    assert (s.ai_name, s.llm.model) == ("kit", "llama3.1:8b")
    assert sorted(u for u in result["services"] if u.endswith(("-ai", "-llm-worker"))) == [
        "kit-ai", "kit-llm-worker"]
    assert result["services"]["kit-llm-worker"]["unitConfig"]["PartOf"] == "kit-ai.service"
    assert "kit: the ai-sysadmin daemon" in result["services"]["kit-ai"]["description"]
    (commands,) = [p for p in result["packages"] if p["name"].endswith("-commands")]
    assert commands["name"] == "kit-commands"
    assert f"--config {result['configFile']} commands install" in commands["script"]
    assert result["ollama"]["loadModels"] == ["llama3.1:8b"]
    assert result["failedAssertions"] == []
    bad = evaluate(nix_env, {"settings": {"ai_name": "Kit Two"}})["failedAssertions"]
    assert bad and "settings.ai_name" in bad[0]


#: the package managers' updates run only on managed hosts of those kinds (programs.* keeps
#: their names); the storage tools only where the host has ZFS or MD RAID
UPDATERS = frozenset({"apt-get", "dnf", "yum", "rpm-ostree", "pacman", "zypper",
                      "transactional-update"})
STORAGE = frozenset({"zfs", "zpool", "mdadm"})


def run_by_name(s: Any) -> set[str]:
    """Every program the daemon runs by its name from PATH: the read-only allow-list, the
    fixes' programs, check_reachability's ping and the ssh git runs for config_repo, less
    those programs.* names by a path."""
    wanted = {*READ_ONLY, *CUSTOM, *REMEDIATION, PING, shlex.split(ssh_command(s))[0]}
    return {p for p in wanted if not s.programs.resolve(p).startswith("/")}


def test_the_daemon_unit_finds_every_program_it_runs_by_name(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    """NixOS gives a unit only coreutils, findutils, grep, sed and systemd on its PATH: the
    unit's path must hold the rest, or the model's `ss -tlnp` fails with "cannot start"."""
    result = evaluate(nix_env, {"aiName": "hal"})
    names = run_by_name(settings_of(tmp_path, result)) - UPDATERS
    on_path = set(result["onPath"]["hal-ai"])
    assert sorted(names - STORAGE - on_path) == []
    assert not STORAGE & on_path  # not pulled onto a host without them
    # iputils' own ping, which needs no capability, not the capability wrapper
    assert not [p for p in result["services"]["hal-ai"]["path"] if p.startswith("/run/wrappers")]
    storage = tmp_path / "storage.nix"
    storage.write_text("{ boot.supportedFilesystems = { zfs = true; }; "
                       "boot.swraid.enable = true; }\n")
    both = evaluate(nix_env, {"aiName": "hal"}, extra=storage)
    assert sorted(names - set(both["onPath"]["hal-ai"])) == []


def test_a_local_ollama_runs_where_the_daemon_connects_or_the_module_refuses(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    """A loopback URL with a scheme and no port means the scheme's port to the daemon, as to
    Ollama's own client (OLLAMA_HOST): Ollama is never started on 11434 while the daemon
    asks port 80, nor for an https:// URL it cannot serve."""
    refused_urls = {"http://localhost", "http://127.0.0.1/", "HTTP://[::1]", "https://localhost",
                    "https://127.0.0.1:11434", "localhost"}
    for url in sorted(refused_urls | {"http://localhost:11500", "127.0.0.1:11434",
                                      "http://[::1]:11600/", "https://gpu-box"}):
        result = evaluate(nix_env, {"ollamaHost": url})
        refused = [m for m in result["failedAssertions"] if "ollamaHost" in m]
        assert bool(refused) == (url in refused_urls), (url, refused)
        if refused:
            assert result["ollama"] is None, url
            assert "https" in refused[0] if url.startswith("https") else "port" in refused[0]
            continue
        if result["ollama"] is None:
            continue  # another machine's
        base = httpx.URL(base_url(settings_of(tmp_path, result).llm.url, DEFAULT_PORT))
        host = {"localhost": "127.0.0.1"}.get(base.host, base.host)
        assert base.scheme == "http", url
        listens = f"{result['ollama']['host']}:{result['ollama']['port']}"
        assert listens == f"{bracketed(host)}:{base.port or 80}", url
    given = evaluate(nix_env, {"settings": {"llm": {"url": "http://localhost"}}})
    assert any("settings.llm.url" in m and "port 80" in m for m in given["failedAssertions"])


def test_a_credential_in_a_url_setting_warns_that_it_lands_in_the_store(
        nix_env: dict[str, str]) -> None:
    """The config file is in the world-readable Nix store: a password, token or key inside
    any URL setting is said, with the option that holds it."""
    secret = {"queue.url": "redis://:hunter2@10.0.0.9:6379/0",
              "llm.url": "http://user:hunter2@gpu-box:11434",
              "gotify_url": "https://u:hunter2@gotify.example",
              "knowledge.url": "https://hunter2@chroma.example:8000",
              "knowledge.ollama_url": "http://gpu-box:11434/?key=hunter2",
              "config_repo": "https://oauth2:hunter2@gitlab.example.com/infra.git"}
    assert set(secret) == set(_URL_KEYS)  # every URL the config file may hold
    for key, url in secret.items():
        section, _, name = key.rpartition(".")
        settings = {section: {name: url}} if section else {key: url}
        warnings = evaluate(nix_env, {"settings": settings})["warnings"]
        assert [w for w in warnings if f"services.ai-sysadmin.settings.{key} holds a credential"
                in w and "world-readable" in w], (key, warnings)
    for option, url, instead in (
            ("configRepo", "https://oauth2:hunter2@gitlab.example.com/infra.git", "ssh.key_files"),
            ("ollamaHost", "http://gpu-box:11434/?api_key=hunter2", "llm.api_key_file"),
            ("gotifyUrl", "https://u:hunter2@gotify.example", "gotifyTokenFile")):
        warnings = evaluate(nix_env, {option: url, "gotifyTokenFile": "/run/t"})["warnings"]
        (said,) = [w for w in warnings if f"services.ai-sysadmin.{option} " in w]
        assert instead in said, said
    # a login name is no secret, nor a URL without userinfo or query
    for option, url in (("configRepo", "ssh://git@github.com/o/infra.git"),
                        ("configRepo", "git@github.com:o/infra.git"),
                        ("ollamaHost", "http://gpu-box:11434"),
                        ("configRepo", "https://git.example.com/infra.git")):
        assert evaluate(nix_env, {option: url})["warnings"] == [], url
    assert evaluate(nix_env, {"settings": {"queue": {"url": "redis://10.0.0.9:6379/0"}}})[
        "warnings"] == []


def test_ollama_acceleration_takes_what_services_ollama_takes(nix_env: dict[str, str]) -> None:
    for value in (None, False, "rocm", "cuda", "vulkan"):
        result = evaluate(nix_env, {"ollamaAcceleration": value})
        assert result["ollama"]["acceleration"] == value, value
    # what services.ollama refuses is an error where it is read (evaluate.nix shows it as null)
    assert evaluate(nix_env, {"ollamaAcceleration": "opencl"})["ollama"] is None


def test_the_commands_run_under_the_python_the_package_was_built_for(
        nix_env: dict[str, str], tmp_path: Path) -> None:
    """The flake's package comes from the flake's nixpkgs, whose Python 3 may not be the
    system's: an environment of the system's python3 with the package in it would not import
    it, and the commands' build failed."""
    module = tmp_path / "package.nix"
    module.write_text("""{ pkgs, ... }: {
      services.ai-sysadmin.package = pkgs.callPackage ../../nix/package.nix { } // {
        pythonInterpreter = pkgs.python3 // {
          withPackages = f: rec { type = "derivation"; name = "python3-3.13-env";
            outPath = "/nix/store/00000000000000000000000000000000-${name}"; };
        };
      };
    }\n""".replace("../../nix/package.nix", str(ROOT / "nix" / "package.nix")))
    result = evaluate(nix_env, {"aiName": "hal"}, extra=module)
    (commands,) = [p for p in result["packages"] if p["name"].endswith("-commands")]
    assert "python3-3.13-env/bin/python3" in commands["script"], commands["script"]
    assert "python3-3.12-env" not in commands["script"]
