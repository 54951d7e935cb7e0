"""What tools may use during one conversation: hosts, settings, the incident, saved outputs."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from ..config import Programs, Settings
from ..hosts.reader import ReaderTransport
from ..hosts.transport import Transport
from ..store import IncidentStore
from .recall import KnowledgeSource


@dataclass
class OutputBuffer:
    """Full tool outputs kept for ``read_more`` when the model only saw the start."""

    _items: dict[str, str] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def keep(self, text: str) -> str:
        handle = f"out{next(self._ids)}"
        self._items[handle] = text
        return handle

    def get(self, handle: str) -> str | None:
        return self._items.get(handle)


@dataclass
class ToolContext:
    settings: Settings
    transports: dict[str, Transport]
    default_host: str
    store: IncidentStore | None = None
    incident_id: int | None = None
    outputs: OutputBuffer = field(default_factory=OutputBuffer)
    proposals: list[dict[str, Any]] = field(default_factory=list)
    #: why each propose_action call that recorded nothing was turned down (the program's
    #: words): an investigation that ends with none says why, not only that it proposed none
    refused_proposals: list[str] = field(default_factory=list)
    #: past incidents, knowledge, config history (wired by the orchestrator; None: none)
    knowledge: KnowledgeSource | None = None
    #: what the investigation recalled at its start, shown with the incident's evidence
    recalled: str = ""
    #: a conversation with a person (``approve discuss``): what the model proposes here is
    #: never decided, even while the incident is being investigated
    advisory: bool = False

    _readers: dict[str, ReaderTransport] = field(default_factory=dict)

    def cleared(self) -> None:
        """The conversation begins again (chat's ``/clear``): what the old one proposed and
        kept for ``read_more`` went with it. Kept, a fix asked for again was refused as
        proposed already, in a conversation that holds no such proposal."""
        self.proposals, self.refused_proposals = [], []  # new lists: an outcome keeps its own
        self.outputs = OutputBuffer()

    def mark(self) -> tuple[int, int]:
        """Where the proposals stand before a turn: what :meth:`back_to` returns to."""
        return len(self.proposals), len(self.refused_proposals)

    def back_to(self, mark: tuple[int, int]) -> None:
        """A turn that never entered the conversation (withdrawn with Ctrl-C, failed with the
        server's error) leaves no proposal behind: kept, the same fix asked for again was
        refused as "the person has it already", advice nobody saw and no message holds."""
        proposed, refused = mark
        # new lists: an outcome keeps its own
        self.proposals = self.proposals[:proposed]
        self.refused_proposals = self.refused_proposals[:refused]

    def hosts_are(self, transports: dict[str, Transport]) -> None:
        """The managed hosts as they are now (a conversation stays open while hosts are
        removed and added): a reader built on a transport since let go or renewed goes with
        it, or the model would read the removed machine under the new one's name."""
        self.transports = transports
        self._readers = {host: reader for host, reader in self._readers.items()
                         if transports.get(host) is reader.inner}

    def transport(self, host: str | None) -> Transport | None:
        # "" and None both mean the default host
        return self.transports.get(host or self.default_host)

    def reader(self, host: str | None) -> Transport | None:
        """The host's transport as the unprivileged reading identity: every read for the
        model goes through it, so what that identity cannot read never reaches the model."""
        transport = self.transport(host)
        if transport is None or isinstance(transport, ReaderTransport):
            return transport
        key = host or self.default_host
        if key not in self._readers:
            s, programs = self.settings, self.programs(host)
            self._readers[key] = ReaderTransport(
                transport, s.safety.reader_user, s.safety.reader_groups,
                programs.setpriv, programs.getent)
        return self._readers[key]

    def programs(self, host: str | None) -> Programs:
        """The executables to run on this host (bare names on a remote one)."""
        transport = self.transport(host)
        local = transport.local_programs if transport is not None else True
        return self.settings.on_host(local).programs

    @property
    def own_secrets(self) -> list[str]:
        return [str(p) for p in self.settings.secret_files]
