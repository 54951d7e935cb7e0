"""check_reachability of the fault lab (as `eval` offers it to the model): the lab has a
network of its own, so a port is reachable when the lab listens on it, not when this machine
does."""

from __future__ import annotations

import asyncio
import socket

import pytest

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from tests.support.polling import poll_until

pytestmark = pytest.mark.lab
LAB_PORT = 8081


def call(ctx: ToolContext, name: str, **args: object):
    return asyncio.run(REGISTRY.call(name, dict(args), ctx))


def _listens(sb: Sandbox, port: int) -> bool:
    return bool(sb.exec(["ss", "-Hltn", f"sport = :{port}"]).stdout.strip())


def test_a_port_is_reachable_where_the_lab_listens_not_where_this_machine_does(
        tmp_path) -> None:
    with Sandbox() as sb:
        sb.exec(["systemd-run", "--unit=web", "/usr/bin/python3", "-m", "http.server",
                 "--bind", "127.0.0.1", str(LAB_PORT)], check=True)
        poll_until(lambda: _listens(sb, LAB_PORT), 30, "the lab's web server to listen")
        ctx = ToolContext(Settings(ai_name="labtest", state_dir=tmp_path),
                          {sb.hostname: SandboxTransport(sb)}, sb.hostname)
        with socket.create_server(("127.0.0.1", 0)) as here:  # this machine's only
            host_port = here.getsockname()[1]
            assert not _listens(sb, host_port)
            in_lab = call(ctx, "check_reachability", host=sb.hostname, port=LAB_PORT)
            host_only = call(ctx, "check_reachability", host=sb.hostname, port=host_port)
        assert in_lab.status == "ok"
        assert f"{sb.hostname}:{LAB_PORT} accepts TCP connections" in in_lab.output
        assert host_only.status == "ok"
        assert f"{sb.hostname}:{host_port} is NOT reachable over TCP" in host_only.output

        # a lab without ping (the copy of this machine's root, ping taken out): no verdict
        for where in ("/usr/bin/ping", "/bin/ping"):
            sb.exec(["rm", "-f", where])
        pinged = call(ctx, "check_reachability", host=sb.hostname)
        assert pinged.status == "error", pinged.output
        assert "ping could not run" in pinged.output and "NOT" not in pinged.output

        # a lab powered off from inside is not probed at all, nor this machine in its place
        sb.exec(["systemctl", "poweroff"])
        poll_until(lambda: not sb.running, 30, "the lab to power off")
        down = call(ctx, "check_reachability", host=sb.hostname, port=LAB_PORT)
        assert down.status == "error" and "the lab is down" in down.output
