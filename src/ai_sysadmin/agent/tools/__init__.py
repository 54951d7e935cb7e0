"""The registry of every tool the model may call; each module registers its tools here."""

from __future__ import annotations

from ..registry import ToolRegistry

REGISTRY = ToolRegistry()

# registration happens on import; the order is the order the model reads them in
from . import incident, system, files, network, commands, proposals, output  # noqa: E402,F401,I001
from . import knowledge  # noqa: E402,F401


__all__ = ["REGISTRY"]
