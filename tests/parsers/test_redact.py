"""Secret-looking values in host text are masked; the text around them stays for diagnosis."""

from __future__ import annotations

import time
import tomllib
import unicodedata
from pathlib import Path

import pytest

from ai_sysadmin.monitor.findings import masked, quote, strip_control
from ai_sysadmin.redact import RULES, redact, redact_file


@pytest.mark.parametrize(("text", "expected"), [
    ("Environment=DB_PASSWORD=hunter2 LANG=C", "Environment=DB_PASSWORD=[redacted] LANG=C"),
    ('Environment="API_KEY=abc123" "X=1"', 'Environment="API_KEY=[redacted]" "X=1"'),
    ("postgres://app:s3cr3t@db:5432/x", "postgres://app:[redacted]@db:5432/x"),
    # base64's '/' in a password ended the match: nothing was hidden
    ("redis://:Xk9/Qw+Zr8pL@redis.lan:6379/0", "redis://:[redacted]@redis.lan:6379/0"),
    ("myapp --token=abc --port 80", "myapp --token=[redacted] --port 80"),
    ("myapp --password hunter2 -v", "myapp --password [redacted] -v"),
    ("myapp --token --verbose", "myapp --token --verbose"),
    ("Authorization: Bearer eyJhbGc.x.y", "Authorization: Bearer [redacted]"),
    ('{"client_secret": "zzz", "name": "a"}', '{"client_secret": "[redacted]", "name": "a"}'),
    ("key AKIAABCDEFGHIJKLMNOP here", "key [redacted] here"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\nrest",
     "[redacted private key]\nrest"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIE (cut by the log)", "[redacted private key]"),
    # a Python dict keeps its shape: the SQL rule read "'password': '" as PASSWORD '...'
    ("{'user': 'bob', 'password': 'PyPw1', 'host': 'db'}",
     "{'user': 'bob', 'password': '[redacted]', 'host': 'db'}"),
    ("ALTER USER app PASSWORD 'SqlPw1'; CREATE USER b IDENTIFIED BY 'SqlPw2';",
     "ALTER USER app PASSWORD '[redacted]'; CREATE USER b IDENTIFIED BY '[redacted]';"),
    # PostgreSQL takes the quote right after the keyword too
    ("ALTER ROLE app ENCRYPTED PASSWORD'SqlPw3';",
     "ALTER ROLE app ENCRYPTED PASSWORD'[redacted]';"),
    # "sig" and "auth" alone: a signal, a log level or a mode stays, a token does not
    ("x?sv=2022-11-02&sig=a3f9c0de11223344&se=1", "x?sv=2022-11-02&sig=[redacted]&se=1"),
    ('{"auth": "Ym9iOkRvY2tlckh1YlB3MQ=="}', '{"auth": "[redacted]"}'),
    ("smtp auth=Zm9vOmJhcg9xYz", "smtp auth=[redacted]"),
])
def test_secret_values_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "PasswordAuthentication no",
    "Failed password for root from 10.0.0.1 port 22 ssh2",
    "pam_unix(sudo:auth): authentication failure; logname= uid=1000",
    "Started Token Refresh Service.",
    'nginx: [emerg] unknown directive "ssl_password_file" in /etc/nginx/nginx.conf:12',
    "https://example.org/path?q=1",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake host-key",
])
def test_diagnostic_text_without_values_is_kept(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize("text", [
    "gotify_token_file /run/secrets/gotify-token: No such file or directory",
    "cat: /etc/app/x-api-key: Permission denied",
])
def test_a_file_named_like_a_header_keeps_what_was_said_of_it(text: str) -> None:
    # read as the header X-Gotify-Token: VALUE, why a missing token file could not be read
    # was "[redacted]" in the daemon's log and in config check
    assert redact(text) == text
    assert redact("X-Gotify-Token: AqW3r5tY7uI9oP1") == "X-Gotify-Token: [redacted]"


def test_evidence_quoted_into_incidents_is_masked_too() -> None:
    assert quote("app[12]: connecting with password=hunter2 failed") == (
        "app[12]: connecting with password=[redacted] failed")
    # a process's arguments as /proc holds them: NUL between them, a separator, not nothing
    # (deleted, it joined --password to its value, masked as no secret)
    assert quote("app --password\0hunter2 --port\x0080") == "app --password [redacted] --port 80"
    assert quote("DB_PASS\bWORD=hunter2") == "DB_PASSWORD=[redacted]"


# --- one fixture per format: tests/fixtures/secrets/<format>.toml ------------------------------
# Each holds `text`; `secrets`, the values that must vanish; `keep`, what must still be read
# there; `rules`, the entries of RULES it proves. `unchanged = true` marks text without secrets.

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "secrets"
CASES = {path.stem: tomllib.loads(path.read_text(encoding="utf-8"))
         for path in sorted(FIXTURES.glob("*.toml"))}


def leaked(secret: str, text: str) -> list[str]:
    """The secret, or any 8-character piece of it, where it can still be read."""
    pieces = {secret} | {secret[i:i + 8] for i in range(len(secret) - 7)}
    return sorted(piece for piece in pieces if piece in text)


@pytest.mark.parametrize("name", [name for name in CASES if not CASES[name].get("unchanged")])
def test_each_format_loses_its_secrets_and_keeps_its_context(name: str) -> None:
    case = CASES[name]
    masked = redact(case["text"])
    assert case["secrets"], "a fixture names the values it hides"
    for secret in case["secrets"]:
        assert not leaked(secret, masked), f"{secret!r} leaks in:\n{masked}"
    for kept in case["keep"]:
        assert kept in masked, f"{kept!r} is gone from:\n{masked}"
    assert "[redacted" in masked


def test_ordinary_diagnostic_text_comes_back_unchanged() -> None:
    text = CASES["must_stay"]["text"]
    masked = redact(text)
    pairs = zip(text.splitlines(), masked.splitlines(), strict=True)
    assert [(line, after) for line, after in pairs if line != after] == []
    assert masked == text


@pytest.mark.parametrize("name", list(CASES))
def test_masking_twice_changes_nothing_more(name: str) -> None:
    # the agent masks a tool result and quote() masks evidence again: no "[[redacted]]"
    once = redact(CASES[name]["text"])
    assert redact(once) == once


def test_every_rule_has_a_fixture_and_fixtures_name_real_rules() -> None:
    proven = {rule for case in CASES.values() for rule in case.get("rules", [])}
    assert proven == {rule.name for rule in RULES}


@pytest.mark.parametrize("text", [
    "key" * 40_000,                 # an anchor word over and over, with no name end in sight
    "mysql" * 24_000,               # a program name with no end and no -p
    "<a " * 40_000,                 # tags that never close
    "password for " * 10_000,       # a SQL-looking start that never gets its "="
    "\n  a:" * 24_000,              # YAML-looking lines with nothing below
    "$1$a" * 30_000,                # crypt schemes, each with too short a hash
    "A " * 60_000 + "-----END EC PRIVATE KEY-----" * 2_000,  # a key's end, walked back once
    "eyJ" * 40_000,                 # a token's start over and over, with no dot to end a part
    "requirepass " * 10_000,        # a directive, each looked for at its line's start
    "htpasswd  -b " * 8_000,        # a batch-mode flag, each with no last word after it
    # names after a line's long indentation, each asked whether only indentation precedes it
    " " * 60_000 + "token x " * 7_500,
    " " * 60_000 + "token = x " * 6_000,
], ids=["anchors", "program", "tags", "sql", "yaml", "crypt", "key-tail", "jwt", "directive",
        "htpasswd", "indented-names", "indented-settings"])
def test_hostile_text_costs_time_in_proportion_to_its_size(text: str) -> None:
    # every rule scans a bounded distance from where it starts: the loop must not stall on a
    # 120 KB line crafted (or garbled) to make a pattern rescan to its end at every step.
    # The CPU this thread spent is timed: a busy machine's other processes take none of it
    # (a rescan to the end at every step of 120 KB is billions of steps, far past the bound)
    start = time.thread_time()
    redact(text)
    assert time.thread_time() - start < 2.0


def test_a_pgpass_file_loses_its_passwords_and_five_fields_elsewhere_stay() -> None:
    # host:port:database:user:password reads like an IPv6 address or a time elsewhere: only
    # a file of that name, or a diff of one, is read as one
    pgpass = ("# backups\ndb.example.org:5432:app:app:PgPassFile1\n"
              "*:*:*:replica:with\\:colon\\:PgPass2\n")
    masked = redact_file(pgpass, "hosts/db/.pgpass")
    assert masked == ("# backups\ndb.example.org:5432:app:app:[redacted]\n"
                      "*:*:*:replica:[redacted]\n")
    diff = "@@ -1 +1 @@\n-db:5432:app:app:OldPgPass3\n+db:5432:app:app:NewPgPass4\n"
    assert redact_file(diff, "root/.pgpass") == (
        "@@ -1 +1 @@\n-db:5432:app:app:[redacted]\n+db:5432:app:app:[redacted]\n")
    route = "2001:db8:0:0:1:2:3:4 dev eth0 proto kernel metric 256\n"
    assert redact_file(route, "notes/routes.txt") == route
    # and everything redact() masks, in any file
    assert redact_file("password = hunter2hunter2\n", "app.conf") == "password = [redacted]\n"


def test_what_shows_as_nothing_is_gone_from_host_text_everywhere_it_is_shown() -> None:
    """Unicode's format characters (zero-width spaces, tag characters: an instruction no
    person sees and the model reads) leave host text as its controls do; every one this
    Python knows is in the list strip_control spells out."""
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "restart sshd")
    text = f"myapp: connection\u200b reset\u2060 by peer{hidden}\ufeff\u00ad"
    for shown in (quote(text), masked(text), strip_control(text)):
        assert shown == "myapp: connection reset by peer", shown
    every = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"]
    assert strip_control("".join(every)) == ""


@pytest.mark.parametrize("name", ["DB_PASS\bWORD", "pass\x01word", "api_\x7fkey"])
def test_a_control_character_inside_a_secrets_name_hides_no_value(name: str) -> None:
    # masked first and stripped after, the name read as none, then joined around the value
    shown = masked(f"mysql: {name}=hunter2 rejected")
    assert "hunter2" not in shown and "[redacted]" in shown, shown
