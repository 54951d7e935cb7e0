"""One sweep of 50 SSH hosts: this project vs Ansible vs a sequential sweep vs the floor.

    sudo .venv/bin/python bench/fleet_sweep.py [--hosts 50] [--no-ansible]
    (needs sshd; the Ansible rows need `pip install -c constraints.txt -e '.[bench]'`)

50 real sshd processes listen on 127.0.1.1-50 (loopback only), one host key each; the bench
writes the known_hosts file, host keys are verified everywhere. Rows, all in the same run:
- this project: a full sweep (one remote command per host, parse, all rules, store) with fresh
  connections, then a second sweep over the reused connections;
- the same sweep done host after host (sequential);
- the floor: a bare asyncssh round, one trivial command per host, fresh connections;
- `ansible all -m command -a 'cat /proc/loadavg'` and `ansible all -m setup`, forks = 50.
- the second sweep's own floor: the same commands run bare (one plain sh line, no framing, no
  timeouts, no parsing, rules or store) over the same connections. All 50 hosts share this
  machine's CPUs and process table, so each host's `ps` reads every host's processes.
Targets (issue 5): >= 10x faster than Ansible -m command, within 2x of the floor with fresh
connections, second sweep under 0.4 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import asyncssh

from ai_sysadmin.config import Settings, SshSettings
from ai_sysadmin.hosts.ssh import SshTarget, SshTransport
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.collector import Collector, JournalQuery
from ai_sysadmin.orchestrator.checker import HostChecker, fleet_checkers
from ai_sysadmin.store import Database, IncidentStore

PORT = 2222
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def start_fleet(tmp: Path, count: int) -> tuple[list[str], Path, Path, list[subprocess.Popen]]:
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    client_key = tmp / "client"
    keygen(client_key)
    authorized = tmp / "authorized_keys"
    authorized.write_text((tmp / "client.pub").read_text())
    known_lines, procs, addrs = [], [], []
    # This machine's /root/.bashrc runs `pyenv init` (~0.1 s of CPU) for every SSH command.
    # A managed host would not: the sshds run in a mount namespace where that file is empty,
    # so every row (the floor and Ansible included) measures SSH, not this machine's rc file.
    # The bind mount is made by a shell that already runs in the new namespace: it can never
    # land on this machine's own /root/.bashrc. No pipes of ours: a holder that outlived the
    # bench must not keep a `| sed` waiting.
    empty = tmp / "empty-rc"
    empty.write_text("")
    rc_file = Path("/root/.bashrc")
    hide = f"mount --bind {shlex.quote(str(empty))} /root/.bashrc && " if rc_file.exists() else ""
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f"{hide}touch {shlex.quote(str(tmp / 'ns-ready'))} && exec sleep infinity"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(holder)
    deadline = time.monotonic() + 10
    while not (tmp / "ns-ready").exists():
        assert holder.poll() is None and time.monotonic() < deadline, "unshare did not start"
        time.sleep(0.01)
    assert os.readlink(f"/proc/{holder.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    quiet_shell = ["nsenter", "-t", str(holder.pid), "-m", "--"]
    for n in range(1, count + 1):
        addr = f"127.0.1.{n}"
        hostkey = tmp / f"host{n}"
        keygen(hostkey)
        config = tmp / f"sshd{n}.conf"
        config.write_text(
            f"ListenAddress {addr}:{PORT}\nHostKey {hostkey}\nPidFile {tmp}/sshd{n}.pid\n"
            f"AuthorizedKeysFile {authorized}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "StrictModes no\nMaxStartups 200:30:400\nMaxSessions 50\nLogLevel ERROR\n")
        procs.append(subprocess.Popen([*quiet_shell, SSHD, "-D", "-e", "-f", str(config)],
                                      stderr=subprocess.DEVNULL))
        key = (tmp / f"host{n}.pub").read_text().split()
        known_lines.append(f"[{addr}]:{PORT} {key[0]} {key[1]}")
        addrs.append(addr)
    known = tmp / "known_hosts"
    known.write_text("\n".join(known_lines) + "\n")
    deadline = time.monotonic() + 30
    for addr in addrs:
        while True:
            try:
                socket.create_connection((addr, PORT), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    return addrs, client_key, known, procs


def transports(addrs: list[str], key: Path, known: Path) -> list[SshTransport]:
    ciphers = SshSettings().ciphers  # what the daemon uses
    return [SshTransport(SshTarget(host=a, port=PORT, user="root", key_files=(str(key),),
                                   known_hosts=known, global_known_hosts=None, ciphers=ciphers),
                         name=a)
            for a in addrs]


def bare_commands(settings: Settings) -> list[str]:
    """The commands a sweep runs on these hosts (no systemd here), as one plain sh line."""
    collector = Collector(LocalTransport(), settings)
    commands = collector.round_trip_commands(JournalQuery("cursor"))
    guards = collector.round_trip_guards(commands)
    files = [argv[2] for argv in commands if argv[0] == "cat"]
    ran = [shlex.join(argv) for argv in commands if argv[0] != "cat" and tuple(argv) not in guards]
    return ["sh", "-c", "; ".join([f"cat {shlex.join(files)} 2>/dev/null", *ran])]


async def project_sweeps(addrs, key, known, tmp: Path) -> tuple[float, float, float, float, int]:
    settings = Settings(ai_name="bench", state_dir=tmp / "state")
    store = IncidentStore(Database(settings.db_path))
    ts = transports(addrs, key, known)
    checkers = fleet_checkers(ts, settings, store)  # as the daemon has them
    started = time.monotonic()
    reports = await asyncio.gather(*(c.check("bench") for c in checkers))
    fresh = time.monotonic() - started
    started = time.monotonic()
    await asyncio.gather(*(c.check("bench") for c in checkers))
    reused = time.monotonic() - started
    # the same commands, bare: no framing, no timeouts, no parsing, no rules, no store
    started = time.monotonic()
    await asyncio.gather(*(t.run(bare_commands(settings)) for t in ts))
    bare = time.monotonic() - started
    await asyncio.gather(*(t.close() for t in ts))
    collected = sum(1 for r in reports if r.snapshot.load is not None)
    seq_ts = transports(addrs, key, known)
    seq = [HostChecker(t, settings, store, consumer="seq") for t in seq_ts]
    started = time.monotonic()
    for checker in seq:
        await checker.check("bench")
    sequential = time.monotonic() - started
    await asyncio.gather(*(t.close() for t in seq_ts))
    return fresh, reused, bare, sequential, collected


async def floor(addrs, key, known) -> float:
    async def one(addr: str) -> None:
        async with asyncssh.connect(addr, PORT, username="root", client_keys=[str(key)],
                                    known_hosts=str(known)) as conn:
            await conn.run("true", check=True)

    started = time.monotonic()
    await asyncio.gather(*(one(a) for a in addrs))
    return time.monotonic() - started


def ansible(addrs, key, known, tmp: Path, module: list[str]) -> float | None:
    binary = Path(os.sys.executable).parent / "ansible"
    if not binary.exists():
        print("ansible rows left out: no ansible here (pip install -c constraints.txt "
              "-e '.[bench]')")
        return None
    inventory = tmp / "inventory.ini"
    inventory.write_text("[all]\n" + "\n".join(
        f"{a} ansible_host={a} ansible_port={PORT} ansible_user=root "
        f"ansible_ssh_private_key_file={key} ansible_python_interpreter=/usr/bin/python3"
        for a in addrs) + "\n")
    env = {**os.environ, "ANSIBLE_SSH_ARGS": f"-o UserKnownHostsFile={known} "
           "-o StrictHostKeyChecking=yes -o ControlMaster=no",
           "ANSIBLE_LOCAL_TEMP": str(tmp / "ans-local"), "ANSIBLE_FORKS": "50"}
    started = time.monotonic()
    done = subprocess.run([str(binary), "all", "-i", str(inventory), "-f", "50", *module],
                          env=env, capture_output=True, text=True)
    took = time.monotonic() - started
    ok = done.stdout.count("SUCCESS") + done.stdout.count("CHANGED")
    if ok != len(addrs):
        print(f"  ansible {' '.join(module)}: only {ok}/{len(addrs)} hosts answered")
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--no-ansible", action="store_true",
                        help="leave the Ansible rows out (they take a minute)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        addrs, key, known, procs = start_fleet(tmp, args.hosts)
        try:
            floor_s = asyncio.run(floor(addrs, key, known))
            fresh, reused, bare, sequential, collected = asyncio.run(
                project_sweeps(addrs, key, known, tmp))
            command = setup = None
            if not args.no_ansible:
                command = ansible(addrs, key, known, tmp, ["-m", "command", "-a",
                                                           "cat /proc/loadavg"])
                setup = ansible(addrs, key, known, tmp, ["-m", "setup"])
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(10)
    n = len(addrs)
    print(f"{n} sshd hosts on 127.0.1.1-{n}; {collected}/{n} snapshots collected")
    print(f"floor (bare asyncssh, one trivial command, fresh connections): {floor_s:.2f} s")
    print(f"this project, full sweep, fresh connections: {fresh:.2f} s -> {fresh / floor_s:.2f}x "
          f"the floor (target <= 2x)")
    print(f"this project, second sweep, reused connections: {reused:.3f} s (target < 0.4 s)")
    print(f"  its floor: the same commands run bare over the same connections: {bare:.3f} s "
          f"-> {reused / bare:.2f}x")
    print(f"sequential sweep (host after host, fresh): {sequential:.2f} s -> concurrent is "
          f"{sequential / fresh:.1f}x faster")
    if command is not None:
        print(f"ansible -m command 'cat /proc/loadavg', forks 50: {command:.2f} s -> this project "
              f"is {command / fresh:.1f}x faster (target >= 10x)")
    if setup is not None:
        print(f"ansible -m setup, forks 50: {setup:.2f} s -> this project is "
              f"{setup / fresh:.1f}x faster")


if __name__ == "__main__":
    main()
