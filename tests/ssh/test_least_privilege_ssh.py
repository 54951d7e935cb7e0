"""Over SSH as root, the model's reads still run as nobody with the log groups (issue 8,
class 9): the remote side drops privileges with setpriv before every read."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.ssh import SshTransport

from .conftest import LabHost


def test_reads_over_ssh_as_root_run_as_the_reading_identity(
    lab_host: LabHost, known_hosts: Path, tmp_path: Path
) -> None:
    sb = lab_host.sandbox
    sb.exec(["mkdir", "-p", "/srv/app"], check=True)
    sb.write_file("/srv/app/token", "remote-only-root-token-31337\n", 0o600)
    sb.write_file("/srv/app/README", "plain notes\n", 0o644)
    transport = SshTransport(lab_host.ssh.target(lab_host.ssh.write_known_hosts(known_hosts)),
                             name="sshlab")
    ctx = ToolContext(Settings(ai_name="hal", state_dir=tmp_path), {"sshlab": transport},
                      "sshlab")

    async def go() -> tuple[str, str, str]:
        try:
            who = await REGISTRY.call("run_readonly", {"argv": ["id", "-un"]}, ctx)
            secret = await REGISTRY.call("read_file", {"path": "/srv/app/token"}, ctx)
            plain = await REGISTRY.call("read_file", {"path": "/srv/app/README"}, ctx)
            return who.output, secret.output, plain.output
        finally:
            await transport.close()

    who, secret, plain = asyncio.run(go())
    assert who.strip() == "nobody"
    assert "remote-only-root-token" not in secret and "Permission denied" in secret
    assert plain == "plain notes\n"
