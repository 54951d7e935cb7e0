"""systemd unit names, validated by systemd's own naming rules (pure).

The rules are those of ``unit_name_is_valid()`` in systemd's ``src/basic/unit-name.c``:

* at most 255 characters, suffix included;
* the suffix after the last dot is a unit type (``service``, ``socket``, ...);
* before it only ``[A-Za-z0-9:_.\\-]`` and ``@``; the first ``@`` ends the prefix, which
  must not be empty; ``prefix@.type`` is a template, ``prefix@instance.type`` an instance
  (the instance may hold further ``@``);
* ``\\xNN`` is how ``systemd-escape`` writes other bytes: the backslash is a valid character.

Anything else (whitespace, ``/``, NUL, non-ASCII look-alikes such as a Cyrillic ``ѕ``) makes
the name invalid: it is refused as invalid, never taken for some other unit.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from ..redact import redact_cut

UNIT_TYPES = ("service", "socket", "target", "timer", "mount", "automount", "swap", "path",
              "slice", "scope", "device")
UNIT_NAME_MAX = 255
VALID_CHARS = frozenset(string.ascii_letters + string.digits + ":-_.\\")
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


@dataclass(frozen=True)
class UnitName:
    prefix: str
    #: None for a plain unit, "" for a template (``sshd@.service``), else the instance
    instance: str | None
    type: str

    @property
    def full(self) -> str:
        at = "" if self.instance is None else f"@{self.instance}"
        return f"{self.prefix}{at}.{self.type}"

    @property
    def is_template(self) -> bool:
        return self.instance == ""

    @property
    def is_instance(self) -> bool:
        return bool(self.instance)

    @property
    def template(self) -> str | None:
        """``sshd@1.service`` -> ``sshd@.service``; None for a plain unit."""
        return None if self.instance is None else f"{self.prefix}@.{self.type}"


def _describe(char: str) -> str:
    if char == "\x00":
        return "a NUL byte"
    if not char.isascii():
        return f"the non-ASCII character U+{ord(char):04X} (look-alike letters are invalid)"
    if not char.isprintable():
        return f"the control character {char!r}"
    if char.isspace():
        return "whitespace"
    return f"the character {char!r}"


def unit_problem(name: object) -> str | None:
    """Why ``name`` (with its type suffix) is not a valid unit name by systemd's rules; None
    when it is valid."""
    if not isinstance(name, str):
        return "a unit name must be text"
    if not name:
        return "a unit name cannot be empty"
    if len(name) > UNIT_NAME_MAX:
        return f"a unit name has {UNIT_NAME_MAX} characters at most (this has {len(name)})"
    for char in name:
        if char not in VALID_CHARS and char != "@":
            return f"unit name {redact_cut(name, 60)!r} has {_describe(char)}"
    base, dot, suffix = name.rpartition(".")
    if not dot or not base:
        return f"unit name {name!r} has no type suffix ({', '.join(UNIT_TYPES)})"
    if suffix not in UNIT_TYPES:
        return f"unit name {name!r} ends in {suffix!r}, not a unit type ({', '.join(UNIT_TYPES)})"
    if base.startswith("@"):
        return f"unit name {name!r} has an empty prefix before '@'"
    return None


def parse_unit(name: str) -> UnitName:
    """Split a valid full unit name; ValueError with the reason when it is invalid."""
    problem = unit_problem(name)
    if problem is not None:
        raise ValueError(problem)
    base, _, suffix = name.rpartition(".")
    prefix, at, instance = base.partition("@")
    return UnitName(prefix, instance if at else None, suffix)


def mangle(name: str) -> str:
    """What ``systemctl`` does to a name without a type suffix: append ``.service``."""
    base, dot, suffix = name.rpartition(".")
    if dot and base and suffix in UNIT_TYPES:
        return name
    return f"{name}.service"


def normalise_unit(name: str) -> str | None:
    """``nginx`` -> ``nginx.service``; None when the name is not a valid unit name.

    Stricter than systemd in two ways, because the name goes on a command line: no leading
    ``-`` (it would read as an option; ``-.slice`` is still known to :func:`unit_problem`) and
    no leading ``.``.
    """
    if not isinstance(name, str) or not name or name[0] in "-.":
        return None
    full = mangle(name)
    return full if unit_problem(full) is None else None


def unescape(text: str) -> str:
    """``systemd-escape``'s ``\\xNN`` back to characters (``ssh\\x64`` -> ``sshd``)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
