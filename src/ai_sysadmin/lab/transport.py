"""The Transport into a lab: every command runs through ``nsenter`` in all its namespaces.

This is how the project on the host collects from the lab, exactly as it would from any host:
``Collector(SandboxTransport(sandbox), settings).collect()``.
"""

from __future__ import annotations

import asyncio

from ..aio import within
from ..errors import LabError, NotStarted, TransportError
from ..hosts.transport import Transport
from .sandbox import Sandbox


class SandboxTransport(Transport):
    """Run commands inside a started :class:`Sandbox`; ``read_file`` is ``cat`` in there."""

    #: nsenter runs everything as root in the lab
    runs_as_root = True

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.host = sandbox.hostname

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        try:
            return self.sandbox.nsenter_argv(argv)
        except LabError as exc:
            # a collector treats a TransportError as "this section could not be collected";
            # nothing was started
            raise NotStarted(f"{self.host}: {exc}") from exc

    async def connect_tcp(self, address: str, port: int, timeout: float) -> None:
        # the lab's network is a namespace of its own: its 127.0.0.1 is not this machine's
        try:
            sock = self.sandbox.socket()
        except LabError as exc:
            raise TransportError(f"{self.host}: {exc}") from exc
        with sock:
            sock.setblocking(False)
            await within(asyncio.get_running_loop().sock_connect(sock, (address, port)),
                         timeout)

    def pinger(self) -> Transport:
        return self
