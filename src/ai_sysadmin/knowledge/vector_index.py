"""Is an embedded store's vector index whole? Looked at before ChromaDB loads it.

An embedded ChromaDB keeps each collection's vectors in an HNSW index of its own, in a segment
directory of the store (``header.bin``, ``data_level0.bin``, ``length.bin``, ``link_lists.bin``,
``index_metadata.pickle``: hnswlib's persistent format, written once a collection holds more
than a thousand vectors). hnswlib reads them without checking what it read: one of them cut
short made a search crash the process (SIGSEGV), or loop on a header it half read, SIGTERM
unheard, or fail with a sentence about numpy. The daemon searched and crashed again after each
restart. So the files are read here first, as far as their layout is plain: the header's
numbers, and every file at least as long as they say; a pickle ends with its STOP opcode.
Damage inside a file of the right length is not seen (reading every link would be hnswlib's own
integrity check, at the cost of reading the whole index).

The vectors are nowhere else: ChromaDB drops its write-ahead log once the index holds them, so
removing the index files loses every vector, not rebuilds them. The documents and metadata
are in ``chroma.sqlite3``, which ``knowledge export`` reads without the index: its export,
imported into a new store, embeds them again.

An index that is whole but holds too few vectors is damage too (:func:`gap`): a segment
directory removed (or ``chroma.sqlite3`` restored without it, a newer one beside an older
index), and ChromaDB makes a new, empty one, fills it with what is left of its write-ahead
log, and a search quietly misses every other record. ChromaDB offers no count of what an
index holds, short of loading it and asking for every record back; its files say it at
once: what the index saved (hnswlib's element count, deleted ones included) and the log's
records past the point the index saved, against the records the collection holds.
"""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

#: the files hnswlib writes for a persistent index, each needed to load it
INDEX_FILES = ("header.bin", "data_level0.bin", "length.bin", "link_lists.bin")
#: what ChromaDB writes beside them each time it saves the index, last: without it, ChromaDB
#: takes a segment directory for an index never saved (and its other files for nothing)
METADATA_FILE = "index_metadata.pickle"
#: hnswlib's header: version (int), offsetLevel0, max_elements, cur_element_count,
#: size_data_per_element, label_offset, offsetData (size_t), maxlevel (int), enterpoint
#: (uint32), maxM, maxM0, M (size_t), mult (double), ef_construction (size_t)
_HEADER = struct.Struct("<iQQQQQQiIQQQdQ")
#: the only persistence version hnswlib writes and reads (it refuses any other)
_VERSION = 1
_PICKLE_STOP = b"."


def damage(store: Path) -> str | None:
    """What is wrong with the first damaged vector index under the embedded store ``store``
    (which file, and how: ``header.bin is 50 bytes, not 100``), or None when every index
    looks whole. The store is moved aside whole: which collection's it is does not matter."""
    try:
        segments = sorted(p for p in store.iterdir() if p.is_dir())
    except OSError:
        return None  # no store yet, or one ChromaDB will say it cannot open
    for segment in segments:
        if why := _segment_damage(segment):
            return why
    return None


def _segment_damage(segment: Path) -> str | None:
    present = [name for name in INDEX_FILES if (segment / name).is_file()]
    if not present and not (segment / METADATA_FILE).is_file():
        return None  # not an index: an index too small to be written yet keeps none
    if not present:
        return f"{', '.join(INDEX_FILES)} missing beside {METADATA_FILE}"
    if missing := [name for name in INDEX_FILES if name not in present]:
        return f"{', '.join(missing)} missing beside {', '.join(present)}"
    try:
        return _files_damage(segment)
    except OSError as exc:
        return f"{Path(str(exc.filename or '')).name}: cannot be read: {exc.strerror or exc}"


def _files_damage(segment: Path) -> str | None:
    raw = (segment / "header.bin").read_bytes()
    if len(raw) != _HEADER.size:
        return f"header.bin is {len(raw)} bytes, not {_HEADER.size}"
    (version, _, max_elements, count, per_element, label_offset, data_offset, max_level,
     entry, max_m, max_m0, _m, _, _) = _HEADER.unpack(raw)
    if version != _VERSION:
        return f"header.bin says persistence version {version}, not {_VERSION}"
    if not (count <= max_elements and data_offset < label_offset < per_element
            and -1 <= max_level < 64 and max_m > 0 and max_m0 > 0
            and (count == 0 or entry < count)):
        return "header.bin holds numbers no index has (element count, sizes, levels)"
    sizes = {name: (segment / name).stat().st_size for name in INDEX_FILES}
    for name, needed in (("data_level0.bin", count * per_element),
                         ("length.bin", count * 4)):
        if sizes[name] < needed:
            return (f"{name} is {sizes[name]} bytes, its {count} elements need {needed}")
    if why := _links_damage(segment / "link_lists.bin", count, max_m * 4 + 4, max_level):
        return why
    metadata = segment / METADATA_FILE
    if metadata.is_file():
        with metadata.open("rb") as handle:
            handle.seek(0, 2)
            if handle.tell() == 0 or (handle.seek(-1, 2), handle.read(1))[1] != _PICKLE_STOP:
                return "index_metadata.pickle is cut short"
    return None


