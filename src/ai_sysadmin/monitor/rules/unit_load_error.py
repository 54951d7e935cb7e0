from __future__ import annotations

import re
from collections.abc import Sequence

from ..findings import Finding, Severity, quote
from ..snapshot import UNIT_FILE_BAD, UNIT_FILE_NOT_FOUND, JournalEntry
from .base import Rule, RuleContext

#: LoadState values meaning the unit file itself is broken (not merely absent)
BROKEN_LOAD_STATES = frozenset({"error", "bad-setting"})
#: systemd's parse warnings name the file and line: ``/etc/systemd/system/x.service:3: ...``
_PARSE_WARNING = re.compile(r"^\[?(?P<path>/\S+?/(?P<unit>[^/\s:\]]+)):\d+\]?:? ")
#: parse warnings come from the service manager itself
_MANAGERS = frozenset({"systemd", "init.scope"})


class UnitLoadError(Rule):
    """A unit file systemd cannot load: a loaded unit says so with its LoadState; a file
    nothing refers to is not loaded at all, and only ``list-unit-files`` (state ``bad``)
    tells. systemd's own parse warnings about the file, when the journal has them, are the
    evidence of why.

    ``bad`` is also what list-unit-files says of a link whose target is gone; asked about
    it, systemd finds no file (``not-found``, UNIT_FILE_NOT_FOUND): there is no file to
    parse, so it is a note that says what it is, not a failure to load."""

    name = "unit_load_error"
    requires = ("units", "unit_files")
    description = ("A unit file fails to load (LoadState=error or bad-setting, or unit file "
                   "state bad); a note for a unit file that is a link to a missing file.")
    subject_is_unit = True

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        warnings = _parse_warnings(ctx.window)
        broken = {unit.name: (unit.load, f"{unit.name}: LoadState={unit.load} "
                                         f"active={unit.active}")
                  for unit in ctx.snapshot.units or [] if unit.load in BROKEN_LOAD_STATES}
        dangling = []
        for name, state in sorted((ctx.snapshot.unit_files or {}).items()):
            if state == UNIT_FILE_BAD and name not in broken:
                broken[name] = (state, f"{name}: unit file state {state} (not loaded)")
            elif state == UNIT_FILE_NOT_FOUND and name not in broken:
                dangling.append(self.finding(
                    ctx, name, Severity.INFO,
                    f"the unit file of {name} is a link to a missing file",
                    [f"{name}: unit file state {UNIT_FILE_BAD}, yet systemd finds no file "
                     f"for it (LoadState={UNIT_FILE_NOT_FOUND}): a link whose target is gone"]))
        return [
            *(self.finding(
                ctx, name, Severity.CRITICAL,
                f"the unit file of {name} does not load ({state})",
                [line, *warnings.get(name, [])],
            )
            for name, (state, line) in broken.items()),
            *dangling,
        ]


def _parse_warnings(entries: Sequence[JournalEntry], per_unit: int = 3) -> dict[str, list[str]]:
    """systemd's last warnings about each unit file, quoted."""
    found: dict[str, list[str]] = {}
    for entry in entries:
        if entry.source not in _MANAGERS and entry.identifier not in _MANAGERS:
            continue
        match = _PARSE_WARNING.match(entry.message)
        if match:
            found.setdefault(match["unit"], []).append(f"systemd: {quote(entry.message, 200)}")
    return {unit: lines[-per_unit:] for unit, lines in found.items()}
