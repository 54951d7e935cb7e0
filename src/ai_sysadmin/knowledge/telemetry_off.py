"""ChromaDB's product telemetry, replaced by nothing.

chromadb 0.6 sends usage events to a hosted service unless told not to, and its own
"disabled" path still calls the posthog client (whose newer versions then log an error per
event). Naming this class as ``chroma_product_telemetry_impl`` keeps every event on the
machine: the assistant talks to nothing but its own hosts and servers.
"""

from __future__ import annotations

from chromadb.telemetry.product import ProductTelemetryClient, ProductTelemetryEvent
from typing_extensions import override

#: the setting's value: this module's class, by dotted path (chromadb imports it)
DOTTED = f"{__name__}.NoTelemetry"


class NoTelemetry(ProductTelemetryClient):
    @override  # chromadb's components refuse an undecorated override
    def capture(self, event: ProductTelemetryEvent) -> None:
        """Drop the event."""