def _links_damage(path: Path, count: int, per_level: int, max_level: int) -> str | None:
    """link_lists.bin holds, for each element in turn, the byte size of its links above
    level 0 (a uint32) and then those links: whole levels, no more of them than the index."""
    data = path.read_bytes()
    at = 0
    for element in range(count):
        if at + 4 > len(data):
            return f"link_lists.bin ends at element {element} of {count}"
        (size,) = struct.unpack_from("<I", data, at)
        at += 4 + size
        if size % per_level or size // per_level > max_level:
            return f"link_lists.bin gives element {element} links of {size} bytes"
        if at > len(data):
            return f"link_lists.bin ends in the links of element {element} of {count}"
    return None


#: each collection's vector segment, its metadata segment (whose rows are the records), and
#: the point in the write-ahead log the vector segment saved its index at (none: never saved,
#: it reads the whole log); ChromaDB 0.6's tables
_SEGMENTS = """
SELECT c.id, c.name, v.id, m.id, s.seq_id
FROM collections c
JOIN segments v ON v.collection = c.id AND v.scope = 'VECTOR'
JOIN segments m ON m.collection = c.id AND m.scope = 'METADATA'
LEFT JOIN max_seq_id s ON s.segment_id = v.id
"""
_RECORDS = "SELECT COUNT(*) FROM embeddings WHERE segment_id = ?"
#: the log's records past the saved point, each id once: an upper bound of what it adds
_LOGGED = ("SELECT COUNT(DISTINCT id) FROM embeddings_queue "
           "WHERE seq_id > ? AND topic LIKE '%/' || ?")


def gap(store: Path) -> str | None:
    """Which collection's vector index holds fewer vectors than it has records (``the
    index of 'knowledge' holds vectors for at most 202 of its 1201 records``), or None
    when none does, or ``store`` is no store this can read (ChromaDB says what is wrong).

    Read in this order, a write of another process in between errs to the safe side: the
    database (one snapshot) first; ChromaDB writes an index's files before the point it saved
    them at, and drops the log only after, so files read later hold at least as much."""
    database = store / "chroma.sqlite3"
    if not database.is_file():
        return None
    try:
        counts = _counts(database)
    except (sqlite3.Error, ValueError):
        return None  # not the tables this ChromaDB keeps: its own open says what is wrong
    for name, segment, records, logged in counts:
        saved = _saved(store / segment)
        if saved is not None and saved + logged < records:
            return (f"the index of {name!r} holds vectors for at most {saved + logged} of its "
                    f"{records} records")
    return None


def _counts(database: Path) -> list[tuple[str, str, int, int]]:
    """(collection, its vector segment, records, the log's ids past the saved point)."""
    conn = sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        with conn:
            conn.execute("BEGIN")  # one snapshot of every table
            found = []
            for collection, name, vector, metadata, seq in conn.execute(_SEGMENTS).fetchall():
                (records,) = conn.execute(_RECORDS, (metadata,)).fetchone()
                after = -1 if seq is None else _seq_id(seq)
                (logged,) = conn.execute(_LOGGED, (after, collection)).fetchone()
                found.append((str(name), str(vector), int(records), int(logged)))
            return found
    finally:
        conn.close()


def _seq_id(value: bytes | int) -> int:
    # ChromaDB stores it big-endian in 8 or 24 bytes (an integer in older stores)
    if isinstance(value, int):
        return value
    if isinstance(value, bytes) and len(value) in (8, 24):
        return int.from_bytes(value, "big")
    raise ValueError(f"a log position {value!r}")


def _saved(segment: Path) -> int | None:
    """How many vectors the saved index in ``segment`` holds at most: 0 where ChromaDB saved
    none (it ignores index files without :data:`METADATA_FILE`); None where its header cannot
    be read (:func:`damage` says what is wrong with it)."""
    if not (segment / METADATA_FILE).is_file():
        return 0
    try:
        raw = (segment / "header.bin").read_bytes()
    except OSError:
        return None
    if len(raw) != _HEADER.size:
        return None
    return int(_HEADER.unpack(raw)[3])
