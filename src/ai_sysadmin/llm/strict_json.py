"""JSON as the standard defines it, for what a model or an LLM server sends."""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: a UTF-16 surrogate: in a Python string, only a JSON escape (``"\ud800"``) or bytes decoded
#: with ``surrogatepass`` (as :func:`json.loads` decodes bytes) put one there
_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def readable(text: str) -> str:
    """``text`` with each lone surrogate as U+FFFD (�), a pair of them as the character they
    make. A lone surrogate cannot be written as UTF-8: it raised ``UnicodeEncodeError`` in
    whatever wrote the text next (SQLite, Redis, the next request to the server, a terminal)."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _mend(value: Any) -> Any:
    """``value`` (as :func:`json.loads` made it) with every string :func:`readable`; without
    recursion, as the parser allows nesting up to the stack's limit."""
    if isinstance(value, str):
        return readable(value)
    todo = [value]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            if any(_SURROGATE.search(k) for k in node):
                items = [(readable(k), v) for k, v in node.items()]
                node.clear()
                node.update(items)
            keys: Any = node.keys()
        elif isinstance(node, list):
            keys = range(len(node))
        else:
            continue
        for key in keys:
            item = node[key]
            if isinstance(item, str):
                node[key] = readable(item)
            elif isinstance(item, dict | list):
                todo.append(item)
    return value


def strict_json(text: str | bytes, strict: bool = True) -> Any:
    """JSON as the standard defines it: no NaN or Infinity (Python's json reads them, and
    then refuses to write them back in the next request), no number out of a float's range,
    no nesting deeper than Python's stack: each a :class:`ValueError`; a lone surrogate in a
    string (``"\\ud800"``, which the standard leaves undefined) becomes U+FFFD (:func:`readable`).
    ``strict=False``: raw control characters inside strings pass (as :func:`json.loads` has it)."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite,
                           strict=strict)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    return _mend(value)


def nested_deeper(value: Any, levels: int) -> bool:
    """Whether ``value`` nests objects and lists more than ``levels`` deep (one object: 1);
    without recursion, as it may be as deep as the parser allowed."""
    todo = [(value, 1)]
    while todo:
        node, depth = todo.pop()
        if isinstance(node, dict):
            children: list[Any] = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > levels:
            return True
        todo.extend((child, depth + 1) for child in children
                    if isinstance(child, dict | list))
    return False


#: the most places a JSON object is looked for in a text: an answer of prose holds a few
#: braces, and each look may parse to the text's end
_OBJECTS_TRIED = 64


def first_object(text: str) -> dict[str, Any]:
    """The first JSON object in ``text`` (by :func:`strict_json`'s rules, raw control
    characters in strings let through), where prose or a Markdown fence surrounds it: a
    server that does not hold the model to a schema passes on "Here is my answer:" and
    the like. :class:`ValueError` where there is none."""
    decoder = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite, strict=False)
    at = text.find("{")
    for _ in range(_OBJECTS_TRIED):
        if at < 0:
            break
        try:
            value, _end = decoder.raw_decode(text, at)
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, dict):
            return _mend(value)
        at = text.find("{", at + 1)
    raise ValueError("no JSON object in the text")
