"""The two systemd units, from the templates in ``packaging/systemd/`` (the NixOS module reads
the same files, so both installs share one set of hardening options)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from .steps import SetupError

#: unit suffix -> template file
TEMPLATES = {"ai": "ai.service.in", "llm-worker": "llm-worker.service.in"}
_PLACEHOLDER = re.compile(r"@([a-z_]+)@")
# a word systemd would split, unquote or expand differently from the path it was given: a
# `$` too, which only Exec*= lines expand (and `$$` undo), while Environment= and
# ReadWritePaths= keep a doubled one as two (a unit that could not start)
_UNSAFE = re.compile(r"[\s\"'\\;$]")


def template_dirs() -> list[Path]:
    """Where the templates are: installed data files (``share/ai-sysadmin/systemd`` of the
    environment), else the source tree this package runs from."""
    return [Path(sys.prefix) / "share" / "ai-sysadmin" / "systemd",
            Path(__file__).resolve().parents[3] / "packaging" / "systemd"]


def find_templates(explicit: Path | None = None) -> Path:
    candidates = [explicit] if explicit else template_dirs()
    for directory in candidates:
        if all((directory / name).is_file() for name in TEMPLATES.values()):
            return directory
    looked = ", ".join(str(d) for d in candidates)
    raise SetupError(f"the systemd unit templates are not in {looked}; name their "
                     "directory (packaging/systemd of the source) with --templates")


def unit_word(text: str) -> str:
    """A path as one word of a unit file: ``%`` doubled so that systemd expands no specifier
    in it (every directive the templates fill undoes that)."""
    if not text or _UNSAFE.search(text):
        raise SetupError(f"{text!r} cannot be written as one word of a unit file (a space, "
                         "quote, backslash, ';' or '$' in it): name a path without one")
    return text.replace("%", "%%")


def read_write_paths(clean_paths: Iterable[str], own: Iterable[str] = ()) -> str:
    """What the daemon's fixes write: the journal (vacuum_journal) and clean_directory's
    directories, then ``own``: its own files outside the state directory (a knowledge
    path, a queue file's directory); ``-``: a path this host lacks is no error."""
    words = ["/var/log/journal", *clean_paths, *own]
    return " ".join("-" + unit_word(p) for p in dict.fromkeys(words))


def fill(template: str, values: Mapping[str, str]) -> str:
    """The template with every ``@key@`` replaced; a placeholder without a value is an error,
    never left in a unit."""
    missing = sorted({m for m in _PLACEHOLDER.findall(template) if m not in values})
    if missing:
        raise SetupError(f"no value for the unit placeholders {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def render_units(directory: Path, name: str, values: Mapping[str, str]) -> dict[str, str]:
    """``{name}-ai.service`` and ``{name}-llm-worker.service`` -> their text."""
    return {f"{name}-{suffix}.service": fill((directory / file).read_text(encoding="utf-8"),
                                             {"name": name, **values})
            for suffix, file in TEMPLATES.items()}
