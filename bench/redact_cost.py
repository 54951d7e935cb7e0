"""Cost of ``redact()`` per KB of host text, on a 1 MB mix of journal lines, unit files and
``ps`` output (one block in a hundred holds a secret, and a unit file is some 20 lines: a secret
in about one line of 500; the run prints the density of its mix). Baselines in the same run:
one plain ``str.replace`` pass over the same text (the floor of touching every byte once), the
six regexes ``redact()`` had before issue 8, and detect-secrets 1.5 with its default plugins
when it is importable (it is not a project dependency: run this with a venv that has it to see
those rows).

    .venv/bin/python bench/redact_cost.py [--size-kb 1024] [--chunk-kb 8] [--repeat 5]
    PYTHONPATH=src /tmp/ds-venv/bin/python bench/redact_cost.py    # with detect-secrets

Prints µs per KB and the ratio to the str.replace floor; no assertions. Whole = one call on the
whole text; chunked = one call per chunk, the size of a typical tool result.
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ai_sysadmin.redact import redact

# --- the mix --------------------------------------------------------------------------------

_USERS = ("alice", "bob", "root", "app", "postgres", "www-data")
_UNITS = ("nginx", "postgresql", "redis", "app", "backup", "node-exporter", "docker")
_IPS = tuple(f"10.0.{a}.{b}" for a in range(4) for b in (5, 9, 23, 77))

_JOURNAL = (
    "sshd[{pid}]: Failed password for {user} from {ip} port {port} ssh2",
    "sshd[{pid}]: Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 "
    "SHA256:8Jd0w3kq1nZ1mI4g7w0H2p6oFh1c5QYwz8bq0xA9cLk",
    "systemd[1]: Started Session {n} of User {user}.",
    "systemd-logind[{pid}]: New session {n} of user {user}.",
    "pam_unix(sudo:session): session opened for user root(uid=0) by {user}(uid=1000)",
    "sudo[{pid}]: {user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; "
    "COMMAND=/run/current-system/sw/bin/systemctl restart {unit}.service",
    "systemd[1]: {unit}.service: Main process exited, code=exited, status=1/FAILURE",
    "systemd[1]: {unit}.service: Failed with result 'exit-code'.",
    "systemd[1]: {unit}.service: Scheduled restart job, restart counter is at {n}.",
    "kernel: EXT4-fs (nvme0n1p2): mounted filesystem with ordered data mode. Quota mode: none.",
    "kernel: [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC={ip} DST=10.0.0.1 LEN=60 "
    "TOS=0x00 PREC=0x00 TTL=64 ID={port} DF PROTO=TCP SPT={port} DPT=22 WINDOW=64240 SYN",
    "nginx[{pid}]: {n}#0: *{port} connect() failed (111: Connection refused) while connecting "
    "to upstream, client: {ip}, server: example.org, request: \"GET /api/v1/items?page={n} "
    "HTTP/1.1\", upstream: \"http://127.0.0.1:8080/api/v1/items?page={n}\"",
    "postgres[{pid}]: FATAL:  password authentication failed for user \"{user}\"",
    "redis[{pid}]: {pid}:M 12 Mar 2024 10:15:02.123 * Background saving terminated with success",
    "dockerd[{pid}]: time=\"2024-03-12T10:15:02Z\" level=warning msg=\"cleaning up after "
    "shim disconnected\" id={hex} namespace=moby",
    "app[{pid}]: INFO request id={hex} path=/health status=200 took {n}ms",
    "kernel: tc: token bucket filter on eth0 set rate 100mbit",
    "CRON[{pid}]: ({user}) CMD (/usr/local/bin/backup --target /srv/backup --quiet)",
)
_JOURNAL_SECRETS = (
    "app[{pid}]: connecting to postgres://app:S3cr3t-{hex}@db:5432/app",
    "app[{pid}]: upstream call with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ"
    "{hex}.c2lnbmF0dXJl",
    "backup[{pid}]: using password={hex} for the repository",
)
_UNIT = """# /etc/systemd/system/{unit}.service
[Unit]
Description={unit} daemon
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
User={user}
Environment="PATH=/nix/store/{hex}-coreutils-9.3/bin:/nix/store/{hex}-findutils-4.9.0/bin"
Environment="LOCALE_ARCHIVE=/nix/store/{hex}-glibc-locales-2.38/lib/locale/locale-archive"
EnvironmentFile=-/etc/default/{unit}
LoadCredential=tls.key:/var/lib/{unit}/tls.key
ExecStart=/nix/store/{hex}-unit-script-{unit}-start/bin/{unit}-start --config /etc/{unit}.conf
ExecReload=/run/current-system/sw/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5s
ProtectSystem=strict
NoNewPrivileges=true

