"""The knowledge base on ChromaDB: four collections behind one small API.

``KnowledgeBase.open(settings)`` opens an embedded ``chromadb.PersistentClient`` under
``settings.knowledge_dir`` (``state_dir/knowledge``), or a ``chromadb.HttpClient`` when
``knowledge.url`` is set (token from ``knowledge.token_file``, sent as a Bearer token, never
logged). Collections, all cosine, all embedded by our own function (passed explicitly every
time, so chromadb's downloading default is never used):

- ``knowledge``: :class:`KnowledgeEntry` -- ``add``, ``get``, ``remove``, ``list``,
  ``search`` (filters: provenance, category, verified).
- ``incidents``: :class:`IncidentRecord` -- ``record_incident``, ``similar_incidents``.
- ``systems``: :class:`SystemProfile` -- ``upsert_system``, ``get_system``.
- ``config_chunks``: :class:`ConfigChunk` -- ``add_config_chunks``, ``remove_config_chunks``,
  ``search_configs``, ``config_paths``.

``export()`` yields JSON lines (a first line ``{"type": "export"}``, then entries and
incident records, each with its ``type``); ``import_(lines)`` validates every line before
it writes any, and takes a seed, learned or verified item only as this program writes it,
and an operator note as background unless told the file's notes are trusted
(``trust_operator_notes``); a file not trusted so replaces none of the store's lessons, dates
nothing in the future, and its failed fixes are told in a lesson's words. A stored record
this version cannot read is left out of every answer, logged once and listed in
``unreadable``. ``count()`` counts each collection.
Every failure is a :class:`KnowledgeError` with a sentence a person can act on (server
down, token refused, directory unusable, model changed); a missing id is a
:class:`NotFoundError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError

from ..config import read_header_secret, readable_note, validation_problem
from ..errors import (
    EmbeddingError,
    KnowledgeError,
    KnowledgeOff,
    NotFoundError,
    SecretFileError,
)
from .models import (
    ConfigChunk,
    Hit,
    IncidentRecord,
    KnowledgeEntry,
    Outcome,
    Provenance,
    SystemProfile,
)

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from ..config import Settings

#: a channel, as every logger of the library: not one, its records reached no log file
log = logging.getLogger("ai_sysadmin.decisions")
_R = TypeVar("_R")

COLLECTIONS = ("knowledge", "incidents", "systems", "config_chunks")
#: HNSW as chromadb makes it by default (M 16, search ef 10) loses a small cluster of notes
#: among thousands of look-alikes: recall@1 0.62 where exact search gets 0.88, on
#: bench/knowledge_recall.py at 10,000 entries; these match exact search there (15 ms a query)
HNSW = {"hnsw:space": "cosine", "hnsw:M": 32, "hnsw:construction_ef": 200,
        "hnsw:search_ef": 200}
#: after a call to a server ran out, seconds before another may try (see :class:`_Deadline`)
_RETRY_AFTER = 60.0
#: calls that ran out, still waiting, past which none is tried until one ends
_MAX_UNANSWERED = 3
#: seconds after which a call that ran out counts no more against _MAX_UNANSWERED
_ABANDON_AFTER = 1800.0
#: what this program notes about a store itself (when it was seeded), apart from what it knows:
#: a collection's own metadata cannot be changed without dropping its HNSW settings
STATE_COLLECTION = "knowledge_state"
_SEEDED = "seeded"
#: seconds an embedded store waits for another process's lock when no settings say (tests)
_LOCK_WAIT = 10.0
#: chromadb stores at most this many ids per call comfortably (its own max_batch_size is ~5k)
_WRITE_BATCH = 1000
#: the type of an export's first line: the file is a store's, whose seed entries (none,
#: maybe) are all it kept, so a new store it fills gets no others; a person's file has none
EXPORT_TYPE = "export"
#: the tag of an operator note imported from a file not said to be trusted: background only
UNTRUSTED_TAG = "imported, not trusted"
#: held by every writer of an embedded store for its write (:func:`writing`)
WRITERS_LOCK = "writers.lock"
#: seconds past this host's clock a time in a file nobody vouched for may be (another host's
#: clock): a later one would pass for a fix's latest outcome over every real one to come
CLOCK_SKEW = 3600.0
#: the database file's modification time (ns) and size: changed by every write to the store
Mark = tuple[int, int]


@dataclass
class ImportResult:
    """What ``import_`` wrote: new ids, ids that replaced an existing record."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    #: operator notes stored as background: the import did not trust them
    untrusted: list[str] = field(default_factory=list)
    #: operator notes the file held as background (tagged :data:`UNTRUSTED_TAG`), kept so
    #: by an import that trusts the file's notes
    kept_untrusted: list[str] = field(default_factory=list)
    #: how many shipped seed notes a new store got with the import (``seed``)
    seeded: int = 0
    #: the ids of lessons the file held more than once in an earlier release's words (a
    #: kill_process of each pid), once for each merged into the newest of its fix
    merged: list[str] = field(default_factory=list)
    #: ids this store holds a lesson under, kept as they are: the file was not trusted
    kept: list[str] = field(default_factory=list)


def _read_token(path: Path) -> str:
    try:
        token = read_header_secret(path, "knowledge.token_file")
    except SecretFileError as exc:
        raise KnowledgeError(f"cannot use {exc}") from None
    warn_if_token_readable(path)
    return token


def warn_if_token_readable(path: Path) -> None:
    """Said, not refused, as for the LLM's key and the notification channels' files: a token
    every user can read is anyone's way into the knowledge server."""
    if note := readable_note(path, "knowledge.token_file"):
        log.warning("%s", note, extra={"event": "credential_readable"})


def _chroma_settings(**extra: Any) -> Any:
    from chromadb.config import Settings as ChromaSettings

    from .telemetry_off import DOTTED

    # chromadb's telemetry would send events to the internet from every client
    return ChromaSettings(anonymized_telemetry=False, chroma_product_telemetry_impl=DOTTED,
                          chroma_telemetry_impl=DOTTED, **extra)


