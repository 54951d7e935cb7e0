"""Real sshd hosts, each in a network namespace of its own, made by the tests and removed after.

Every host is an ``ip netns`` namespace joined to the root namespace by a veth pair with a /30 of
10.231.0.0/16 (those addresses exist only on links the tests create). Its ``sshd -D`` has a
generated host key, accepts one generated client key for root and logs to a file. The lab host
is the fault lab's own network namespace (that of its PID 1), with sshd started as a unit of the
lab's real systemd, so remote commands see that systemd. The tests connect from the root
namespace. Namespaces, links and processes go away after the session, even on failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from ai_sysadmin.hosts.ssh import SshTarget
from ai_sysadmin.lab.sandbox import Sandbox
from tests.support.root_rc import empty_rc, without_root_rc

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
PREFIX = "10.231"
LOCK = Path("/run/lock/ai-sysadmin-ssh-tests.lock")
NS_PREFIX = "aisa"
LAB_PORT = 2222
DEADLINE = 10.0
POLL = 0.02


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                    str(path)], check=True, capture_output=True, timeout=10)
    return path.with_suffix(".pub").read_text().strip()


def fingerprint(pub_path: Path) -> str:
    """The SHA256 fingerprint as OpenSSH prints it (an independent check of ours)."""
    out = subprocess.run(["ssh-keygen", "-lf", str(pub_path), "-E", "sha256"],
                         capture_output=True, text=True, check=True, timeout=10).stdout
    return out.split()[1]


def wait_until(predicate, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:g} s")
        time.sleep(POLL)


def _port_open(address: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=0.5):
        return True
    return False


@dataclass
class ClientKey:
    private: Path
    public: str


@dataclass
class SshHost:
    """One sshd the tests can reach; ``target()`` makes an SshTarget for it."""

    name: str
    address: str
    port: int
    host_key_pub: Path
    client: ClientKey
    log: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    netns: str | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.host_key_pub)

    @property
    def known_hosts_line(self) -> str:
        pattern = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        alg, b64 = self.host_key_pub.read_text().split()[:2]
        return f"{pattern} {alg} {b64}\n"

    def write_known_hosts(self, path: Path, *more: SshHost) -> Path:
        path.write_text("".join(h.known_hosts_line for h in (self, *more)))
        return path

    def target(self, known_hosts: Path, **changes: object) -> SshTarget:
        base = SshTarget(host=self.address, port=self.port, user="root",
                         key_files=(str(self.client.private),), known_hosts=known_hosts,
                         connect_timeout=5.0)
        return replace(base, **changes)  # type: ignore[arg-type]

    def accepted_logins(self) -> int:
        assert self.log is not None
        return self.log.read_text(errors="replace").count("Accepted publickey")

    def session_pids(self) -> list[int]:
        """The per-connection sshd processes (children of the listener)."""
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()]


def sshd_config(directory: Path, listen: list[str], port: int, host_key: Path,
                authorized: Path, extra: Sequence[str] = ()) -> str:
    lines = [f"ListenAddress {a}:{port}" for a in listen]
    lines += [
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized}",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "PidFile none",
        "LogLevel VERBOSE",
        "AllowTcpForwarding yes",
        "MaxSessions 30",
        "MaxStartups 100",
        "PrintMotd no",
        *extra,
    ]
    return "\n".join(lines) + "\n"


@dataclass
class NetLab:
    """Makes namespaces, veth pairs and sshd processes, and removes every one of them."""

    tmp: Path
    client: ClientKey
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _next: int = 0

    # -- addresses -----------------------------------------------------------------------------

    def _subnet(self) -> int:
        """An unused 10.231.N.0/30 (N unused on this machine's root namespace)."""
        used = set(re.findall(rf"{re.escape(PREFIX)}\.(\d+)\.", _ip("-o", "-4", "addr").stdout))
        for n in range(self._next + 1, 255):
            if str(n) not in used:
                self._next = n
                return n
        raise RuntimeError("no free 10.231.N.0/30 left")

    def _lock(self) -> contextlib.AbstractContextManager[object]:
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        handle = open(LOCK, "w")

        @contextlib.contextmanager
        def held() -> Iterator[object]:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
                yield handle
            finally:
                handle.close()

        return held()

    def namespace(self, *, blackhole: bool = False) -> tuple[str, str]:
        """A new namespace linked to the root one; returns (name, its address).

        A ``blackhole`` one never answers: the root side sends its frames to a MAC address
        nobody has, so a connection attempt waits for its timeout instead of being refused.
        """
        with self._lock():
            n = self._subnet()
            name = f"{NS_PREFIX}-{os.getpid()}-{n}"
            outer, inner = f"{NS_PREFIX}{n}h", f"{NS_PREFIX}{n}n"
            _ip("netns", "add", name)
            self.namespaces.append(name)
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner, "netns", name)
            self.links.append(outer)
            _ip("addr", "add", f"{PREFIX}.{n}.1/30", "dev", outer)
            _ip("link", "set", outer, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "set", inner, "up")
        address = f"{PREFIX}.{n}.2"
        if blackhole:
            _ip("neigh", "replace", address, "lladdr", "02:00:5e:00:53:01", "dev", outer,
                "nud", "permanent")
        else:
            _ip("-n", name, "addr", "add", f"{address}/30", "dev", inner)
        return name, address

    def link_namespaces(self, a: str, b: str) -> tuple[str, str]:
        """A private link between two namespaces only; returns (address in a, address in b)."""
        n = self._subnet()  # never in the root namespace: no lock needed
        left, right = f"{NS_PREFIX}{n}a", f"{NS_PREFIX}{n}b"
        _ip("-n", a, "link", "add", left, "type", "veth", "peer", "name", right, "netns", b)
        for ns, dev, host in ((a, left, 1), (b, right, 2)):
            _ip("-n", ns, "addr", "add", f"{PREFIX}.{n}.{host}/30", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        return f"{PREFIX}.{n}.1", f"{PREFIX}.{n}.2"

    # -- sshd ----------------------------------------------------------------------------------

    def sshd(self, name: str, netns: str | None, listen: list[str], port: int = 22,
             extra: Sequence[str] = (), setup: str = "") -> SshHost:
        """An sshd in ``netns`` (None: this machine's own, for a name such as localhost that
        resolves to its loopback); ``extra``: more sshd_config lines; ``setup``: shell
        commands (each ending in ``&&``) run in its private mount namespace before it starts:
        what its host looks like (accounts, a /proc mounted otherwise, see :func:`accounts`)."""
        directory = self.tmp / name
        directory.mkdir()
        host_key = directory / "host_ed25519"
        _keygen(host_key, f"host-{name}")
        authorized = directory / "authorized_keys"
        authorized.write_text(self.client.public + "\n")
        config = directory / "sshd_config"
        config.write_text(sshd_config(directory, listen, port, host_key, authorized, extra))
        log = directory / "sshd.log"
        hidden_rc = empty_rc(directory)
        # `ip netns exec` gives a private mount namespace: a fresh /run there holds sshd's
        # privilege separation directory without touching the machine's /run
        script = ('mount -t tmpfs -o mode=755 tmpfs /run && mkdir /run/sshd && '
                  f'{without_root_rc(hidden_rc)}{setup}exec "$0" "$@"')
        enter = (["ip", "netns", "exec", netns] if netns is not None
                 else ["unshare", "--mount", "--propagation", "private"])
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*enter, "sh", "-c", script, SSHD, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)

        def listening() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"sshd {name} exited: {log.read_text()[-500:]}")
            return log.read_text(errors="replace").count("Server listening on") >= len(listen)

        wait_until(listening, f"sshd {name} listening")
        return SshHost(name, listen[0], port, host_key.with_suffix(".pub"), self.client,
                       log, proc, netns)

    # -- teardown ------------------------------------------------------------------------------

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        for name in self.namespaces:
            kill_namespace_processes(name)
            _ip("netns", "del", name, check=False)
        for link in self.links:  # gone with their namespace; a leftover is removed here
            _ip("link", "del", link, check=False)