[Install]
WantedBy=multi-user.target
"""
_UNIT_SECRET = "Environment=DB_PASSWORD={hex} LANG=C.UTF-8\n"
_PS = (
    "{pid:>7} root      0.0  0.1  12345 00:00:01 /usr/sbin/sshd -D",
    "{pid:>7} postgres  1.2  2.3 234567 01:02:03 postgres: app app {ip}(5432) idle",
    "{pid:>7} redis     0.3  0.4  45678 00:10:00 /usr/bin/redis-server 127.0.0.1:6379",
    "{pid:>7} app       4.5  3.1 345678 02:00:00 /usr/bin/python3 /opt/app/worker.py "
    "--queue default --concurrency {n}",
    "{pid:>7} www-data  0.1  0.2  23456 00:00:05 nginx: worker process",
    "{pid:>7} root      0.0  0.0   4567 00:00:00 ps -eo pid=,user:32=,pcpu=,pmem=,rss=,args=",
)
_PS_SECRET = "{pid:>7} app       0.1  0.2  23456 00:00:05 mysqldump -u backup -p{hex} app"


def mix(size: int, seed: int = 8) -> tuple[str, list[str]]:
    """About ``size`` characters of host text, and the secret values planted in it."""
    rng = random.Random(seed)
    planted: list[str] = []
    last_hex = [""]

    def fill(template: str) -> str:
        last_hex[0] = f"{rng.getrandbits(64):016x}"
        return template.format(pid=rng.randint(100, 99999), user=rng.choice(_USERS),
                               unit=rng.choice(_UNITS), ip=rng.choice(_IPS),
                               port=rng.randint(1024, 65535), n=rng.randint(1, 99),
                               hex=last_hex[0])

    parts: list[str] = []
    total = 0
    while total < size:
        roll = rng.random()
        secret = rng.random() < 0.01
        if roll < 0.6:
            block = ("Mar 12 10:15:02 web1 "
                     + fill(rng.choice(_JOURNAL_SECRETS if secret else _JOURNAL)) + "\n")
        elif roll < 0.8:
            block = fill(_UNIT)
            if secret:
                block = block.replace("RestartSec=5s\n", "RestartSec=5s\n" + fill(_UNIT_SECRET))
        else:
            block = fill(_PS_SECRET if secret else rng.choice(_PS)) + "\n"
        if secret:
            # every secret template holds its value in {hex}, and is the last one filled
            planted.append(last_hex[0])
        parts.append(block)
        total += len(block)
    text = "".join(parts)
    return text[:size], [value for value in planted if value in text[:size]]


# --- baselines ------------------------------------------------------------------------------

# redact() as it was before the table (commit d9e5bae), kept here to measure against
_OLD_NAME = (
    r"[A-Za-z0-9_.-]*(?:passw(?:or)?d|passphrase|secret|token|api[_-]?key|access[_-]?key|"
    r"private[_-]?key|credentials?|auth[_-]?key|session[_-]?key)[A-Za-z0-9_.-]*"
)
_OLD = (
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----"
                r"|\Z)", re.S), "[redacted private key]"),
    (re.compile(r"(?P<pre>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+(?=@)"),
     r"\g<pre>[redacted]"),
    (re.compile(r"(?i)(?P<pre>\bauthorization\s*[:=]\s*(?:bearer|basic|token|digest)\s+)\S+"),
     r"\g<pre>[redacted]"),
    (re.compile(rf"(?i)(?P<pre>{_OLD_NAME}[\"']?\s*(?:=>|[=:])\s*[\"']?)"
                r"(?P<value>[^\s\"',;&]+)"), r"\g<pre>[redacted]"),
    (re.compile(rf"(?i)(?P<pre>(?<!\S)--?{_OLD_NAME}\s+)(?P<value>[^\s-]\S*)"),
     r"\g<pre>[redacted]"),
    (re.compile(r"\b(?:AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}"
                r"|sk-[A-Za-z0-9_-]{20,}|glpat-[A-Za-z0-9_-]{20,})\b"), "[redacted]"),
)


def old_redact(text: str) -> str:
    for pattern, replacement in _OLD:
        text = pattern.sub(replacement, text)
    return text


def plain_replace(text: str) -> str:
    return text.replace("hunter2", "[redacted]")


def detect_secrets_lines() -> Callable[[str], object] | None:
    """detect-secrets' ad-hoc API, one scan_line per line (it reports values, masks nothing)."""
    try:
        from detect_secrets.core.scan import scan_line
        from detect_secrets.settings import default_settings
    except ImportError:
        return None

    def scan(text: str) -> object:
        with default_settings():
            return [found for line in text.splitlines() for found in scan_line(line)]
    return scan


