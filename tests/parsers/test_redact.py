"""Secret-looking values in host text are masked; the text around them stays for diagnosis."""

from __future__ import annotations

import pytest

from ai_sysadmin.monitor.findings import quote
from ai_sysadmin.monitor.redact import redact


@pytest.mark.parametrize(("text", "expected"), [
    ("Environment=DB_PASSWORD=hunter2 LANG=C", "Environment=DB_PASSWORD=[redacted] LANG=C"),
    ('Environment="API_KEY=abc123" "X=1"', 'Environment="API_KEY=[redacted]" "X=1"'),
    ("postgres://app:s3cr3t@db:5432/x", "postgres://app:[redacted]@db:5432/x"),
    ("myapp --token=abc --port 80", "myapp --token=[redacted] --port 80"),
    ("myapp --password hunter2 -v", "myapp --password [redacted] -v"),
    ("myapp --token --verbose", "myapp --token --verbose"),
    ("Authorization: Bearer eyJhbGc.x.y", "Authorization: Bearer [redacted]"),
    ('{"client_secret": "zzz", "name": "a"}', '{"client_secret": "[redacted]", "name": "a"}'),
    ("key AKIAABCDEFGHIJKLMNOP here", "key [redacted] here"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\nrest",
     "[redacted private key]\nrest"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIE (cut by the log)", "[redacted private key]"),
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


def test_evidence_quoted_into_incidents_is_masked_too() -> None:
    assert quote("app[12]: connecting with password=hunter2 failed") == (
        "app[12]: connecting with password=[redacted] failed")