@dataclass(frozen=True)
class Account:
    """A user of a test host: its name, uid (its gid too) and login shell."""

    name: str
    uid: int
    shell: str = "/bin/bash"


@contextlib.contextmanager
def accounts_lab(client_key: ClientKey, prefix: str) -> Iterator[tuple[NetLab, str, str, Path]]:
    """A network lab for hosts with accounts of their own: the lab, one namespace and its
    address, and a directory for the accounts' homes (:func:`accounts`); removed after. It
    lives in a directory every user may enter: sshd reads authorized_keys as the user logging
    in, who must reach it (pytest's own temporary directories are root's only)."""
    top = Path(tempfile.mkdtemp(prefix=prefix))
    top.chmod(0o755)
    netlab = NetLab(top, client_key)
    try:
        ns, address = netlab.namespace()
        homes = top / "home"
        homes.mkdir()
        yield netlab, ns, address, homes
    finally:
        netlab.close()
        shutil.rmtree(top, ignore_errors=True)


def accounts(directory: Path, users: Sequence[Account], sudoers: str | None = None) -> str:
    """:meth:`NetLab.sshd` ``setup`` that gives its host these users (this machine's
    /etc/passwd and /etc/shadow and theirs, bound over the originals in sshd's mount
    namespace only), each with a home; and ``sudoers`` as its /etc/sudoers."""
    passwd = Path("/etc/passwd").read_text() + "".join(
        f"{u.name}:x:{u.uid}:{u.uid}::{directory / u.name}:{u.shell}\n" for u in users)
    # "*": no password, yet not a locked account (sshd refuses those without PAM)
    shadow = Path("/etc/shadow").read_text() + "".join(
        f"{u.name}:*:19000:0:99999:7:::\n" for u in users)
    binds = {"passwd": (passwd, 0o644), "shadow": (shadow, 0o600)}
    if sudoers is not None:
        binds["sudoers"] = (sudoers, 0o440)
    for user in users:
        (directory / user.name).mkdir()
        os.chown(directory / user.name, user.uid, user.uid)
    setup = ""
    for name, (text, mode) in binds.items():
        path = directory / f"etc-{name}"
        path.write_text(text)
        path.chmod(mode)
        setup += f"mount --bind {shlex.quote(str(path))} /etc/{name} && "
    return setup