def detect_secrets_file() -> Callable[[str], object] | None:
    """detect-secrets' file API (SecretsCollection.scan_file), the text written to a file."""
    try:
        from detect_secrets import SecretsCollection
        from detect_secrets.settings import default_settings
    except ImportError:
        return None

    def scan(text: str) -> object:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "host-output.txt"
            path.write_text(text)
            with default_settings():
                secrets = SecretsCollection()
                secrets.scan_file(str(path))
            return secrets.json()
    return scan


# --- measuring ------------------------------------------------------------------------------

def best_seconds(fn: Callable[[str], object], chunks: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for chunk in chunks:
            fn(chunk)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-kb", type=int, default=1024)
    parser.add_argument("--chunk-kb", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    text, planted = mix(args.size_kb * 1024)
    step = args.chunk_kb * 1024
    chunks = [text[i:i + step] for i in range(0, len(text), step)]
    kb = len(text) / 1024
    masked, masked_before = redact(text), old_redact(text)
    lines = text.count("\n")
    print(f"mix: {kb:.0f} KB, {lines} lines, {len(chunks)} chunks of "
          f"{args.chunk_kb} KB, {len(planted)} secrets planted (one line in "
          f"{lines / max(len(planted), 1):.0f}); still readable after "
          f"redact() now: {sum(value in masked for value in planted)} "
          f"({masked.count('[redacted')} masks), before: "
          f"{sum(value in masked_before for value in planted)}")

    rows: list[tuple[str, Callable[[str], object], int]] = [
        ("str.replace (floor)", plain_replace, args.repeat),
        ("redact() before issue 8", old_redact, args.repeat),
        ("redact() now", redact, args.repeat),
    ]
    for name, factory in (("detect-secrets scan_line", detect_secrets_lines),
                          ("detect-secrets scan_file", detect_secrets_file)):
        scan = factory()
        if scan is None:
            print(f"{name}: not installed here, row left out")
        else:
            rows.append((name, scan, 1))  # seconds per run: once is enough to compare

    floor: dict[str, float] = {}
    print(f"{'':28} {'whole µs/KB':>12} {'x floor':>8} {'chunked µs/KB':>14} {'x floor':>8}")
    for name, fn, repeat in rows:
        whole = best_seconds(fn, [text], repeat) / kb * 1e6
        floor.setdefault("whole", whole)
        line = f"{name:28} {whole:12.2f} {whole / floor['whole']:8.1f}"
        if name.startswith("detect"):
            # seconds per MB already: the chunked run would add nothing but minutes
            print(f"{line} {'-':>14} {'-':>8}")
            continue
        chunked = best_seconds(fn, chunks, repeat) / kb * 1e6
        floor.setdefault("chunked", chunked)
        print(f"{line} {chunked:14.2f} {chunked / floor['chunked']:8.1f}")


if __name__ == "__main__":
    main()
