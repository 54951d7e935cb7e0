"""Findings: what a rule concluded, with quoted evidence and a stable fingerprint."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from ..redact import ESCAPES, redact


class Severity(IntEnum):
    INFO = 10
    WARNING = 20
    CRITICAL = 30

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.upper()]

    @classmethod
    def rank_of(cls, text: str | None) -> int:
        """A stored severity's rank (its value), 0 for none or one no release writes."""
        found = cls.__members__.get((text or "").upper())
        return 0 if found is None else int(found)


@dataclass(frozen=True, slots=True)
class Finding:
    host: str
    rule: str
    subject: str
    severity: Severity
    summary: str
    evidence: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.host, self.rule, self.subject)

    def to_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "rule": self.rule,
            "subject": self.subject,
            "severity": self.severity.label,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "fingerprint": self.fingerprint,
        }


def fingerprint(host: str, rule: str, subject: str) -> str:
    return f"{host}|{rule}|{subject}"


#: Unicode's format characters (category Cf), which show as nothing: the bidirectional
#: controls (marks, embeddings, overrides, isolates), with which a host's text shows in
#: another order than it is written ("\u202eecivres.xnign" reads "nginx.service" in a
#: browser, Gotify's app or a terminal that lays out bidirectional text); zero-width spaces
#: and joiners, soft hyphens; and the tag characters (U+E0000-E007F), in which a journal
#: message carried an instruction the model read and no person could see. Spelled out (a
#: test holds them to this Python's Unicode): computed, they cost every command's start
_FORMAT = ("\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
           "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd"
           "\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
           "\U000e0001\U000e0020-\U000e007f")
#: C0 and C1 controls but newline and tab, and the format characters
_CONTROL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_FORMAT}]")


def strip_control(text: str) -> str:
    """Host text without terminal escapes, control characters (newlines and tabs kept) or
    format characters (:data:`_CONTROL`)."""
    # escapes whole (an OSC title's text with it), as the masking reads them
    return _CONTROL.sub("", ESCAPES.sub("", text))


def readable(text: str) -> str:
    """Host text as masking must read it: :func:`strip_control`'s, but NUL read as the
    separator it is in ``/proc/PID/cmdline`` and ``environ`` (as :func:`redact` reads it):
    removed, it joined ``--password`` to the value after it into one word, masked as none."""
    return strip_control(text.replace("\x00", " "))


def masked(text: str) -> str:
    """Host or model text shown whole (a request's error, a server's words): no terminal
    escapes or control characters, no secret values; its lines kept. Stripped before it is
    masked: a control character inside a secret's name (``DB_PASS\bWORD=x``) hid the name
    from the masking, and stripped after, it joined it again around a value in clear."""
    return redact(readable(text))


def one_line(text: str) -> str:
    """``text`` on one line: each line break :meth:`str.splitlines` knows (U+2028, U+2029,
    NEL and the rest, not only a line feed) a space. A reader (the model) may take any of them
    for a new line, and a stored note's own line could pose as the program's next item."""
    return " ".join(text.splitlines())


def quote(text: str, limit: int = 300) -> str:
    """Evidence is untrusted host text: no terminal escapes, no secret values, one line,
    bounded."""
    flat = " ".join(masked(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def not_collected(errors: Mapping[str, str], limit: int = 300) -> str:
    """The sections a check could not collect, and why, as one bounded line of quoted host
    text: those that failed alike named once before their error ("disk, inodes: df: not
    found; units: ...")."""
    alike: dict[str, list[str]] = {}
    for section, why in sorted(errors.items()):  # in the same order at every check
        alike.setdefault(why, []).append(section)
    return quote("; ".join(f"{', '.join(names)}: {why}" for why, names in alike.items()),
                 limit)


def program(command: str) -> str:
    """The program a command line runs, by its file name (what a person calls the process);
    for one without a command line, the name ps shows in brackets (a kernel thread)."""
    if command.startswith("["):
        return command[1:].partition("]")[0]
    words = command.split()
    return words[0].rsplit("/", 1)[-1] if words else ""


def automation_may_touch(unit: str) -> bool:
    """Whether an incident about ``unit`` may make it the unit automation restarts: a scope (a
    login session, a desktop app) is nothing systemd can start again, and a user's manager
    (``user@UID.service``) is that user's whole session."""
    return not unit.endswith(".scope") and not unit.startswith("user@")


def process_subject(unit: str | None, pid: int) -> str:
    """A process's finding is about the service it runs in; else its pid (the incident's
    unit is the one automation may touch)."""
    if unit and unit.endswith(".service") and automation_may_touch(unit):
        return unit
    return f"pid:{pid}"


def in_unit(unit: str | None) -> str:
    return f" in {unit}" if unit else ""


def size(count: int) -> str:
    """Bytes as a person reads them (binary units, as df -h): ``41.2 GiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def percent(value: float) -> str:
    """Rounded down to 0.1 so that 94.96 never reads as the 95 % critical threshold."""
    text = f"{math.floor(value * 10) / 10:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"
