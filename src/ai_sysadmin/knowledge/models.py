"""What the knowledge base holds: plain, validated records with no ChromaDB in them.

- :class:`KnowledgeEntry`: one piece of operational wisdom (``topic``, ``text``, ``category``,
  ``confidence`` 0..1, ``provenance`` seed | operator | learned, ``verified``, ``source``
  such as ``incident:42``, ``tags``).
- :class:`IncidentRecord`: symptoms -> diagnosis -> actions -> outcome (verified | failed |
  escalated) of one resolved or given-up incident.
- :class:`SystemProfile`: what is known about one host (OS, role, facts).
- :class:`ConfigChunk`: a slice of a file of the config repository (path, lines, commit, and
  which repository and branch: ``repo``, a digest).
- :class:`Hit`: one search result: the record and its cosine distance (0 = same meaning,
  2 = opposite); ``score`` is ``1 - distance``.

Every record turns into (id, document, metadata) for ChromaDB and back; metadata holds only
scalars, so lists and mappings travel as JSON text.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

Provenance = Literal["seed", "operator", "learned"]
Outcome = Literal["verified", "failed", "escalated"]
PROVENANCES: tuple[Provenance, ...] = ("seed", "operator", "learned")
OUTCOMES: tuple[Outcome, ...] = ("verified", "failed", "escalated")

#: what an id may be: it is shown in tables, typed on command lines, and used as ChromaDB's id
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
MAX_TEXT = 20_000
#: a topic is one line of a table
TOPIC_LENGTH = 200
#: the last second of the year 9999: a time past it (1e400, Infinity from an import file) is
#: no date, and every `knowledge list` and recall that dated it failed
LAST_TIME = 253_402_300_799.0


def _time(default_factory: Any) -> Any:
    """A time in seconds since the epoch, within what a date can show."""
    return Field(default_factory=default_factory, ge=0, le=LAST_TIME, allow_inf_nan=False)


def new_id(prefix: str) -> str:
    """A short random id (``op-3f9a1c2b7d4e``): unique enough for one knowledge base."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KnowledgeEntry(_Record):
    """One piece of operational wisdom."""

    id: str = Field(default_factory=lambda: new_id("k"), pattern=ID_PATTERN)
    topic: str = Field(min_length=1, max_length=TOPIC_LENGTH)
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    category: str = Field("general", min_length=1, max_length=64)
    confidence: float = Field(0.5, ge=0, le=1)
    provenance: Provenance = "operator"
    #: learned from a fix that was verified (its finding went away and stayed away)
    verified: bool = False
    created_at: float = _time(time.time)
    #: where it came from: ``seed``, ``operator``, ``incident:42`` ...
    source: str | None = Field(None, max_length=200)
    tags: list[str] = Field(default_factory=list)

    @field_validator("topic", "category")
    @classmethod
    def _one_line(cls, value: str) -> str:
        value = value.strip()
        if not value or "\n" in value:
            raise ValueError("must be one non-empty line")
        return value

    def document(self) -> str:
        """What is embedded: the topic carries half the meaning of a short note."""
        return f"{self.topic}\n{self.text}"

    def metadata(self) -> dict[str, str | int | float | bool]:
        return {"topic": self.topic, "category": self.category,
                "confidence": self.confidence, "provenance": self.provenance,
                "verified": self.verified, "created_at": self.created_at,
                "source": self.source or "", "tags": json.dumps(self.tags)}

    @classmethod
    def from_chroma(cls, entry_id: str, document: str, meta: dict[str, Any]) -> KnowledgeEntry:
        _, _, text = document.partition("\n")
        return cls(id=entry_id, topic=str(meta["topic"]), text=text or document,
                   category=str(meta.get("category", "general")),
                   confidence=float(meta.get("confidence", 0.5)),
                   provenance=meta.get("provenance", "operator"),
                   verified=bool(meta.get("verified", False)),
                   created_at=float(meta.get("created_at", 0.0)),
                   source=str(meta.get("source") or "") or None,
                   tags=json.loads(str(meta.get("tags") or "[]")))


class ActionTaken(_Record):
    """One catalog action of a resolution: its kind and parameters (never a command line)."""

    kind: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.kind}{{{args}}}"