def kill_namespace_processes(netns: str) -> None:
    """SIGKILL every process in a namespace (sshd's per-connection children too)."""
    try:
        inode = os.stat(f"/run/netns/{netns}").st_ino
    except OSError:
        return
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.stat(entry / "ns" / "net").st_ino == inode:
                os.kill(int(entry.name), signal.SIGKILL)


def _remove_stale_namespaces() -> None:
    """Namespaces left by a killed run (its pid is gone) are removed before new ones are made."""
    listed = _ip("netns", "list", check=False).stdout
    for name in re.findall(rf"^({NS_PREFIX}-(\d+)-\w+)", listed, re.M):
        ns, pid = name
        if not Path(f"/proc/{pid}").exists():
            kill_namespace_processes(ns)
            _ip("netns", "del", ns, check=False)


def _require_root_tools() -> None:
    missing = [t for t in ("ip", "ssh-keygen", "nsenter") if not shutil.which(t)]
    if not os.path.exists(SSHD):
        missing.append("sshd (openssh-server)")
    reason = None
    if os.geteuid() != 0:
        reason = "the SSH tests need root (network namespaces)"
    elif missing:
        reason = f"the SSH tests need {', '.join(missing)}"
    if reason and os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run them", pytrace=False)
    if reason:
        pytest.skip(reason)


@dataclass
class Hosts:
    """The session's hosts: two plain ones, one reachable only through ``jump``, two dead ends."""

    alpha: SshHost
    beta: SshHost
    jump: SshHost
    inner: SshHost
    refused: str  # an address with no sshd: connection refused
    blackhole: str  # an address that never answers
    netlab: NetLab


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> ClientKey:
    _require_root_tools()
    directory = tmp_path_factory.mktemp("ssh-client")
    private = directory / "id_ed25519"
    return ClientKey(private, _keygen(private, "ai-sysadmin-tests"))


