"""The seed knowledge shipped with the package (``seed.toml``): systemd, journald, disks,
NixOS, common services.

``seed_entries()`` reads it (provenance ``seed``, source ``seed``); ``seed_if_empty(kb)``
loads it into a knowledge base that has no entries yet and returns how many it added, so an
operator who removed a seed entry does not see it come back.
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


def seed_entries(path: Path = SEED_FILE) -> list[KnowledgeEntry]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [KnowledgeEntry(provenance="seed", source="seed", verified=False,
                           confidence=item.pop("confidence", SEED_CONFIDENCE),
                           created_at=SEED_CREATED_AT, **item)
            for item in data["entry"]]


def seed_if_empty(kb: KnowledgeBase) -> int:
    if kb.count()["knowledge"]:
        return 0
    entries = seed_entries()
    kb.add_many(entries)
    return len(entries)
