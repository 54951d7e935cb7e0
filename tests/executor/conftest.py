"""Fixtures of the executor's tests."""

from __future__ import annotations

import pytest

from ai_sysadmin.config import Settings


@pytest.fixture
def quick(settings: Settings) -> Settings:
    """Verifications that end at once: settled at the first look, a second at most."""
    return settings.model_copy(update={"safety": settings.safety.model_copy(
        update={"verify_settle_seconds": 0, "verify_timeout": 1})})
