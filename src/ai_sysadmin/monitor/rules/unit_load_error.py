from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence

from ..findings import Finding, Severity, quote
from ..snapshot import (
    UNIT_FILE_BAD,
    UNIT_FILE_HIDING,
    UNIT_FILE_NOT_FOUND,
    UNIT_FILE_PASSED_OVER,
    HiddenUnitFile,
    JournalEntry,
)
from .base import Rule, RuleContext

#: LoadState values meaning the unit file itself is broken (not merely absent)
BROKEN_LOAD_STATES = frozenset({"error", "bad-setting"})
#: systemd's parse warnings name the file and line: ``/etc/systemd/system/x.service:3: ...``,
#: or a drop-in's (``/etc/systemd/system/x.service.d/override.conf:3: ...``)
_PARSE_WARNING = re.compile(
    r"^\[?/(?:\S+?/)?(?:(?P<dir>[^/\s:\]]+)/)?(?P<file>[^/\s:\]]+):\d+\]?:? ")
#: parse warnings come from the service manager itself
_MANAGERS = frozenset({"systemd", "init.scope"})


class UnitLoadError(Rule):
    """A unit file systemd cannot load: a loaded unit says so with its LoadState; a file
    nothing refers to is not loaded at all, and only ``list-unit-files`` (state ``bad``)
    tells. systemd's own parse warnings about the file, when the journal has them, are the
    evidence of why.

    ``bad`` is also what list-unit-files says of a link whose target is gone; asked about
    it, systemd finds no file (``not-found``, UNIT_FILE_NOT_FOUND): there is no file to
    parse, so it is a note that says what it is, not a failure to load. Unless the link
    takes the name of a file in a directory systemd reads later (most often the one the OS
    shipped in /usr/lib/systemd/system): systemd stops at the link and loads nothing, so
    that unit is gone though its file is there, a warning naming both. Where systemd loads
    the unit all the same (it passed over the entry for a file of its name further on), the
    entry is a stray: a note, never "does not load"."""

    name = "unit_load_error"
    requires = ("units", "unit_files")
    description = ("A unit file fails to load (LoadState=error or bad-setting, or unit file "
                   "state bad); a warning for a link to a missing file that hides a unit "
                   "file of its name; a note for any other link to a missing file.")
    subject_is_unit = True

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        warnings = _parse_warnings(ctx.window)
        broken = {unit.name: (unit.load, f"{unit.name}: LoadState={unit.load} "
                                         f"active={unit.active}")
                  for unit in ctx.snapshot.units or [] if unit.load in BROKEN_LOAD_STATES}
        links = []
        hidden = ctx.snapshot.hidden_unit_files
        for name, state in sorted((ctx.snapshot.unit_files or {}).items()):
            if name in broken:
                continue
            if state == UNIT_FILE_BAD:
                broken[name] = (state, f"{name}: unit file state {state} (not loaded)")
            elif state == UNIT_FILE_HIDING and name in hidden:
                links.append(self._hiding(ctx, name, hidden[name]))
            elif state == UNIT_FILE_PASSED_OVER:
                links.append(self.finding(
                    ctx, name, Severity.INFO,
                    f"a stray entry for {name}'s unit file, which loads all the same",
                    [f"{name}: unit file state {UNIT_FILE_BAD}, yet systemd loads the unit "
                     "(LoadState=loaded): it passed over that entry (a link whose target is "
                     "no unit file name) for another file of its name"]))
            elif state in (UNIT_FILE_NOT_FOUND, UNIT_FILE_HIDING):
                links.append(self.finding(
                    ctx, name, Severity.INFO,
                    f"the unit file of {name} is a link to a missing file",
                    [f"{name}: unit file state {UNIT_FILE_BAD}, yet systemd finds no file "
                     f"for it (LoadState={UNIT_FILE_NOT_FOUND}): a link whose target is gone"]))
        return [
            *(self.finding(
                ctx, name, Severity.CRITICAL,
                f"the unit file of {name} does not load ({state})",
                [line, *_warnings_of(name, warnings)],
            )
            for name, (state, line) in broken.items()),
            *links,
        ]

    def _hiding(self, ctx: RuleContext, name: str, paths: HiddenUnitFile) -> Finding:
        link, hidden = quote(paths.link, 200), quote(paths.hidden, 200)
        return self.finding(
            ctx, name, Severity.WARNING,
            f"{name} cannot load: {link}, a link to a missing file, hides {hidden}",
            [f"{name}: LoadState={UNIT_FILE_NOT_FOUND}, though {hidden} exists: systemd "
             f"reads {link} first, a link whose target is gone, and looks no further",
             f"systemd-delta: [REDIRECTED] {link} -> {hidden}"])


def _parse_warnings(entries: Sequence[JournalEntry],
                    per_unit: int = 3) -> dict[str, deque[tuple[int, str]]]:
    """systemd's last warnings about each unit's files, by the unit (or template) they
    configure, each with its place in the journal."""
    found: dict[str, deque[tuple[int, str]]] = {}
    for at, entry in enumerate(entries):
        if entry.source not in _MANAGERS and entry.identifier not in _MANAGERS:
            continue
        match = _PARSE_WARNING.match(entry.message)
        if match:
            found.setdefault(_configures(match["dir"], match["file"]),
                             deque(maxlen=per_unit)).append((at, entry.message))
    return found


def _configures(directory: str | None, file: str) -> str:
    """The unit a file systemd parsed is of: a drop-in (``x.service.d/override.conf``, what
    ``systemctl edit`` writes) configures x.service."""
    if directory is not None and directory.endswith(".d") and file.endswith(".conf"):
        return directory[:-2]
    return file


def _warnings_of(name: str, found: dict[str, deque[tuple[int, str]]],
                 per_unit: int = 3) -> list[str]:
    """The last warnings about a unit's files, quoted: its own and its template's (an
    instance, ``getty@tty7.service``, is loaded from ``getty@.service``, which systemd names).
    Only those kept are quoted: systemd warns of every bad line of every file at each
    reload, and masking each of 4000 warnings cost a check 74 ms, where 1200 were kept."""
    prefix, at, rest = name.partition("@")
    keys = [name, f"{prefix}@.{rest.rpartition('.')[2]}"] if at and rest else [name]
    messages = sorted(warning for key in keys for warning in found.get(key, ()))
    return [f"systemd: {quote(message, 200)}" for _, message in messages[-per_unit:]]
