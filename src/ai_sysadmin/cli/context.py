"""What every command needs: the loaded settings, the store, consoles that honour --json."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ..config import LoadedSettings, Settings, load_settings
from ..store import Database, IncidentStore

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


@dataclass
class AppState:
    config_path: Path | None = None
    _loaded: LoadedSettings | None = field(default=None, repr=False)

    @property
    def loaded(self) -> LoadedSettings:
        if self._loaded is None:
            self._loaded = load_settings(self.config_path)
        return self._loaded

    @property
    def settings(self) -> Settings:
        return self.loaded.settings

    @cached_property
    def store(self) -> IncidentStore:
        return IncidentStore(Database(self.settings.db_path))


def state(ctx: typer.Context) -> AppState:
    obj = ctx.find_root().obj
    if not isinstance(obj, AppState):
        obj = AppState()
        ctx.find_root().obj = obj
    return obj


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def banner(settings: Settings, what: str) -> None:
    out.print(f"[bold]{settings.ai_name}[/bold] · {what}")
