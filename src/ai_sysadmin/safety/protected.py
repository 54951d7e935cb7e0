"""Protected units: never stopped, masked, disabled or killed by automation (pure).

A unit is protected when its prefix (the name before ``@`` or the type suffix) belongs to one
of the alias groups below, so ``ssh``, ``sshd.service``, ``sshd.socket``, ``sshd@.service`` and
``sshd@3-10.0.0.1:22.service`` are all the same protected thing. Look-alikes are protected
too: systemd names are case-sensitive and ``\\xNN`` escapes are literal, so ``SSHD.service`` or
``ssh\\x64.service`` name other units, but a unit that reads like a protected one still needs a
person. Invalid names (Cyrillic letters, whitespace, ``/``, NUL ...) are refused as invalid.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from ..redact import redact_cut
from .units import UNIT_NAME_MAX, VALID_CHARS, UnitName, mangle, parse_unit, unescape, unit_problem

#: alias groups: every name in a group is the same service to a person
ALIAS_GROUPS: dict[str, frozenset[str]] = {
    "remote access (ssh/sshd)": frozenset({"ssh", "sshd", "openssh", "openssh-server"}),
    "networking (systemd-networkd)": frozenset({"systemd-networkd", "networkd"}),
    "networking (NetworkManager)": frozenset({"NetworkManager", "network-manager"}),
    "networking (ifupdown/network scripts)": frozenset({"networking", "network"}),
    "name resolution (systemd-resolved)": frozenset({"systemd-resolved", "resolved"}),
    "the system bus (dbus)": frozenset({"dbus", "dbus-broker", "dbus-daemon", "messagebus"}),
    "the journal (systemd-journald)": frozenset({
        "systemd-journald", "journald", "systemd-journald-dev-log", "systemd-journald-audit",
        "systemd-journald-varlink", "systemd-journal-flush"}),
    "logins (systemd-logind)": frozenset({"systemd-logind", "logind"}),
}

#: whole units that are the system itself
SYSTEM_UNITS: dict[str, str] = {
    "init.scope": "systemd itself (PID 1)",
    "-.slice": "the root slice: every unit",
    "system.slice": "the slice of every system service",
    "user.slice": "the slice of every login session",
    "machine.slice": "the slice of every VM and container",
    "-.mount": "the root file system",
}

#: the assistant's own services: any unit whose name starts with this
OWN_PREFIX = "ai-sysadmin"

#: the base set, for people and documentation: one example name per rule
PROTECTED_BASE: frozenset[str] = frozenset(
    {f"{name}.service" for names in ALIAS_GROUPS.values() for name in names}
    | set(SYSTEM_UNITS)
    | {"systemd-journald.socket", "systemd-journald-dev-log.socket",
       "systemd-journald-audit.socket", "dbus.socket", "sshd.socket", "ssh.socket",
       "sshd@.service", "systemd-networkd.socket", f"{OWN_PREFIX}.service", "*.target"}
)

_GROUP_OF: dict[str, str] = {name: label for label, names in ALIAS_GROUPS.items()
                             for name in names}
_GROUP_OF_FOLDED: dict[str, str] = {name.casefold(): label for name, label in _GROUP_OF.items()}
_GLOB = frozenset("*?[")


def _base_reason(unit: UnitName) -> str | None:
    if unit.type == "target":
        return "a target: boot, shutdown and system states"
    if unit.full in SYSTEM_UNITS:
        return SYSTEM_UNITS[unit.full]
    if unit.prefix.startswith(OWN_PREFIX):
        return "the assistant's own service"
    return _GROUP_OF.get(unit.prefix)


def _lookalike_reason(unit: UnitName) -> str | None:
    """The same name once ``\\xNN`` escapes and case are set aside."""
    plain = unescape(unit.full)
    if plain != unit.full and unit_problem(plain) is None:
        reason = _base_reason(parse_unit(plain))
        if reason:
            return reason
    folded = unescape(unit.prefix).casefold()
    if folded.startswith(OWN_PREFIX):
        return "the assistant's own service"
    return _GROUP_OF_FOLDED.get(folded) or SYSTEM_UNITS.get(f"{folded}.{unit.type}")


def _fold(prefix: str) -> str:
    return unescape(prefix).casefold()


def _configured(unit: UnitName, entry: str) -> bool:
    if _GLOB & set(entry):
        stem = unit.full.rpartition(".")[0]
        return fnmatch.fnmatchcase(unit.full, entry) or fnmatch.fnmatchcase(stem, entry)
    wanted = parse_unit(mangle(entry))
    if wanted.is_instance:  # one instance only: sshd@1.service protects just that one
        return _fold(unit.full) == _fold(wanted.full)
    # a plain name or a template protects every instance, of every type (db.socket too)
    return _fold(unit.prefix) == _fold(wanted.prefix)


_PATTERN_CHARS = VALID_CHARS | frozenset("@*?[]!")


def configured_problem(entry: object) -> str | None:
    """Why a configured protected unit (``safety.protected_units``) cannot be used. An entry
    is a unit name, with or without its suffix, a template, or a glob such as
    ``postgresql*``."""
    if not isinstance(entry, str) or not entry:
        return "an entry must be a non-empty unit name"
    if _GLOB & set(entry):
        if len(entry) > UNIT_NAME_MAX or not set(entry) <= _PATTERN_CHARS:
            return f"{redact_cut(entry, 60)!r} is not a valid unit name pattern"
        return None
    return unit_problem(mangle(entry))


def protected_reason(unit: str, extra: Iterable[str] = ()) -> str | None:
    """Why ``unit`` is protected, in words a person reads; None when it is not protected.

    ``unit`` may lack its type suffix (``ssh`` means ``ssh.service``, as for systemctl).
    ``extra``: configured unit names, also alias- and template-aware, or globs. An invalid
    ``unit`` is never "not protected": the reason says why it is invalid. An invalid entry in
    ``extra`` makes every unit protected (fail closed) with a reason that names the entry.
    """
    problem = unit_problem(unit if not isinstance(unit, str) or not unit else mangle(unit))
    if problem is not None:
        return f"not a valid unit name: {problem}"
    parsed = parse_unit(mangle(unit))
    reason = _base_reason(parsed)
    if reason:
        return reason
    lookalike = _lookalike_reason(parsed)
    if lookalike:
        return f"looks like a protected unit: {lookalike}"
    for entry in (extra,) if isinstance(extra, str) else extra:
        bad = configured_problem(entry)
        if bad is not None:
            return (f"the configured protected units hold an invalid entry ({bad}); "
                    f"fix safety.protected_units")
        if _configured(parsed, entry):
            return f"configured as protected ({entry})"
    return None
