from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ai_sysadmin.config import RemoteSystem
from ai_sysadmin.errors import ConfigError
from ai_sysadmin.hosts.inventory import parse_target, ssh_config_hosts
from ai_sysadmin.hosts.os_patterns import PackageManager, family_of, package_manager
from ai_sysadmin.hosts.osinfo import parse_os_release


@pytest.mark.parametrize(("entry", "host", "user", "port"), [
    # no port written: ~/.ssh/config's, else 22; a written one (22 too) wins over it
    ("web1", "web1", None, None),
    ("web1:22", "web1", None, 22),
    ("admin@web1.lab", "web1.lab", "admin", None),
    ("ops@10.1.2.3:2222", "10.1.2.3", "ops", 2222),
    ("[::1]:2200", "::1", None, 2200),
    ("[::1]:22", "::1", None, 22),
    ("admin@[::1]:2222", "::1", "admin", 2222),
    ("admin@::1", "::1", "admin", None),
    # ssh splits at the last '@': a directory's login (SSSD, AD) holds one
    ("jane.doe@corp.example@web1:2222", "web1", "jane.doe@corp.example", 2222),
    ("x@y@z", "z", "x@y", None),
])
def test_targets(entry, host, user, port) -> None:
    spec = parse_target(entry)
    assert (spec.host, spec.user, spec.port) == (host, user, port)
    # what is stored (the target) reads back as the same host, a port 22 written still written
    again = parse_target(spec.target)
    assert (again.host, again.user, again.port) == (host, user, port)


@pytest.mark.parametrize("entry", ["", "a b", "x@@z", "-x@y@z", "web1:99999", "web1;reboot",
                                   "user@:99999", "a" * 300, "[1.2.3.4]:22", "-oProxyCommand=x"])
def test_bad_targets_are_refused(entry) -> None:
    with pytest.raises(ConfigError, match="remote_systems"):
        parse_target(entry)


def test_table_entries_keep_their_options() -> None:
    spec = parse_target(RemoteSystem(host="10.0.0.5", name="db", user="u", port=2022, sudo=True))
    assert (spec.name, spec.target, spec.sudo) == ("db", "u@10.0.0.5:2022", True)


def test_ssh_config_hosts_skip_patterns(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host *\n  User x\nHost web1 web2\n  HostName 10.0.0.1\n"
                      "host db-?\nHost !bad jump\n")
    assert ssh_config_hosts(config) == ["web1", "web2", "jump"]
    assert ssh_config_hosts(tmp_path / "missing") == []


def test_ssh_config_hosts_are_read_as_openssh_splits_them(tmp_path: Path) -> None:
    # "Host=web1" was never found, and a quoted "web 2" gave the names '"web' and '2"'
    config = tmp_path / "config"
    config.write_text('Host=web1\nHost "web 2" web3\nHost\tweb4\n  host = web5 # old: web6\n'
                      "Host 'db 1' \"db2\"\nHost \"open web7\n")
    assert ssh_config_hosts(config) == ["web1", "web3", "web4", "web5", "db2"]


def ssh_home(home: Path) -> Path:
    """A home whose ~/.ssh/config includes files as people lay them out: a directory of
    them (relative to ~/.ssh), a ~ path, and includes inside Host blocks, which ssh reads
    only for the names those blocks match. Returns its config."""
    files = {
        "config": "Include config.d/*\nHost bastion\n  User jump\nHost *.lab\n"
                  "  Include lab.conf\nHost *\n  Include ~/.ssh/common.conf missing.conf\n"
                  "Host db1\n  Include nested/deep.conf\n",
        "config.d/20-db": "Host db1\n  User dba\n",
        "config.d/10-web": "Host web1 web2\n  User deploy\n",
        "config.d/.hidden": "Host hidden1\n  User hidden\n",  # a glob's * skips it
        "lab.conf": "Host web3.lab other.example\n  User labber\n",
        "common.conf": "Host cache1\n  User common\n",
        "nested/deep.conf": "Host web9\n  User never\n",
    }
    for name, text in files.items():
        (home / ".ssh" / name).parent.mkdir(parents=True, exist_ok=True)
        (home / ".ssh" / name).write_text(text)
    return home / ".ssh" / "config"


