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

``export()`` yields JSON lines (entries and incident records, each with its ``type``);
``import_(lines)`` validates every line before it writes any. ``count()`` counts each
collection. Every failure is a :class:`KnowledgeError` with a sentence a person can act on
(server down, token refused, directory unusable, model changed); a missing id is a
:class:`NotFoundError`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from ..errors import EmbeddingError, KnowledgeError, NotFoundError
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

log = logging.getLogger(__name__)

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
#: chromadb stores at most this many ids per call comfortably (its own max_batch_size is ~5k)
_WRITE_BATCH = 1000


@dataclass
class ImportResult:
    """What ``import_`` wrote: new ids, ids that replaced an existing record."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KnowledgeError(f"cannot read knowledge.token_file {path}: "
                             f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    if not token:
        raise KnowledgeError(f"knowledge.token_file {path} is empty")
    return token


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
        self._collections: dict[str, Collection] = {}
        for name in COLLECTIONS:
            self._collections[name] = self._open_collection(name)

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(cls, settings: Settings, *, embedder: Any = None,
             seed: bool | None = None) -> KnowledgeBase:
        """Open (creating it if need be) the configured knowledge base; load the seed
        knowledge into an empty one unless ``seed`` (default ``knowledge.seed``) is off."""
        from .embeddings import embedding_for

        conf = settings.knowledge
        embedder = embedder or embedding_for(settings)
        server = None
        if conf.url:
            server = _Deadline(conf.url, conf.timeout)
            client = _http_client(conf.url, conf.token_file, server)
            where = conf.url
        else:
            client = _persistent_client(settings.knowledge_dir)
            where = str(settings.knowledge_dir)
        kb = cls(client, embedder, where, conf.top_k, conf.max_distance, server)
        if conf.seed if seed is None else seed:
            from .seed import seed_if_empty

            seed_if_empty(kb)
        return kb

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
        return collection

    def collection(self, name: str) -> Collection:
        """The ChromaDB collection (for a layer above that needs more than this API)."""
        return self._collections[name]

    # -- knowledge entries -------------------------------------------------------------

    def add(self, entry: KnowledgeEntry) -> KnowledgeEntry:
        """Store ``entry`` (replacing one with the same id)."""
        self.add_many([entry])
        return entry

    def add_many(self, entries: Sequence[KnowledgeEntry]) -> None:
        for start in range(0, len(entries), _WRITE_BATCH):
            batch = entries[start:start + _WRITE_BATCH]
            self._call("store knowledge", self._collections["knowledge"].upsert,
                       ids=[e.id for e in batch], documents=[e.document() for e in batch],
                       metadatas=[e.metadata() for e in batch])

    def get(self, entry_id: str) -> KnowledgeEntry:
        found = self._call("read knowledge", self._collections["knowledge"].get,
                           ids=[entry_id], include=["documents", "metadatas"])
        if not found["ids"]:
            raise NotFoundError(f"no knowledge entry {entry_id!r}")
        return KnowledgeEntry.from_chroma(found["ids"][0], found["documents"][0],
                                          found["metadatas"][0])

    def remove(self, entry_id: str) -> KnowledgeEntry:
        """Delete one entry; returns what was deleted."""
        entry = self.get(entry_id)
        self._call("remove knowledge", self._collections["knowledge"].delete, ids=[entry_id])
        return entry

    def list(self, *, provenance: Provenance | None = None, category: str | None = None,
             verified: bool | None = None, limit: int | None = None) -> list[KnowledgeEntry]:
        """Entries, newest first."""
        found = self._call("list knowledge", self._collections["knowledge"].get,
                           where=_where(provenance=provenance, category=category,
                                        verified=verified),
                           include=["documents", "metadatas"])
        entries = [KnowledgeEntry.from_chroma(i, d, m) for i, d, m in
                   zip(found["ids"], found["documents"], found["metadatas"], strict=True)]
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
        return [Hit[KnowledgeEntry](item=KnowledgeEntry.from_chroma(i, d, m), distance=dist)
                for i, d, m, dist in rows]

    # -- incidents ---------------------------------------------------------------------

    def record_incident(self, record: IncidentRecord) -> None:
        """Store (or replace) what happened to one incident."""
        self._call("record the incident", self._collections["incidents"].upsert,
                   ids=[record.id], documents=[record.document()],
                   metadatas=[record.metadata()])

    def get_incident(self, record_id: str) -> IncidentRecord:
        found = self._call("read the incident", self._collections["incidents"].get,
                           ids=[record_id], include=["metadatas"])
        if not found["ids"]:
            raise NotFoundError(f"no incident record {record_id!r}")
        return IncidentRecord.from_chroma(found["metadatas"][0])

    def incidents(self) -> list[IncidentRecord]:
        found = self._call("list incidents", self._collections["incidents"].get,
                           include=["metadatas"])
        records = [IncidentRecord.from_chroma(m) for m in found["metadatas"]]
        return sorted(records, key=lambda r: (-r.resolved_at, r.id))

    def similar_incidents(self, text: str, n: int = 3, *, outcome: Outcome | None = None,
                          max_distance: float | None = None) -> list[Hit[IncidentRecord]]:
        """Past incidents that looked most like ``text``, nearest first."""
        rows = self._query("incidents", text, n, _where(outcome=outcome), max_distance)
        return [Hit[IncidentRecord](item=IncidentRecord.from_chroma(m), distance=dist)
                for _, _, m, dist in rows]

    # -- systems -----------------------------------------------------------------------

    def upsert_system(self, profile: SystemProfile) -> None:
        self._call("store the system profile", self._collections["systems"].upsert,
                   ids=[profile.host], documents=[profile.document()],
                   metadatas=[profile.metadata()])

    def get_system(self, host: str) -> SystemProfile | None:
        found = self._call("read the system profile", self._collections["systems"].get,
                           ids=[host], include=["metadatas"])
        if not found["ids"]:
            return None
        return SystemProfile.model_validate_json(str(found["metadatas"][0]["record"]))

    # -- config chunks -----------------------------------------------------------------

    def add_config_chunks(self, chunks: Sequence[ConfigChunk]) -> None:
        for start in range(0, len(chunks), _WRITE_BATCH):
            batch = chunks[start:start + _WRITE_BATCH]
            self._call("index config chunks", self._collections["config_chunks"].upsert,
                       ids=[c.id for c in batch], documents=[c.document() for c in batch],
                       metadatas=[c.metadata() for c in batch])

    def remove_config_chunks(self, path: str) -> int:
        """Forget every chunk of ``path``; returns how many there were."""
        collection = self._collections["config_chunks"]
        found = self._call("find config chunks", collection.get, where={"path": path},
                           include=[])
        if found["ids"]:
            self._call("remove config chunks", collection.delete, ids=found["ids"])
        return len(found["ids"])

    def config_paths(self) -> dict[str, str]:
        """Indexed path -> the commit its chunks come from."""
        found = self._call("list config chunks", self._collections["config_chunks"].get,
                           include=["metadatas"])
        return {str(m["path"]): str(m.get("commit", "")) for m in found["metadatas"]}

    def search_configs(self, query: str, n: int | None = None, *,
                       max_distance: float | None = None) -> list[Hit[ConfigChunk]]:
        rows = self._query("config_chunks", query, n, None, max_distance)
        return [Hit[ConfigChunk](item=ConfigChunk.from_chroma(d, m), distance=dist)
                for _, d, m, dist in rows]

    # -- export / import / count -------------------------------------------------------

    def export(self) -> Iterator[str]:
        """Every knowledge entry, then every incident record, one JSON object a line."""
        for entry in sorted(self.list(), key=lambda e: (e.created_at, e.id)):
            yield json.dumps({"type": "entry", **entry.model_dump(mode="json")})
        for record in sorted(self.incidents(), key=lambda r: (r.resolved_at, r.id)):
            yield json.dumps({"type": "incident", **record.model_dump(mode="json")})

    def import_(self, lines: Iterable[str]) -> ImportResult:
        """Read ``export()``'s lines back. Every line is checked first: one bad line is an
        error naming it, and nothing is written."""
        entries: list[KnowledgeEntry] = []
        records: list[IncidentRecord] = []
        problems: list[str] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                kind = data.pop("type", "entry")
                if kind == "entry":
                    entries.append(KnowledgeEntry.model_validate(data))
                elif kind == "incident":
                    records.append(IncidentRecord.model_validate(data))
                else:
                    raise ValueError(f"unknown type {kind!r} (entry or incident)")
            except ValidationError as exc:
                problems.append(f"line {number}: " + "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()))
            except ValueError as exc:
                problems.append(f"line {number}: {exc}")
        if problems:
            shown = problems[:10] + ([f"... and {len(problems) - 10} more"]
                                     if len(problems) > 10 else [])
            raise KnowledgeError("nothing imported: " + "; ".join(shown))
        existing = self._existing("knowledge", [e.id for e in entries]) | \
            self._existing("incidents", [r.id for r in records])
        self.add_many(entries)
        for record in records:
            self.record_incident(record)
        result = ImportResult()
        for item_id in [e.id for e in entries] + [r.id for r in records]:
            (result.replaced if item_id in existing else result.added).append(item_id)
        return result

    def count(self) -> dict[str, int]:
        return {name: self._call("count", c.count) for name, c in self._collections.items()}

    # -- plumbing ----------------------------------------------------------------------

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
        return [(i, d, dict(m), float(dist)) for i, d, m, dist in rows if dist <= limit]

    def _call(self, what: str, method: Any, **kwargs: Any) -> Any:
        try:
            return self._send(method, self._embedded(kwargs))
        except (KnowledgeError, EmbeddingError):
            raise
        except Exception as exc:  # chromadb raises many unrelated types; one sentence each
            raise KnowledgeError(f"knowledge base {self.where}: cannot {what}: "
                                 f"{_reason(exc)}") from exc

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


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


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
            "host": parts.hostname or "127.0.0.1", "port": port, "ssl": ssl,
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
