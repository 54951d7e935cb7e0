"""JSON as the standard defines it, for what a model or an LLM server sends."""

from __future__ import annotations

import json
import math
from typing import Any


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def strict_json(text: str | bytes, strict: bool = True) -> Any:
    """JSON as the standard defines it: no NaN or Infinity (Python's json reads them, and
    then refuses to write them back in the next request), no number out of a float's range,
    no nesting deeper than Python's stack: each a :class:`ValueError`. ``strict=False``: raw
    control characters inside strings pass (as :func:`json.loads` has it)."""
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite,
                          strict=strict)
    except RecursionError:
        raise ValueError("nested too deeply") from None
