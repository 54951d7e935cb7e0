"""What the agent may ask of the knowledge base, without importing it (it is a later layer):
the orchestrator hands a :class:`KnowledgeSource` to the tool context."""

from __future__ import annotations

from typing import Protocol

from ..store import Incident


class KnowledgeSource(Protocol):
    """Past incidents, knowledge and the config repository, as text for the model. Every
    item is labelled with where it came from and whether it may guide an automatic action."""

    @property
    def searchable(self) -> bool:
        """Whether :meth:`search` can find anything: False where the knowledge base is off."""
        ...

    @property
    def config_history(self) -> bool:
        """Whether a config repository is there for :meth:`config_changes` to read."""
        ...

    async def search(self, query: str, incident: Incident | None = None) -> str:
        """Knowledge and past incidents matching ``query`` (or, when it is empty, the
        incident's symptoms), best first; "" when nothing is relevant."""
        ...

    async def config_changes(self, unit: str, failed_at: float | None = None) -> str:
        """The recent commits of the config repository that touched what ``unit`` is built
        from, newest first, dated against ``failed_at`` when given; "" when there are none
        or no repository is configured."""
        ...

    async def open(self) -> None:
        """Start opening the store (a daemon's start), so that the first investigation finds
        it ready; returns at once."""
        ...

    async def recall(self, incident: Incident) -> str:
        """What an investigation starts with: the most similar past incidents, the relevant
        knowledge and the unit's recent config changes; "" when there is nothing (or the
        store is not open yet: an investigation never waits for it)."""
        ...
