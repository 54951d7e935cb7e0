"""The Transport into a lab: every command runs through ``nsenter`` in all its namespaces.

This is how the project on the host collects from the lab, exactly as it would from any host:
``Collector(SandboxTransport(sandbox), settings).collect()``.
"""

from __future__ import annotations

from ..errors import LabError, TransportError
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
            # a collector treats a TransportError as "this section could not be collected"
            raise TransportError(f"{self.host}: {exc}") from exc