@pytest.fixture(scope="session")
def ssh_hosts(tmp_path_factory: pytest.TempPathFactory, client_key: ClientKey) -> Iterator[Hosts]:
    _remove_stale_namespaces()
    netlab = NetLab(tmp_path_factory.mktemp("netlab"), client_key)
    try:
        ns_a, addr_a = netlab.namespace()
        ns_b, addr_b = netlab.namespace()
        ns_j, addr_j = netlab.namespace()
        ns_i = f"{NS_PREFIX}-{os.getpid()}-inner"
        _ip("netns", "add", ns_i)
        netlab.namespaces.append(ns_i)
        _ip("-n", ns_i, "link", "set", "lo", "up")
        _jump_side, inner_addr = netlab.link_namespaces(ns_j, ns_i)
        _ns_r, addr_r = netlab.namespace()
        _ns_x, addr_x = netlab.namespace(blackhole=True)
        yield Hosts(
            alpha=netlab.sshd("alpha", ns_a, [addr_a]),
            beta=netlab.sshd("beta", ns_b, [addr_b]),
            jump=netlab.sshd("jump", ns_j, [addr_j]),
            inner=netlab.sshd("inner", ns_i, [inner_addr]),
            refused=addr_r,
            blackhole=addr_x,
            netlab=netlab,
        )
    finally:
        netlab.close()


@dataclass
class LabHost:
    sandbox: Sandbox
    ssh: SshHost


@pytest.fixture(scope="module")
def lab_host(tmp_path_factory: pytest.TempPathFactory, client_key: ClientKey) -> Iterator[LabHost]:
    """The fault lab reachable over SSH: sshd runs as a unit of the lab's own systemd."""
    netlab = NetLab(tmp_path_factory.mktemp("labnet"), client_key)
    sandbox = Sandbox(hostname="sshlab")
    try:
        sandbox.start()
        assert sandbox.pid1 is not None
        with netlab._lock():
            n = netlab._subnet()
            outer, inner = f"{NS_PREFIX}{n}h", f"{NS_PREFIX}{n}l"
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner, "netns",
                str(sandbox.pid1))
            netlab.links.append(outer)
            _ip("addr", "add", f"{PREFIX}.{n}.1/30", "dev", outer)
            _ip("link", "set", outer, "up")
        address = f"{PREFIX}.{n}.2"
        for argv in (["ip", "link", "set", "lo", "up"],
                     ["ip", "addr", "add", f"{address}/30", "dev", inner],
                     ["ip", "link", "set", inner, "up"]):
            sandbox.exec(argv, check=True)
        directory = netlab.tmp
        host_key = directory / "host_ed25519"
        _keygen(host_key, "host-lab")
        conf_dir = "/etc/ai-sysadmin-ssh-test"
        sandbox.write_file(f"{conf_dir}/host_ed25519", host_key.read_text(), 0o600)
        sandbox.write_file(f"{conf_dir}/authorized_keys", client_key.public + "\n", 0o644)
        sandbox.write_file(f"{conf_dir}/sshd_config", sshd_config(
            directory, [address], LAB_PORT, Path(f"{conf_dir}/host_ed25519"),
            Path(f"{conf_dir}/authorized_keys")), 0o644)
        sandbox.write_file(f"{conf_dir}/empty-bashrc", "", 0o644)
        sandbox.exec(["sh", "-c", without_root_rc(f"{conf_dir}/empty-bashrc") + "true"],
                     check=True)
        sandbox.exec(["systemd-run", "--unit=aisa-test-sshd.service",
                      "--property=RuntimeDirectory=sshd", SSHD, "-D", "-e", "-f",
                      f"{conf_dir}/sshd_config"], check=True)
        wait_until(lambda: _port_open(address, LAB_PORT), "the lab's sshd listening")
        yield LabHost(sandbox, SshHost("lab", address, LAB_PORT, host_key.with_suffix(".pub"),
                                       client_key))
    finally:
        netlab.close()
        sandbox.stop()


@pytest.fixture
def known_hosts(tmp_path: Path) -> Path:
    return tmp_path / "known_hosts"
