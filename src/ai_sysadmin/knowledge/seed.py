"""The seed knowledge shipped with the package (``seed.toml``): systemd, journald, disks,
NixOS, common services.

``seed_entries()`` reads it (provenance ``seed``, source ``seed``); ``seed_once(kb)`` loads
it into a knowledge base never seeded before, notes that it did (with :data:`SEED_VERSION`),
and returns how many it added, so an operator who removed seed entries, every one of them
included, does not see them come back.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from .models import KnowledgeEntry

if TYPE_CHECKING:
    from .store import KnowledgeBase

SEED_FILE = Path(__file__).parent / "seed.toml"
#: written by people for people: trusted, but never the final word over a verified fix
SEED_CONFIDENCE = 0.7
#: a fixed time, so a seed entry's created_at says "shipped", not "loaded at"
SEED_CREATED_AT = 0.0
#: noted in a store when it is seeded: a later seed.toml could add its new notes to stores of
#: an older version (nothing does yet)
SEED_VERSION = 1


def seed_entries(path: Path = SEED_FILE) -> list[KnowledgeEntry]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [KnowledgeEntry(provenance="seed", source="seed", verified=False,
                           confidence=item.pop("confidence", SEED_CONFIDENCE),
                           created_at=SEED_CREATED_AT, **item)
            for item in data["entry"]]


def seed_once(kb: KnowledgeBase) -> int:
    if kb.seeded() is not None:
        return 0
    if kb.count()["knowledge"]:
        # seeded by a version that noted nothing, or filled by hand with the seed off: either
        # way its owner has what they want
        kb.mark_seeded(SEED_VERSION)
        return 0
    entries = seed_entries()
    kb.add_many(entries)
    # after the entries (one call): a seed that failed is tried again at the next open
    kb.mark_seeded(SEED_VERSION)
    return len(entries)