def _where(**conditions: Any) -> dict[str, Any] | None:
    terms = [{key: value} for key, value in conditions.items() if value is not None]
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else {"$and": terms}


_Item = TypeVar("_Item", KnowledgeEntry, IncidentRecord)


def _when(item: KnowledgeEntry | IncidentRecord) -> float:
    return item.created_at if isinstance(item, KnowledgeEntry) else item.resolved_at


def _learned(item: KnowledgeEntry | IncidentRecord) -> bool:
    return isinstance(item, KnowledgeEntry) and item.provenance == "learned"


def _not_future(item: KnowledgeEntry | IncidentRecord) -> None:
    """Raises ValueError where ``item`` is dated past this host's clock (:data:`CLOCK_SKEW`)."""
    if _when(item) > time.time() + CLOCK_SKEW:
        name = "created_at" if isinstance(item, KnowledgeEntry) else "resolved_at"
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(_when(item)))
        raise ValueError(f"{name} {when} UTC is in the future (this host's clock: "
                         f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC)")


class _ImportTrust:
    """What an import may claim: only what this program itself would have written may
    ever guide a fix (or pass for the shipped seed). An operator note guides fixes only
    where the person importing says the file's notes are theirs (``operator_notes``):
    otherwise any file's line "provenance": "operator" put any sentence before the model
    as a note that may guide a fix."""

    def __init__(self, operator_notes: bool = False) -> None:
        self._seed: dict[str, KnowledgeEntry] | None = None
        self.operator_notes = operator_notes
        #: the ids of operator notes taken as background (:data:`UNTRUSTED_TAG`)
        self.untrusted: list[str] = []
        #: the ids of operator notes the file holds as background already, kept so
        self.kept_untrusted: list[str] = []

    def accepted(self, item: _Item) -> _Item:
        """``item`` as it is stored (a lesson an earlier release wrote, in today's words);
        raises ValueError with why it is refused."""
        from .learning import lesson_now, record_now, record_rebuilt

        if not self.operator_notes:
            _not_future(item)
        if isinstance(item, IncidentRecord):
            if item.outcome != "verified" and self.operator_notes:
                return item
            if item.outcome != "verified":
                # its words would be shown as what happened to a fix here: only its facts
                # are taken, in lesson()'s words
                rebuilt = record_rebuilt(item)
                if isinstance(rebuilt, str):
                    raise ValueError(
                        f"an incident record ({item.outcome}) this program did not write "
                        f"({rebuilt}): import with --trust-operator-notes if the file is yours")
                return rebuilt
            now = record_now(item)
            if isinstance(now, str):
                raise ValueError(f"a verified incident record this program did not write ({now})")
            return now
        if item.provenance == "seed":
            shipped = self._shipped().get(item.id)
            if shipped is None:
                raise ValueError(f"provenance 'seed' but {item.id!r} is not a shipped seed entry")
            if shipped.model_dump(exclude={"created_at"}) != \
                    item.model_dump(exclude={"created_at"}):
                raise ValueError(f"provenance 'seed' but not the shipped text of {item.id!r} "
                                 "(make it provenance 'operator' to keep your words)")
            return item
        if item.provenance == "learned":
            learned = lesson_now(item)
            if isinstance(learned, str):
                raise ValueError(f"a learned entry this program did not write ({learned})")
            return learned
        if item.verified:
            raise ValueError(f"provenance {item.provenance!r} and verified: only a lesson of a "
                             "fix that ran is verified")
        if self.operator_notes:
            # the person vouches for what they wrote, not for what this program marked as
            # not theirs: a trusted import of an export (the way to rebuild a store) keeps a
            # note that came in untrusted as background
            if UNTRUSTED_TAG in item.tags:
                self.kept_untrusted.append(item.id)
            return item
        self.untrusted.append(item.id)
        tags = [t for t in item.tags if t != UNTRUSTED_TAG] + [UNTRUSTED_TAG]
        return item.model_copy(update={"tags": tags})

    def _shipped(self) -> dict[str, KnowledgeEntry]:
        if self._seed is None:
            from .seed import seed_entries

            self._seed = {e.id: e for e in seed_entries()}
        return self._seed


