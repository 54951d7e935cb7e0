"""``programs.*`` name executables on this machine (a NixOS daemon's store paths): a remote host
gets the bare names, for its checks, its tool reads and its fixes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.ssh import SshTransport
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.collector import Collector

from .conftest import Hosts

ONLY_HERE = {"df": "/nonexistent/store/bin/df", "ps": "/nonexistent/store/bin/ps",
             "readlink": "/nonexistent/store/bin/readlink"}


def test_a_remote_host_runs_the_bare_programs(ssh_hosts: Hosts, known_hosts: Path,
                                              tmp_path: Path) -> None:
    settings = Settings(ai_name="hal", state_dir=tmp_path, programs=ONLY_HERE)
    alpha = ssh_hosts.alpha
    remote = SshTransport(alpha.target(alpha.write_known_hosts(known_hosts)), name="alpha")
    local = LocalTransport("here")
    ctx = ToolContext(settings, {"alpha": remote, "here": local}, "alpha")

    async def go():
        try:
            far = await Collector(remote, settings).collect()
            near = await Collector(local, settings).collect()
            listing = await REGISTRY.call("run_readonly", {"argv": ["ps", "-p", "1"]}, ctx)
            here = await REGISTRY.call("run_readonly", {"argv": ["ps", "-p", "1"],
                                                        "host": "here"}, ctx)
            return far, near, listing, here
        finally:
            await remote.close()

    far, near, listing, here = asyncio.run(go())
    assert far.mounts and "mounts" not in far.errors and far.processes is not None
    assert "mounts" in near.errors  # this machine is told to use the (missing) configured df
    assert listing.status == "ok" and "PID" in listing.output
    assert here.status == "error" and "/nonexistent/store/bin/ps" in here.output
