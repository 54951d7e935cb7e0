"""The model reads as an unprivileged identity (issue 8, class 9): on a host reached as root, its
reads run as nobody with only the log-reading groups, so a secret the path deny-list does not
know stays unreadable by the operating system's permissions; logs stay readable."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport

pytestmark = pytest.mark.lab
HOST = "readlab"

#: secrets under names and in places no deny-list names, each readable by root only
UNLISTED_SECRETS = {
    "/etc/credstore/db-password": "credstore-s3cr3t-1",
    "/var/backups/shadow.bak": "root:$6$backupHASH:19000:0:99999:7:::",
    "/etc/kubernetes/admin.conf": "client-key-data: LS0tLS1CRUdJTkVYQU1QTEU=",
    "/var/lib/registry/auth.json": '{"auths": {"r.example": {"auth": "dXNlcjpwYXNz"}}}',
    "/run/myapp-secrets/api": "myapp-api-credential-77",
    "/root/.config/rclone/rclone.conf": "pass = rclone-secret-value-9",
    "/etc/app/keystore.p12": "PKCS12-BINARY-LIKE-CONTENT-42",
}


@pytest.fixture(scope="module")
def lab() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        for path, text in UNLISTED_SECRETS.items():
            sb.exec(["mkdir", "-p", path.rsplit("/", 1)[0]], check=True)
            sb.write_file(path, text + "\n", 0o600)
        sb.exec(["mkdir", "-p", "/var/log/webapp"], check=True)
        sb.write_file("/var/log/webapp/error.log", "upstream timed out (110)\n", 0o640)
        sb.exec(["chgrp", "adm", "/var/log/webapp/error.log"], check=True)
        sb.write_file("/etc/webapp.conf", "listen 8080\n", 0o644)
        sb.exec(["systemd-run", "--unit=noisy", "/bin/sh", "-c",
                 "echo '<3>noisy unit message 4711' >&2"], check=True)
        yield sb


@pytest.fixture
def ctx(lab: Sandbox, tmp_path) -> ToolContext:
    settings = Settings(ai_name="labtest", state_dir=tmp_path)
    return ToolContext(settings, {HOST: SandboxTransport(lab)}, HOST)


def call(ctx: ToolContext, name: str, **args: object):
    return asyncio.run(REGISTRY.call(name, dict(args), ctx))


def test_reads_run_as_nobody_with_the_log_groups_only(ctx) -> None:
    who = call(ctx, "run_readonly", argv=["id"])
    assert who.status == "ok", who.output
    assert "uid=65534" in who.output and "euid" not in who.output
    assert "adm" in who.output and "systemd-journal" in who.output
    assert "(root)" not in who.output


@pytest.mark.parametrize("path", sorted(UNLISTED_SECRETS))
def test_a_secret_no_list_knows_is_closed_by_permissions(ctx, path) -> None:
    result = call(ctx, "read_file", path=path)
    assert result.status in ("error", "refused"), result.output
    assert UNLISTED_SECRETS[path] not in result.output
    assert "Permission denied" in result.output or "cannot reach" in result.output


def test_logs_and_world_readable_files_stay_readable(ctx) -> None:
    log = call(ctx, "read_file", path="/var/log/webapp/error.log")
    assert log.status == "ok" and "upstream timed out" in log.output
    assert "listen 8080" in call(ctx, "read_file", path="/etc/webapp.conf").output
    journal = call(ctx, "journal", unit="noisy.service", since="today")
    assert "noisy unit message 4711" in journal.output, journal.output


def test_root_is_named_for_metadata_diagnostics_only(ctx) -> None:
    # listing root's home is the reader's business: refused by the operating system
    listing = call(ctx, "run_readonly", argv=["ls", "-la", "/root/.config"])
    assert listing.status == "error" and "Permission denied" in listing.output
    # its size is metadata, read as root (du is on the named list)
    size = call(ctx, "run_readonly", argv=["du", "-s", "/root/.config"])
    assert size.status == "ok" and "/root/.config" in size.output
    assert "rclone-secret" not in size.output