class KnowledgeBase:
    """One open knowledge base. Not thread-safe; open one per thread or guard it."""

    def __init__(self, client: ClientAPI, embedder: Any, where: str,
                 top_k: int = 5, max_distance: float = 2.0,
                 server: _Deadline | None = None) -> None:
        self.client = client
        self.embedder = embedder
        self.where = where
        self.top_k = top_k
        self.max_distance = max_distance
        #: a server's calls, each with a deadline (None: an embedded store, called in place)
        self._server = server
        #: seconds an embedded store waits for a lock another process holds on it
        self.lock_wait = server.timeout if server is not None else _LOCK_WAIT
        #: id -> why: stored records this version cannot read, left out of every answer
        self.unreadable: dict[str, str] = {}
        #: the one line on its damaged vector index, where it was opened without vectors on
        #: one (``open``'s ``vectors``): entries read, no search
        self.damaged: str | None = None
        #: collections an older release made with ChromaDB's default search index
        #: (:meth:`outdated_note`)
        self.outdated: list[str] = []
        #: (the database file before, after) each write of this client to an embedded store,
        #: oldest first: a process that watches the store for others' writes tells its own
        #: from theirs by them (no other writer's write falls inside one: :func:`writing`)
        self.writes: deque[tuple[Mark | None, Mark | None]] = deque(maxlen=1000)
        self._collections: dict[str, Collection] = {}
        for name in COLLECTIONS:
            self._collections[name] = self._open_collection(name)

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(cls, settings: Settings, *, embedder: Any = None, seed: bool | None = None,
             vectors: bool = True) -> KnowledgeBase:
        """Open (creating it if need be) the configured knowledge base; load the seed
        knowledge into an empty one unless ``seed`` (default ``knowledge.seed``) is off.

        An embedded store whose vector index is damaged is refused (ChromaDB would crash or
        hang on it), unless ``vectors`` is off: a caller that only reads entries and records
        by id or metadata (``list``, ``get``, ``count``, an export, the way out of such a
        store) never loads the index; ``damaged`` then says what is wrong with it."""
        from .embeddings import embedding_for

        conf = settings.knowledge
        if not conf.enabled:
            raise KnowledgeOff
        embedder = embedder or embedding_for(settings)
        server = None
        damaged: str | None = None
        if conf.url:
            server = _Deadline(conf.url, conf.timeout)
            client = _http_client(conf.url, conf.token_file, server)
            where = conf.url
        else:
            wait_unlocked(settings.knowledge_dir, conf.timeout)
            damaged = _index_damage(settings.knowledge_dir)
            if damaged and vectors:
                raise KnowledgeError(damaged)
            client = _persistent_client(settings.knowledge_dir)
            where = str(settings.knowledge_dir)
        kb = cls(client, embedder, where, conf.top_k, conf.max_distance, server)
        kb.lock_wait = conf.timeout
        kb.damaged = damaged
        if (conf.seed if seed is None else seed) and not damaged:
            from .seed import seed_once

            seed_once(kb)
        return kb

    @classmethod
    @contextlib.contextmanager
    def opened_alone(cls, settings: Settings, **kwargs: Any) -> Iterator[KnowledgeBase]:
        """``open(settings, **kwargs)`` for writes that no other process's write may fall
        between (an import): an embedded store's writers' lock (:func:`writing`) is held from
        before it opens to the block's end; another writer (`knowledge add`, the daemon's
        lesson) waits ``knowledge.timeout``, then is told who holds it.

        ChromaDB loads a collection's vector index at a client's first use and never learns
        of a write another process makes after: one made between two batches of an import was
        missing from the index the import saved with the next, and every search, recall and
        add after refused the store as damaged until a person rebuilt it."""
        conf = settings.knowledge
        if conf.url or not conf.enabled:
            yield cls.open(settings, **kwargs)
            return
        path = settings.knowledge_dir
        with contextlib.suppress(OSError):  # else ChromaDB's opening says what is wrong
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with writing(path, conf.timeout):
            yield cls.open(settings, **kwargs)

    def seeded(self) -> int | None:
        """The seed version this store was loaded with; None when it never was."""
        found = self._call("read the store's state", self._state().get, ids=[_SEEDED],
                           include=["metadatas"])
        if not found["ids"]:
            return None
        return int((found["metadatas"][0] or {}).get("version", 0))

    def mark_seeded(self, version: int) -> None:
        # a vector is required and nothing searches this collection: one number will do
        self._write("note the seed", self._state().upsert, ids=[_SEEDED], embeddings=[[1.0]],
                   metadatas=[{"version": version, "at": time.time()}])

    def _state(self) -> Collection:
        if STATE_COLLECTION not in self._collections:
            try:
                self._collections[STATE_COLLECTION] = self._send(
                    self.client.get_or_create_collection,
                    {"name": STATE_COLLECTION, "embedding_function": None})
            except Exception as exc:
                raise KnowledgeError(f"knowledge base {self.where}: cannot open collection "
                                     f"{STATE_COLLECTION!r}: {_reason(exc)}") from exc
        return self._collections[STATE_COLLECTION]

    def _open_collection(self, name: str) -> Collection:
        wanted = getattr(self.embedder, "model_name", type(self.embedder).__name__)
        try:
            collection = self._send(self.client.get_or_create_collection, {
                "name": name, "embedding_function": self.embedder,
                "metadata": {**HNSW, "embedding": wanted}})
        except KnowledgeError:
            raise
        except Exception as exc:
            raise KnowledgeError(f"knowledge base {self.where}: cannot open collection "
                                 f"{name!r}: {_reason(exc)}") from exc
        made_with = (collection.metadata or {}).get("embedding")
        if made_with and made_with != wanted:
            raise KnowledgeError(
                f"knowledge base {self.where}: collection {name!r} was made with the "
                f"embedding {made_with!r}, knowledge.embedding gives {wanted!r}; vectors of "
                "two models cannot be compared: export with the old setting, then import into "
                "a new store")
        made = collection.metadata or {}
        # get_or_create never changes an existing collection's index: one made before HNSW
        # was set (its metadata names the space alone) keeps M 16 and search ef 10 for good
        if "hnsw:space" in made and "hnsw:M" not in made:
            self.outdated.append(name)
        return collection

    def outdated_note(self) -> str | None:
        """One sentence on collections an older release made with ChromaDB's default search
        index, and how to rebuild them; None when there are none."""
        if not self.outdated:
            return None
        return (f"knowledge base {self.where}: {', '.join(self.outdated)} made by an older "
                f"ai-sysadmin with ChromaDB's default search index (M 16, search ef 10, not "
                f"M {HNSW['hnsw:M']}, ef {HNSW['hnsw:search_ef']}): among thousands of records "
                "a search misses some it would find. To rebuild it: `knowledge export FILE`, "
                f"stop the daemon, move {self.where} aside, `knowledge import "
                "--trust-operator-notes FILE` (system profiles come back with the checks, "
                "config chunks with `configs --sync`)")

    def collection(self, name: str) -> Collection:
        """The ChromaDB collection (for a layer above that needs more than this API)."""
        return self._collections[name]

    # -- knowledge entries -------------------------------------------------------------

    def add(self, entry: KnowledgeEntry) -> KnowledgeEntry:
        """Store ``entry`` (replacing one with the same id)."""
        self.add_many([entry])
        return entry

    def add_many(self, entries: Sequence[KnowledgeEntry]) -> None:
        # every batch under one hold of the lock: another process's write between two was
        # missing from the vector index this client saved with the next (see ``opened_alone``)
        with self.alone():
            for start in range(0, len(entries), _WRITE_BATCH):
                batch = entries[start:start + _WRITE_BATCH]
                self._write("store knowledge", self._collections["knowledge"].upsert,
                            ids=[e.id for e in batch], documents=[e.document() for e in batch],
                            metadatas=[e.metadata() for e in batch])

    def get(self, entry_id: str) -> KnowledgeEntry:
        found = self._call("read knowledge", self._collections["knowledge"].get,
                           ids=[entry_id], include=["documents", "metadatas"])
        if not found["ids"]:
            raise NotFoundError(f"no knowledge entry {entry_id!r}")
        return self._one(entry_id, lambda: KnowledgeEntry.from_chroma(
            found["ids"][0], found["documents"][0], found["metadatas"][0]))

    def remove(self, entry_id: str) -> KnowledgeEntry | None:
        """Delete one entry; returns what was deleted, None for one this version could not
        read (the operator told of it must be able to be rid of it)."""
        try:
            entry: KnowledgeEntry | None = self.get(entry_id)
        except KnowledgeError:  # there, unreadable (an absent one is a NotFoundError)
            entry = None
        self._write("remove knowledge", self._collections["knowledge"].delete, ids=[entry_id])
        self.unreadable.pop(entry_id, None)
        return entry

    def remove_records_of(self, entry_id: str) -> list[str]:
        """Delete the incident records of the lesson learned as ``entry_id`` (each run of
        its fix wrote one beside the entry); returns their ids. A verified one guides a fix
        as a past incident: the entry removed alone, its fix went on guiding."""
        from .learning import entry_ids_of

        if not entry_id.startswith("learned-"):
            return []
        found = self._call("list incidents", self._collections["incidents"].get,
                           include=["metadatas"])
        records = self._readable(
            (i, lambda m=m: IncidentRecord.from_chroma(m))
            for i, m in zip(found["ids"], found["metadatas"], strict=True))
        ids = sorted(r.id for r in records if entry_id in entry_ids_of(r))
        if ids:
            self._write("remove incident records", self._collections["incidents"].delete,
                        ids=ids)
        return ids

    def remove_incident(self, record_id: str) -> IncidentRecord | None:
        """Delete one incident record; returns it, None for one this version could not read;
        a missing id is a NotFoundError."""
        try:
            record: IncidentRecord | None = self.get_incident(record_id)
        except KnowledgeError:  # there, unreadable (an absent one is a NotFoundError)
            record = None
        self._write("remove the incident record", self._collections["incidents"].delete,
                    ids=[record_id])
        self.unreadable.pop(record_id, None)
        return record

    def list(self, *, provenance: Provenance | None = None, category: str | None = None,
             verified: bool | None = None, limit: int | None = None) -> list[KnowledgeEntry]:
        """Entries, newest first."""
        found = self._call("list knowledge", self._collections["knowledge"].get,
                           where=_where(provenance=provenance, category=category,
                                        verified=verified),
                           include=["documents", "metadatas"])
        entries = self._readable(
            (i, lambda i=i, d=d, m=m: KnowledgeEntry.from_chroma(i, d, m)) for i, d, m in
            zip(found["ids"], found["documents"], found["metadatas"], strict=True))
        entries.sort(key=lambda e: (-e.created_at, e.id))
        return entries[:limit] if limit else entries

    def search(self, query: str, n: int | None = None, *,
               provenance: Provenance | Sequence[Provenance] | None = None,
               category: str | None = None, verified: bool | None = None,
               max_distance: float | None = None) -> list[Hit[KnowledgeEntry]]:
        """The entries nearest in meaning to ``query``, nearest first, at most
        ``max_distance`` (default ``knowledge.max_distance``) away."""
        prov: Any = provenance
        if isinstance(provenance, list | tuple):
            prov = {"$in": list(provenance)}
        rows = self._query("knowledge", query, n, _where(provenance=prov, category=category,
                                                         verified=verified), max_distance)
        return self._readable(
            (i, lambda i=i, d=d, m=m, dist=dist: Hit[KnowledgeEntry](
                item=KnowledgeEntry.from_chroma(i, d, m), distance=dist))
            for i, d, m, dist in rows)

    # -- incidents ---------------------------------------------------------------------

    def record_incident(self, record: IncidentRecord) -> None:
        """Store (or replace) what happened to one incident."""
        self._write("record the incident", self._collections["incidents"].upsert,
                   ids=[record.id], documents=[record.document()],
                   metadatas=[record.metadata()])

    def get_incident(self, record_id: str) -> IncidentRecord:
        found = self._call("read the incident", self._collections["incidents"].get,
                           ids=[record_id], include=["metadatas"])
        if not found["ids"]:
            raise NotFoundError(f"no incident record {record_id!r}")
        return self._one(record_id, lambda: IncidentRecord.from_chroma(found["metadatas"][0]))

    def incidents(self) -> list[IncidentRecord]:
        found = self._call("list incidents", self._collections["incidents"].get,
                           include=["metadatas"])
        records = self._readable(
            (i, lambda m=m: IncidentRecord.from_chroma(m))
            for i, m in zip(found["ids"], found["metadatas"], strict=True))
        return sorted(records, key=lambda r: (-r.resolved_at, r.id))

    def similar_incidents(self, text: str, n: int = 3, *, outcome: Outcome | None = None,
                          max_distance: float | None = None) -> list[Hit[IncidentRecord]]:
        """Past incidents that looked most like ``text``, nearest first."""
        rows = self._query("incidents", text, n, _where(outcome=outcome), max_distance)
        return self._readable(
            (i, lambda m=m, dist=dist: Hit[IncidentRecord](
                item=IncidentRecord.from_chroma(m), distance=dist))
            for i, _, m, dist in rows)

    # -- systems -----------------------------------------------------------------------

    def upsert_system(self, profile: SystemProfile) -> None:
        self._write("store the system profile", self._collections["systems"].upsert,
                   ids=[profile.host], documents=[profile.document()],
                   metadatas=[profile.metadata()])
        self.unreadable.pop(_system_id(profile.host), None)

    def get_system(self, host: str) -> SystemProfile | None:
        """The host's stored profile; None where there is none, or none this version can
        read (a newer one wrote it, logged once): what the host reports now is written over
        it. Raised, it was "host profile not kept" at every check, and never rewritten."""
        found = self._call("read the system profile", self._collections["systems"].get,
                           ids=[host], include=["metadatas"])
        if not found["ids"]:
            return None
        meta = found["metadatas"][0]
        read = self._readable([(_system_id(host), lambda: SystemProfile.model_validate_json(
            str(meta["record"])))])
        return read[0] if read else None

    # -- config chunks -----------------------------------------------------------------

    def add_config_chunks(self, chunks: Sequence[ConfigChunk]) -> None:
        with self.alone():  # as add_many's batches
            for start in range(0, len(chunks), _WRITE_BATCH):
                batch = chunks[start:start + _WRITE_BATCH]
                self._write("index config chunks", self._collections["config_chunks"].upsert,
                            ids=[c.id for c in batch], documents=[c.document() for c in batch],
                            metadatas=[c.metadata() for c in batch])

    def remove_config_chunks(self, path: str, repo: str | None = None) -> int:
        """Forget every chunk of ``path`` (of the repository ``repo`` only, "" for those
        that name none; None: of any); returns how many there were."""
        collection = self._collections["config_chunks"]
        found = self._call("find config chunks", collection.get, where={"path": path},
                           include=["metadatas"])
        ids = [i for i, m in zip(found["ids"], found["metadatas"], strict=True)
               if repo is None or str((m or {}).get("repo", "")) == repo]
        if ids:
            self._write("remove config chunks", collection.delete, ids=ids)
        return len(ids)

    def config_index_id(self) -> str:
        """Which index of config chunks this is: ChromaDB's id of the collection, another for
        a store made anew (the old one moved aside, another knowledge.path or server)."""
        return str(self._collections["config_chunks"].id)

    def config_paths(self, repo: str | None = None) -> dict[str, str]:
        """Indexed path -> the commit its chunks come from, of the repository ``repo`` ("":
        chunks an earlier version wrote, which name none; None: of every repository). A chunk
        this version cannot read is left out, as an entry is."""
        found = self._call("list config chunks", self._collections["config_chunks"].get,
                           where={"repo": repo} if repo else None, include=["metadatas"])
        rows = self._readable(
            (i, lambda m=m: _config_row(m))
            for i, m in zip(found["ids"], found["metadatas"], strict=True))
        return {path: commit for path, commit, key in rows if repo is None or key == repo}

    def search_configs(self, query: str, n: int | None = None, *, repo: str | None = None,
                       max_distance: float | None = None) -> list[Hit[ConfigChunk]]:
        """The chunks nearest to ``query``, of the repository ``repo`` only where given."""
        rows = self._query("config_chunks", query, n, _where(repo=repo or None), max_distance)
        return self._readable(
            (i, lambda d=d, m=m, dist=dist: Hit[ConfigChunk](
                item=ConfigChunk.from_chroma(d, m), distance=dist))
            for i, d, m, dist in rows)

    # -- export / import / count -------------------------------------------------------

    def export(self) -> Iterator[str]:
        """A line of type :data:`EXPORT_TYPE`, then every knowledge entry, then every
        incident record, one JSON object a line."""
        yield json.dumps({"type": EXPORT_TYPE})
        for entry in sorted(self.list(), key=lambda e: (e.created_at, e.id)):
            yield json.dumps({"type": "entry", **entry.model_dump(mode="json")})
        for record in sorted(self.incidents(), key=lambda r: (r.resolved_at, r.id)):
            yield json.dumps({"type": "incident", **record.model_dump(mode="json")})

    def import_(self, lines: Iterable[str], trust_operator_notes: bool = False,
                seed: bool = False) -> ImportResult:
        """Read ``export()``'s lines back. Every line is checked first: one bad line is an
        error naming it, and nothing is written. An operator note is stored as background
        (tagged :data:`UNTRUSTED_TAG`) unless ``trust_operator_notes``: the person importing
        says the file's notes are theirs. A note the file holds tagged so (an export of a
        store it came into untrusted) stays background either way.

        A store never seeded counts as seeded once an import wrote into it: an export (its
        :data:`EXPORT_TYPE` line, or, written before there was one, a file holding seed
        entries) says which seed entries it keeps, none where it holds none. Any other file
        (notes a person wrote) gives a new store the shipped seed first where ``seed``, as
        its first open would have.

        A line is data from elsewhere, so what the model would trust is taken only as this
        program writes it: a seed entry must be a shipped one as shipped; a learned or
        verified entry and a verified incident record must be a lesson word for word (see
        :func:`~.learning.lesson_problem`). An id given twice is named by both lines. An
        earlier release's lessons of one fix, which today's words make one lesson, are
        merged into the newest (``merged``).

        A file nobody vouched for (not ``trust_operator_notes``) replaces none of this
        store's lessons (a learned or verified entry, a record of a fix that ran: ``kept``),
        may date nothing later than now (give or take :data:`CLOCK_SKEW`), and its failed
        fixes are recorded in lesson()'s words, rebuilt from the facts they state: its own
        words, shown as what happened, outranked the verified fix for good.

        An embedded store is written under its writers' lock, all of it: open it with
        :meth:`opened_alone` where this client may have used it before (its vector index
        loaded then misses another process's write made since)."""
        trust = _ImportTrust(trust_operator_notes)
        entries, records, merged, exported = self._import_lines(lines, trust)
        seeded = 0
        with self.alone():
            # an export that holds no seed entry is of a store whose operator removed them
            # all; a file written before exports said so is taken for a person's notes
            if seed and not exported and self.seeded() is None and \
                    all(e.provenance != "seed" for e in entries):
                # first, so that the file's entries win over a shipped one of the same id
                from .seed import seed_once

                seeded = seed_once(self)
            existing = self._existing("knowledge", [e.id for e in entries]) | \
                self._existing("incidents", [r.id for r in records])
            kept = set() if trust_operator_notes else self._lessons_among(
                [e.id for e in entries], [r.id for r in records])
            entries = [e for e in entries if e.id not in kept]
            records = [r for r in records if r.id not in kept]
            self.add_many(entries)
            for record in records:
                self.record_incident(record)
            if self.seeded() is None:
                # an export holds the seed entries its store kept: a store it fills first is
                # seeded by it, so the seed's entries its operator removed stay removed
                from .seed import SEED_VERSION

                self.mark_seeded(SEED_VERSION)
        result = ImportResult(untrusted=[i for i in trust.untrusted if i not in kept],
                              kept_untrusted=trust.kept_untrusted, seeded=seeded,
                              merged=merged, kept=sorted(kept))
        for item_id in [e.id for e in entries] + [r.id for r in records]:
            (result.replaced if item_id in existing else result.added).append(item_id)
        return result

    def _import_lines(self, lines: Iterable[str], trust: _ImportTrust
                      ) -> tuple[list[KnowledgeEntry], list[IncidentRecord], list[str], bool]:
        """The entries and records of an import's lines as they would be stored, the ids of
        lessons merged, whether the file is an export; a KnowledgeError naming each bad line."""
        items: dict[tuple[str, str], KnowledgeEntry | IncidentRecord] = {}
        #: the line of each item as it is stored (a lesson in today's words: its id may differ)
        stored_at: dict[tuple[str, str], int] = {}
        merged: list[str] = []
        problems: list[str] = []
        # entries and records live in collections of their own: one id may be in both
        first_seen: dict[tuple[str, str], int] = {}
        exported = False
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                kind = data.pop("type", "entry")
                if kind == EXPORT_TYPE:
                    exported = True
                    continue
                item: KnowledgeEntry | IncidentRecord
                if kind == "entry":
                    item = KnowledgeEntry.model_validate(data)
                elif kind == "incident":
                    item = IncidentRecord.model_validate(data)
                else:
                    raise ValueError(f"unknown type {kind!r} (entry or incident)")
                if (earlier := first_seen.setdefault((kind, item.id), number)) != number:
                    raise ValueError(f"{kind} id {item.id!r} is also on line {earlier}")
                item = trust.accepted(item)
                # two lessons an earlier release wrote of one fix (a kill of two pids) are
                # one in today's words: the newest is kept, as the store would have kept it
                if (other := items.get((kind, item.id))) is not None:
                    if not (_learned(other) and _learned(item)):
                        raise ValueError(f"{kind} id {item.id!r} is also that of line "
                                         f"{stored_at[(kind, item.id)]}")
                    merged.append(item.id)
                    if _when(other) > _when(item):
                        continue
                items[(kind, item.id)] = item
                stored_at[(kind, item.id)] = number
            except ValidationError as exc:
                problems.append(f"line {number}: " + "; ".join(
                    validation_problem(e, "record") for e in exc.errors()))
            except ValueError as exc:
                problems.append(f"line {number}: {exc}")
        if problems:
            shown = problems[:10] + ([f"... and {len(problems) - 10} more"]
                                     if len(problems) > 10 else [])
            raise KnowledgeError("nothing imported: " + "; ".join(shown))
        entries = [i for i in items.values() if isinstance(i, KnowledgeEntry)]
        records = [i for i in items.values() if isinstance(i, IncidentRecord)]
        return entries, records, merged, exported

    def _lessons_among(self, entry_ids: Sequence[str], record_ids: Sequence[str]) -> set[str]:
        """Of these ids, those this store holds a lesson under: a learned or verified entry,
        a verified incident record or one of a fix that ran (``incident-N-action-M``)."""
        from .learning import RECORD_ID

        found: set[str] = set()
        for name, ids in (("knowledge", entry_ids), ("incidents", record_ids)):
            if not ids:
                continue
            stored = self._call("read", self._collections[name].get, ids=list(ids),
                                include=["metadatas"])
            for stored_id, meta in zip(stored["ids"], stored["metadatas"], strict=True):
                meta = meta or {}
                if name == "knowledge" and (meta.get("provenance") == "learned"
                                            or meta.get("verified") is True):
                    found.add(stored_id)
                elif name == "incidents" and (meta.get("outcome") == "verified"
                                              or RECORD_ID.match(stored_id)):
                    found.add(stored_id)
        return found

    def count(self) -> dict[str, int]:
        return {name: self._call("count", self._collections[name].count)
                for name in COLLECTIONS}

    def unreadable_note(self) -> str | None:
        """One sentence on the stored records left out so far, or None."""
        if not self.unreadable:
            return None
        ids = sorted(self.unreadable)
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        return (f"{len(ids)} unreadable record(s) in knowledge base {self.where} left out "
                f"({shown}): written by a newer version, or damaged")

    # -- plumbing ----------------------------------------------------------------------

    def _readable(self, rows: Iterable[tuple[str, Callable[[], _R]]]) -> list[_R]:
        """Each row read on its own: one this version cannot read costs that row, not the
        answer (nor an export, the way out of a store a newer version wrote into)."""
        read: list[_R] = []
        for record_id, build in rows:
            try:
                read.append(build())
            except (KeyError, TypeError, ValueError) as exc:  # pydantic's is a ValueError
                why = _unreadable_reason(exc)
                if record_id not in self.unreadable:  # said once, not at every search
                    log.warning("knowledge base %s: record %s cannot be read, left out: %s",
                                self.where, record_id, why,
                                extra={"event": "knowledge_unreadable"})
                self.unreadable[record_id] = why
        return read

    def _one(self, record_id: str, build: Callable[[], _R]) -> _R:
        try:
            return build()
        except (KeyError, TypeError, ValueError) as exc:
            raise KnowledgeError(f"{record_id!r} cannot be read ({_unreadable_reason(exc)}): "
                                 "written by a newer version, or damaged") from None

    def _existing(self, name: str, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        found = self._call("read", self._collections[name].get, ids=list(ids), include=[])
        return set(found["ids"])

    def _query(self, name: str, text: str, n: int | None, where: dict[str, Any] | None,
               max_distance: float | None) -> list[tuple[str, str, dict[str, Any], float]]:
        collection = self._collections[name]
        size = self._call("count", collection.count)
        if size == 0 or not text.strip():
            return []
        limit = max_distance if max_distance is not None else self.max_distance
        found = self._call("search", collection.query, query_texts=[text],
                           n_results=min(n or self.top_k, size), where=where,
                           include=["documents", "metadatas", "distances"])
        rows = zip(found["ids"][0], found["documents"][0], found["metadatas"][0],
                   found["distances"][0], strict=True)
        # a vector without its record: one another process removed, still in the index this
        # client loaded (every record is written with its metadata); gone, not unreadable
        return [(i, d, dict(m), float(dist)) for i, d, m, dist in rows
                if dist <= limit and m is not None and d is not None]

    def _call(self, what: str, method: Any, **kwargs: Any) -> Any:
        if self._server is None:
            wait_unlocked(Path(self.where), self.lock_wait)
        try:
            return self._send(method, self._embedded(kwargs))
        except (KnowledgeError, EmbeddingError):
            raise
        except Exception as exc:  # chromadb raises many unrelated types; one sentence each
            raise KnowledgeError(f"knowledge base {self.where}: cannot {what}: "
                                 f"{_reason(exc)}") from exc

    def _write(self, what: str, method: Any, **kwargs: Any) -> Any:
        """A call that writes: to an embedded store, under :func:`writing`, noted in
        ``writes``."""
        if self._server is not None:
            return self._call(what, method, **kwargs)
        where = Path(self.where)
        with self.alone():
            before = file_mark(where)
            try:
                return self._call(what, method, **kwargs)
            finally:
                self.writes.append((before, file_mark(where)))

    def alone(self) -> contextlib.AbstractContextManager[None]:
        """This client's writes meanwhile, all of them, with no other process's between them
        (:func:`writing`); a server orders its writes itself."""
        if self._server is not None:
            return contextlib.nullcontext()
        return writing(Path(self.where), self.lock_wait)

    def _embedded(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call with its texts embedded here, first: a server's deadline is for the
        server, not for our model working through a batch of a thousand documents."""
        if self._server is None:
            return kwargs  # chromadb calls the same function itself
        if "documents" in kwargs and "embeddings" not in kwargs:
            return {**kwargs, "embeddings": self.embedder(kwargs["documents"])}
        if "query_texts" in kwargs:
            texts = kwargs.pop("query_texts")
            return {**kwargs, "query_embeddings": self.embedder(texts)}
        return kwargs

    def _send(self, method: Any, kwargs: dict[str, Any]) -> Any:
        return method(**kwargs) if self._server is None else self._server.call(method, kwargs)


class _Deadline:
    """Calls to a ChromaDB server, each given ``timeout`` seconds.

    chromadb's HTTP client waits forever for an answer, so a server that hangs (stopped,
    swapping, its disk stuck) would hold its caller, and through it a worker of the daemon,
    forever. Each call runs on a thread of its own, which the caller stops waiting for at the
    deadline. After a call ran out, later ones fail at once for :data:`_RETRY_AFTER` seconds
    instead of each leaving another thread behind; then one may try again (a connection whose
    server rebooted never ends by itself), with at most :data:`_MAX_UNANSWERED` waiting at a
    time; one that waited :data:`_ABANDON_AFTER` seconds counts no more (else three such would
    turn knowledge off until a restart), so a server hung for good costs a few threads an
    hour. A write that ran out may still land when the server wakes: every write here is an
    upsert or a delete by id, which the caller may repeat.
    """

    def __init__(self, where: str, timeout: float) -> None:
        self.where = where
        self.timeout = timeout
        #: calls that ran out and still wait, each with when it ran out
        self._unanswered: list[tuple[threading.Thread, float]] = []

    def call(self, method: Any, kwargs: dict[str, Any]) -> Any:
        self._refuse_while_hung()
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append((True, method(**kwargs)))
            except BaseException as exc:  # handed to the caller's thread below
                outcome.append((False, exc))

        # a daemon thread: a request that never ends must not hold the process at exit
        worker = threading.Thread(target=run, name="chromadb-request", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if not outcome:
            self._unanswered.append((worker, time.monotonic()))
            raise KnowledgeError(f"ChromaDB server {self.where} did not answer within "
                                 f"{self.timeout:g} s")
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def _refuse_while_hung(self) -> None:
        now = time.monotonic()
        self._unanswered = [(t, since) for t, since in self._unanswered
                            if t.is_alive() and now - since < _ABANDON_AFTER]
        if not self._unanswered:
            return
        waited = now - self._unanswered[-1][1]
        retry_in = _RETRY_AFTER - waited
        if len(self._unanswered) >= _MAX_UNANSWERED:
            retry_in = max(retry_in, _ABANDON_AFTER - (now - self._unanswered[0][1]))
        if retry_in > 0:
            raise KnowledgeError(
                f"ChromaDB server {self.where} has not answered a request it was sent "
                f"{waited + self.timeout:.0f} s ago (knowledge.timeout is {self.timeout:g} s); "
                f"it is tried again in {retry_in:.0f} s, or as soon as it answers")


def wait_unlocked(path: Path, seconds: float) -> None:
    """Wait at most ``seconds`` for a write lock another process holds on the embedded store
    at ``path`` (a long `knowledge import`, a sqlite3 shell, a backup), then say so.

    ChromaDB's own connections wait 1000 s for one, without a word: a `knowledge` command
    hung for up to 17 minutes, SIGTERM unheard, and a daemon's every recall and lesson
    behind it. A lock taken between this look and ChromaDB's call is still waited for."""
    database = path / "chroma.sqlite3"
    if not database.is_file():
        return  # a new store, or none: ChromaDB says what is wrong
    try:
        conn = sqlite3.connect(f"{database.as_uri()}?mode=rw", uri=True, timeout=seconds)
    except sqlite3.Error:
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY:
            raise KnowledgeError(
                f"knowledge base {path} is locked by another process (a `knowledge import`, "
                f"a sqlite3 shell, a backup?), still after {seconds:g} s "
                "(knowledge.timeout): try again once it is done") from None
        # anything else (a read-only file, a damaged one) is ChromaDB's to say
    finally:
        conn.close()


def file_mark(path: Path) -> Mark | None:
    """The database file of the embedded store at ``path`` as it is now (None: none)."""
    try:
        st = (path / "chroma.sqlite3").stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


#: the stores (their real paths) whose writers' lock this thread holds (:func:`writing`)
_held = threading.local()


@contextlib.contextmanager
def writing(path: Path, seconds: float) -> Iterator[None]:
    """The embedded store at ``path`` written by this block alone, among every writer that
    uses this (waited for ``seconds`` at most). A process that keeps the store open (the
    daemon) knows a write by the database file changing, and only this tells its own write
    from another process's `knowledge add` made at the same moment: one taken for its own
    kept the daemon's vector index without the other's entry, and a removed entry's vector
    in it, until a restart. An ``flock``: the kernel lets go of it when its holder dies.

    Held already by this thread, it is held on (a write of many batches holds it around
    each batch's own): a second ``flock`` of the same process waits on the first for good."""
    key = os.path.realpath(path)
    held: set[str] = getattr(_held, "paths", set())
    _held.paths = held
    if key in held:
        yield
        return
    try:
        fd = os.open(path / WRITERS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        yield  # a store that cannot be written to: ChromaDB says what is wrong
        return
    try:
        deadline = time.monotonic() + seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise KnowledgeError(
                        f"knowledge base {path} is being written by another process (a "
                        f"`knowledge import`?), still after {seconds:g} s "
                        "(knowledge.timeout): try again once it is done") from None
                # a lock held by another process: polled, the time limit kept
                time.sleep(0.05)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
    finally:
        os.close(fd)


def _system_id(host: str) -> str:
    """A host's profile as :attr:`KnowledgeBase.unreadable` names it: apart from entry ids."""
    return f"systems/{host}"


def _config_row(meta: dict[str, Any]) -> tuple[str, str, str]:
    """(path, commit, repository key) of a config chunk's metadata."""
    return str(meta["path"]), str(meta.get("commit", "")), str(meta.get("repo", ""))


def _unreadable_reason(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(validation_problem(e, "record") for e in exc.errors())[:300]
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r}" if exc.args else "a field is missing"
    return _reason(exc)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _index_damage(path: Path) -> str | None:
    """One line on a damaged vector index of the store at ``path``, with the way out."""
    from .vector_index import damage, gap

    if why := damage(path):
        harm = "ChromaDB would crash or hang on it"
    elif why := gap(path):
        harm = "a search would quietly miss the rest"
    else:
        return None
    return (f"knowledge base {path} has a damaged vector index ({why}): {harm}; `knowledge "
            "export FILE` still reads every entry, then move it aside and `knowledge import "
            "--trust-operator-notes FILE`")


def _persistent_client(path: Path) -> ClientAPI:
    import chromadb

    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise KnowledgeError(f"knowledge base directory {path} cannot be made: "
                             f"{exc.strerror or exc}") from None
    if not path.is_dir():
        raise KnowledgeError(f"knowledge base {path} is not a directory")
    try:
        return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
    except Exception as exc:
        raise KnowledgeError(
            f"knowledge base {path} cannot be opened ({_reason(exc)}): it may be damaged or "
            "from another ChromaDB version; move it aside (an export can be imported into a "
            "new one)") from exc


def _http_client(url: str, token_file: Path | None, server: _Deadline) -> ClientAPI:
    import chromadb
    import httpx

    token = _read_token(token_file) if token_file else None
    parts = urlsplit(url)
    ssl = parts.scheme == "https"
    port = parts.port or (443 if ssl else 8000)
    base = f"{parts.scheme}://{parts.netloc}"
    host = parts.hostname or "127.0.0.1"
    # chromadb glues host and port into its URL: an IPv6 address needs its brackets back
    # (http://[::1]:8000), which urlsplit took off; http://::1:8000 reaches nothing
    if ":" in host:
        host = f"[{host}]"
    # chromadb's HTTP client waits forever: ask first, with a deadline, so a dead or hung
    # server is a sentence, not a hang; making the client asks more (tenant, database)
    timeout = server.timeout
    try:
        reply = httpx.get(f"{base}/api/v2/heartbeat", timeout=timeout)
    except httpx.TimeoutException:
        raise KnowledgeError(f"ChromaDB server {base} did not answer within {timeout:g} s"
                             ) from None
    except httpx.HTTPError as exc:
        raise KnowledgeError(f"ChromaDB server {base} cannot be reached: {_reason(exc)} "
                             "(is `chroma run` up?)") from None
    if reply.status_code != 200:
        raise KnowledgeError(f"{base} is not a ChromaDB server this version speaks to "
                             f"(heartbeat: HTTP {reply.status_code})")
    extra: dict[str, Any] = {}
    if token:
        extra = {"chroma_client_auth_provider":
                 "chromadb.auth.token_authn.TokenAuthClientProvider",
                 "chroma_client_auth_credentials": token}
    try:
        return server.call(chromadb.HttpClient, {
            "host": host, "port": port, "ssl": ssl,
            "settings": _chroma_settings(**extra)})
    except KnowledgeError:
        raise
    except Exception as exc:
        from chromadb.errors import AuthorizationError, ChromaAuthError

        if isinstance(exc, ChromaAuthError | AuthorizationError):
            why = ("refused the token in knowledge.token_file" if token else
                   "requires a token: set knowledge.token_file")
            raise KnowledgeError(f"ChromaDB server {base} {why}") from None
        raise KnowledgeError(f"ChromaDB server {base}: {_reason(exc)}") from None