#: the names ssh_home's config gives, in the order ssh reads them, with the User ssh gives
#: each; and the names its files hold that ssh never applies to a host of that name
SSH_HOME_NAMES = {"web1": "deploy", "web2": "deploy", "db1": "dba", "bastion": "jump",
                  "web3.lab": "labber", "cache1": "common"}
SSH_HOME_NOT = {"hidden1": "hidden", "other.example": "labber", "web9": "never"}


def test_ssh_config_hosts_follow_include_as_ssh_does(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # hosts in an included file (Include config.d/*) were never offered
    monkeypatch.setenv("HOME", str(tmp_path))
    config = ssh_home(tmp_path)
    assert ssh_config_hosts(config) == list(SSH_HOME_NAMES)
    # a config elsewhere still includes relative to ~/.ssh (ssh -F does so)
    (tmp_path / "elsewhere").mkdir()
    moved = tmp_path / "elsewhere" / "config"
    moved.write_text(config.read_text())
    assert ssh_config_hosts(moved) == list(SSH_HOME_NAMES)
    assert ssh_config_hosts(moved, ssh_dir=tmp_path / "elsewhere") == ["bastion", "cache1", "db1"]


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client here")
def test_ssh_config_hosts_are_those_ssh_applies_the_included_files_to(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = ssh_home(tmp_path)

    def user(name: str) -> str:
        # ssh's includes take ~ from $HOME (glob(3)), the home set above
        shown = subprocess.run(["ssh", "-G", "-F", str(config), name], capture_output=True,
                               text=True, timeout=30, check=True, stdin=subprocess.DEVNULL)
        return next(line.split(" ", 1)[1] for line in shown.stdout.splitlines()
                    if line.startswith("user "))

    assert {name: user(name) for name in ssh_config_hosts(config)} == SSH_HOME_NAMES
    assert all(user(name) != written for name, written in SSH_HOME_NOT.items())


def test_ssh_config_includes_stop_as_deep_as_ssh_reads(tmp_path: Path) -> None:
    """A file that includes itself, and a chain of includes deeper than ssh reads (16 below
    the config), end; what was read is kept."""
    loop = tmp_path / "loop"
    loop.write_text(f"Host loop1\nInclude {loop}\n")
    assert ssh_config_hosts(loop, ssh_dir=tmp_path) == ["loop1"]
    for n in range(20):
        (tmp_path / f"c{n}").write_text(f"Include c{n + 1}\nHost h{n}\n")
    assert ssh_config_hosts(tmp_path / "c0", ssh_dir=tmp_path) == [
        f"h{n}" for n in range(16, -1, -1)]


@pytest.mark.parametrize(("release", "family"), [
    ('ID=nixos\n', "nixos"),
    ('ID=ubuntu\nID_LIKE=debian\n', "debian"),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "fedora"),
    ('ID=endeavouros\nID_LIKE=arch\n', "arch"),
    ('ID=mystery\nID_LIKE=debian\n', "debian"),
    ('ID="amzn"\nVERSION_ID="2"\n', "fedora"),
])
def test_os_families_from_os_release(release, family) -> None:
    info = parse_os_release(release)
    assert family_of(info.id, info.id_like) == family


def test_unknown_os_is_generic_systemd() -> None:
    assert family_of("gentoo", ()) is None
    assert "none of the package managers" in str(
        package_manager("gentoo", (), frozenset(), ostree_booted=False))


AMZN2 = 'NAME="Amazon Linux"\nID="amzn"\nID_LIKE="centos rhel fedora"\nVERSION_ID="2"\n'
CENTOS7 = 'NAME="CentOS Linux"\nID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="7"\n'
COREOS = 'NAME="Fedora Linux"\nID=fedora\nVARIANT_ID=coreos\nVERSION_ID=40\n'
LEAP = 'NAME="openSUSE Leap"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\n'
TUMBLEWEED = 'NAME="openSUSE Tumbleweed"\nID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"\n'


@pytest.mark.parametrize(("release", "found", "ostree", "update"), [
    # what the host has decides, not its family: yum where a RHEL-like host has no dnf
    (AMZN2, {"yum"}, False, ("yum", "-y", "update")),
    (CENTOS7, {"yum"}, False, ("yum", "-y", "update")),
    ('ID=fedora\n', {"dnf", "yum"}, False, ("dnf", "-y", "upgrade")),
    # an ostree-booted host changes its deployment with rpm-ostree, whatever else it has
    (COREOS, {"rpm-ostree"}, True, ("rpm-ostree", "upgrade")),
    (COREOS, {"rpm-ostree", "dnf"}, True, ("rpm-ostree", "upgrade")),
    # rpm-ostree on a host that did not boot a deployment of it changes nothing it runs
    ('ID=fedora\n', {"rpm-ostree", "dnf"}, False, ("dnf", "-y", "upgrade")),
    # the family breaks a tie: a Debian host with dnf for building chroots
    ('ID=debian\n', {"apt-get", "dnf"}, False, ("apt-get", "-y", "upgrade")),
    ('ID=nixos\n', {"nixos-rebuild"}, False, ("nixos-rebuild", "switch", "--upgrade")),
    # an OS this table does not know, with one package manager: that one
    ('ID=pureos\n', {"apt-get"}, False, ("apt-get", "-y", "upgrade")),
    # openSUSE: a fixed release updates, a rolling one moves to its latest snapshot
    (LEAP, {"zypper"}, False, ("zypper", "--non-interactive", "update")),
    ('ID="sles"\nVERSION_ID="15.6"\n', {"zypper"}, False,
     ("zypper", "--non-interactive", "update")),
    (TUMBLEWEED, {"zypper"}, False, ("zypper", "--non-interactive", "dist-upgrade")),
    # a transactional system: its root is read-only to zypper, which it has too
    ('ID="sl-micro"\nID_LIKE="suse"\n', {"zypper", "transactional-update"}, False,
     ("transactional-update", "--non-interactive", "up")),
    ('ID="opensuse-microos"\nID_LIKE="suse opensuse opensuse-tumbleweed"\n',
     {"zypper", "transactional-update"}, False,
     ("transactional-update", "--non-interactive", "dup")),
])
def test_the_package_manager_is_the_one_the_host_has(release, found, ostree, update) -> None:
    info = parse_os_release(release)
    chosen = package_manager(info.id, info.id_like, frozenset(found), ostree)
    assert isinstance(chosen, PackageManager) and chosen.update == update, chosen


@pytest.mark.parametrize(("release", "found", "ostree", "why"), [
    (COREOS, {"dnf"}, True, "it has no rpm-ostree"),
    (AMZN2, set(), False, "none of the package managers known here (nixos-rebuild, apt-get, "
     "pacman, dnf, yum, rpm-ostree, zypper, transactional-update)"),
    (LEAP, set(), False, "none of the package"),
    (TUMBLEWEED, {"apt-get"}, False,
     "it has apt-get, not transactional-update or zypper as its suse family does"),
    ('ID=mystery\n', {"apt-get", "pacman"}, False, "it has apt-get and pacman, and its OS "
     "does not tell which one its packages come from: a person updates it"),
    ('ID=debian\n', {"dnf"}, False, "it has dnf, not apt-get as its debian family does"),
    ('ID=fedora\n', {"rpm-ostree"}, False, "none of the package managers"),
])
def test_a_host_without_a_package_manager_it_can_use_says_why(release, found, ostree,
                                                             why) -> None:
    info = parse_os_release(release)
    chosen = package_manager(info.id, info.id_like, frozenset(found), ostree)
    assert isinstance(chosen, str) and why in chosen, chosen
