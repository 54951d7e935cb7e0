"""What changed in the configuration repository before a unit failed.

Which files a unit is built from is read from the repository itself: the files whose path or
contents name the unit's service as a word (``services.nginx`` in ``web.nix``, an
``nginx.conf``, a ``nginx/`` directory), at the indexed commit. The commits that touched those
files, or whose diff added or removed a line naming the service, are the unit's recent config
changes, newest first.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..monitor.findings import one_line, strip_control
from ..redact import redact, redact_file
from .config_repo import MAX_FILE_BYTES, ConfigRepo

#: how far back a change is looked for
WINDOW_SECONDS = 14 * 24 * 3600
_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
_FIELD, _RECORD = "\x1f", "\x1e"


@dataclass(frozen=True)
class ConfigChange:
    commit: str
    author: str
    email: str
    when: float
    subject: str
    files: tuple[str, ...]

    @property
    def short(self) -> str:
        return self.commit[:10]

    def to_dict(self) -> dict[str, object]:
        return {"commit": self.commit, "author": self.author, "email": self.email,
                "when": self.when, "subject": self.subject, "files": list(self.files)}


def service_name(unit: str) -> str | None:
    """``nginx.service`` -> ``nginx``; ``getty@tty1.service`` -> ``getty``; a name that is
    not a plain word is no search term (None)."""
    name = unit.rsplit(".", 1)[0] if "." in unit else unit
    name = name.split("@", 1)[0]
    return name if name and _SERVICE.match(name) else None


def _word_regex(name: str) -> str:
    # POSIX extended, the name as a word where '-' is a letter too (nginx, not nginx-exporter)
    # and '.' is not (services.nginx.enable, nginx.conf)
    body = re.sub(r"([.])", r"[\1]", name)
    return f"(^|[^A-Za-z0-9_-]){body}($|[^A-Za-z0-9_-])"


def files_for(repo: ConfigRepo, name: str, commit: str) -> list[str]:
    """The files at ``commit`` whose path or contents name ``name``."""
    regex = re.compile(_word_regex(name))
    by_path = [p for p in repo.files(commit) if regex.search(p)]
    # NUL-separated: git quotes a name that is not plain ASCII ("h\303\264tes/web.nix")
    # where lines separate them, and a quoted name is nobody's file
    out = repo.git("grep", "-I", "-l", "-z", "-E", "-e", _word_regex(name), commit, "--",
                   check=False)
    prefix = f"{commit}:"
    by_content = [name[len(prefix):] for name in out.split("\0") if name.startswith(prefix)]
    return sorted({*by_path, *by_content})


def _log(repo: ConfigRepo, args: Sequence[str]) -> list[ConfigChange]:
    fmt = f"{_RECORD}%H{_FIELD}%an{_FIELD}%ae{_FIELD}%ct{_FIELD}%s{_FIELD}"
    # -z: each name as it is, NUL after it (after the format too, then a line break)
    out = repo.git("--literal-pathspecs", "log", f"--format={fmt}", "--name-only",
                   "--no-renames", "-z", *args, check=False)
    changes = []
    for record in out.split(_RECORD)[1:]:
        parts = record.split(_FIELD)
        if len(parts) < 6:
            continue
        commit, author, email, when, subject, names = parts[:6]
        listed = names.removeprefix("\0").removeprefix("\n").split("\0")
        changes.append(ConfigChange(commit, author, email, float(when), subject,
                                    tuple(n for n in listed if n)))
    return changes


def recent_changes(repo: ConfigRepo, unit: str, before: float | None = None,
                   window: float = WINDOW_SECONDS, limit: int = 5) -> list[ConfigChange]:
    """Commits of the indexed branch that touched what ``unit`` is built from, committed in
    the ``window`` seconds up to ``before`` (now), newest first."""
    name = service_name(unit)
    if name is None or not repo.fetched:
        return []
    commit = repo.head()
    until = before if before is not None else time.time()
    span = [f"--since=@{int(until - window)}", f"--until=@{int(until) + 1}", commit]
    found: dict[str, ConfigChange] = {}
    paths = files_for(repo, name, commit)
    if paths:
        for change in _log(repo, [*span, "--", *paths]):
            found[change.commit] = change
    # a commit that removed the service's lines from a file that no longer names it
    for change in _log(repo, [*span, "-E", f"-G{_word_regex(name)}"]):
        found.setdefault(change.commit, change)
    return sorted(found.values(), key=lambda c: c.when, reverse=True)[:limit]


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{int(seconds)} seconds"


def _clean(text: str, limit: int) -> str:
    # commit messages and author names are the repository's text: one line, masked, bounded
    return redact(one_line(strip_control(text)))[:limit]


def describe(changes: Sequence[ConfigChange], unit: str, failed_at: float | None = None
             ) -> list[str]:
    """One line per change: "nginx's config changed 2 hours before it failed: commit ..."."""
    name = service_name(unit) or unit
    lines = []
    for change in changes:
        when = (f"{_ago(failed_at - change.when)} before it failed" if failed_at is not None
                and change.when <= failed_at else
                f"{_ago(time.time() - change.when)} ago")
        files = ", ".join(_clean(f, 120) for f in change.files[:5])
        more = f" (+{len(change.files) - 5} more)" if len(change.files) > 5 else ""
        lines.append(f"{name}'s config changed {when}: commit {change.short} by "
                     f"{_clean(change.author, 60)} <{_clean(change.email, 80)}>: "
                     f"\"{_clean(change.subject, 160)}\" ({files}{more})")
    return lines


def diff_excerpt(repo: ConfigRepo, change: ConfigChange, limit: int = 1500) -> str:
    """The change's diff of the files it touched, masked and bounded; a file of
    config_repo_exclude is named, its diff not shown.

    Each file is masked whole, before and after, and the diff made of the two: a hunk holds
    two lines around a change, and how a value is masked may depend on a line far above it
    (the ``basicAuth = {`` of a password five users down)."""
    hidden = [path for path in change.files if repo.excluded(path)]
    parts = []
    for path in [path for path in change.files if path not in hidden][:5]:
        before = _file_at(repo, f"{change.commit}^", path)
        after = _file_at(repo, change.commit, path)
        if before is None or after is None:
            parts.append(f"[diff of {_clean(path, 120)} not shown: the file is over "
                         f"{MAX_FILE_BYTES >> 10} KiB]\n")
            continue
        parts.append(_masked_diff(repo, path, before, after))
    if hidden:
        names = ", ".join(_clean(path, 120) for path in hidden[:5])
        more = f" (+{len(hidden) - 5} more)" if len(hidden) > 5 else ""
        parts.append(f"[diff not shown (config_repo_exclude): {names}{more}]\n")
    text = "".join(parts)
    return text[:limit] + "\n[diff cut]" if len(text) > limit else text


#: what _file_at says of a file git would call binary: never decoded as text, never shown
BINARY = "\x00binary"


def _file_at(repo: ConfigRepo, commit: str, path: str) -> str | None:
    """``path`` as it was at ``commit`` ("" where it was not there: added, removed, the first
    commit's parent); None where it is too large to mask whole (a generated file);
    :data:`BINARY` where it is binary as git tells it (a NUL in its first 8000 bytes: a key
    in DER, a keyring), whose bytes no masking recognises."""
    # rev:path names the path as it is (no pathspec magic, no quoting)
    size = repo.git("cat-file", "-s", f"{commit}:{path}", check=False).strip()
    if not size.isdigit():
        return ""
    if int(size) > MAX_FILE_BYTES:
        return None
    text = repo.git("cat-file", "blob", f"{commit}:{path}")
    return BINARY if "\x00" in text[:8000] else strip_control(text)


def _masked_diff(repo: ConfigRepo, path: str, before: str, after: str) -> str:
    """The unified diff (two lines of context) of the file's masked texts, by git's own diff
    (difflib took half a minute on two files of one repeated line); where only masked values
    changed, or the file is binary, that is said, its change not shown."""
    if before == after:
        return ""
    head = f"diff --git a/{path} b/{path}\n"
    if BINARY in (before, after):
        return f"{head}[binary file changed]\n"
    old, new = redact_file(before, path), redact_file(after, path)
    if old == new:
        return f"{head}[only masked values changed]\n"
    # masked text alone is written, in a directory of this process's own
    with tempfile.TemporaryDirectory(prefix="ai-sysadmin-diff-") as tmp:
        a, b = Path(tmp, "a"), Path(tmp, "b")
        a.write_text(old, encoding="utf-8")
        b.write_text(new, encoding="utf-8")
        said = repo.git("diff", "--no-index", "--no-color", "--no-ext-diff", "--unified=2",
                        "--", str(a), str(b), check=False)
    start = said.find("\n@@")  # git's header names the temporary files: ours replaces it
    return f"{head}--- a/{path}\n+++ b/{path}\n{said[start + 1:] if start >= 0 else ''}"


