"""A config file with every key of :class:`~ai_sysadmin.config.Settings`, written from the
declaration itself (names, descriptions, defaults), so it cannot drift from what the daemon
accepts. The keys given are set; every other one is a comment showing its default."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ..config import Settings

WIDTH = 98


def sample_config(active: Mapping[str, Any]) -> str:
    """The commented config text; ``active`` maps dotted keys (``queue.embedded_worker``) to the
    values written uncommented. Raises pydantic's ValidationError on a value Settings refuses."""
    settings = Settings.model_validate(_nested(active))
    values = settings.model_dump(mode="json")
    lines = [
        f"# ai-sysadmin configuration of {settings.ai_name!r}, written by `ai-sysadmin setup`.",
        "# Every key is listed with its description; a commented key shows its default.",
        "# `ai-sysadmin config show` prints the effective value of each and where it comes from.",
        "",
    ]
    lines += _keys(Settings, values, active, "")
    for name, info in Settings.model_fields.items():
        section = _section(info)
        if section is not None:
            lines += ["", f"[{name}]", *_comment(info.description)]
            lines += _keys(section, values[name], active, f"{name}.")
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    """One TOML value for what ``model_dump(mode="json")`` gives (no None: TOML has no null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes are TOML's, except that TOML refuses a raw DEL and surrogate escapes
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{k} = {toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"no TOML form for {value!r}")


def _keys(model: type[BaseModel], values: Mapping[str, Any], active: Mapping[str, Any],
          prefix: str) -> list[str]:
    lines: list[str] = []
    for name, info in model.model_fields.items():
        if _section(info) is not None:
            continue
        value = values[name]
        lines += _comment(info.description)
        if f"{prefix}{name}" in active:
            lines.append(f"{name} = {toml_value(value)}")
        elif value is None:
            lines.append(f"# {name} =   (not set)")
        else:
            lines.append(f"# {name} = {toml_value(value)}")
    return lines


def _section(info: FieldInfo) -> type[BaseModel] | None:
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _comment(text: str | None) -> list[str]:
    if not text:
        return []
    return ["# " + line for line in textwrap.wrap(text, WIDTH - 2)]


def _nested(dotted: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out