class IncidentRecord(_Record):
    """What happened to one incident: how it looked, what it was, what was done, how it ended."""

    id: str = Field(pattern=ID_PATTERN)
    host: str = Field(min_length=1, max_length=253)
    rule: str = Field(min_length=1, max_length=128)
    subject: str = Field("", max_length=512)
    symptoms: str = Field(min_length=1, max_length=MAX_TEXT)
    diagnosis: str = Field("", max_length=MAX_TEXT)
    actions: list[ActionTaken] = Field(default_factory=list)
    outcome: Outcome
    resolved_at: float = _time(time.time)

    def document(self) -> str:
        """Symptoms first: a new incident is matched by how it looks, not by its cure."""
        actions = "; ".join(a.describe() for a in self.actions)
        return (f"{self.rule} {self.subject}\n{self.symptoms}\n"
                f"diagnosis: {self.diagnosis}\nactions: {actions}")

    def metadata(self) -> dict[str, str | int | float | bool]:
        return {"host": self.host, "rule": self.rule, "subject": self.subject,
                "outcome": self.outcome, "resolved_at": self.resolved_at,
                "record": self.model_dump_json()}

    @classmethod
    def from_chroma(cls, meta: dict[str, Any]) -> IncidentRecord:
        """The stored record. Fields this version does not know (a newer one wrote them) are
        left out rather than making the record unreadable: every field it does know is
        still validated in full, and a newer version that changes what a record means does
        so with a value this one refuses (an outcome it does not know)."""
        data = json.loads(str(meta["record"]))
        if not isinstance(data, dict):
            raise ValueError("the stored record is not a JSON object")
        if isinstance(data.get("actions"), list):
            data["actions"] = [_known(ActionTaken, a) for a in data["actions"]]
        return cls.model_validate(_known(cls, data))


class SystemProfile(_Record):
    """What is known about one host: its OS, its role in a sentence, facts it reported."""

    host: str = Field(min_length=1, max_length=253)
    os: str = Field("", max_length=200)
    summary: str = Field("", max_length=MAX_TEXT)
    facts: dict[str, str] = Field(default_factory=dict)
    updated_at: float = Field(default_factory=time.time)

    def document(self) -> str:
        facts = "\n".join(f"{k}: {v}" for k, v in sorted(self.facts.items()))
        return f"{self.host} {self.os}\n{self.summary}\n{facts}".strip()

    def metadata(self) -> dict[str, str | int | float | bool]:
        return {"host": self.host, "os": self.os, "updated_at": self.updated_at,
                "record": self.model_dump_json()}


class ConfigChunk(_Record):
    """Lines ``start_line``..``end_line`` (1-based, inclusive) of ``path`` in the config
    repository at ``commit``."""

    path: str = Field(min_length=1, max_length=1024)
    start_line: int = Field(ge=1)
    end_line: int = Field(ge=1)
    commit: str = Field("", max_length=64)
    text: str = Field(max_length=MAX_TEXT)
    #: which repository and branch (:func:`~.config_repo.repo_key`): assistants sharing one
    #: store keep their files apart. "": written by an earlier version, which kept no key
    repo: str = Field("", max_length=64)

    @property
    def id(self) -> str:
        where = f"{self.repo}:" if self.repo else ""
        return f"{where}{self.path}:{self.start_line}-{self.end_line}"

    def document(self) -> str:
        # the path says what the file configures (hosts/web1/nginx.nix)
        return f"{self.path}\n{self.text}"

    def metadata(self) -> dict[str, str | int | float | bool]:
        meta: dict[str, str | int | float | bool] = {
            "path": self.path, "start_line": self.start_line, "end_line": self.end_line,
            "commit": self.commit}
        if self.repo:
            meta["repo"] = self.repo
        return meta

    @classmethod
    def from_chroma(cls, document: str, meta: dict[str, Any]) -> ConfigChunk:
        _, _, text = document.partition("\n")
        return cls(path=str(meta["path"]), start_line=int(meta["start_line"]),
                   end_line=int(meta["end_line"]), commit=str(meta.get("commit", "")),
                   text=text, repo=str(meta.get("repo", "")))


def _known(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        return data  # validation says what is wrong with it
    return {k: v for k, v in data.items() if k in model.model_fields}


T = TypeVar("T", KnowledgeEntry, IncidentRecord, SystemProfile, ConfigChunk)


class Hit(BaseModel, Generic[T]):
    """One search result: the record and how far its meaning is from the query."""

    item: T
    #: cosine distance, 0 (same meaning) .. 2
    distance: float

    @property
    def score(self) -> float:
        return 1.0 - self.distance
