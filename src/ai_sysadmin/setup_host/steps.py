"""What setup installs, one item each: it says what it would change, then changes it.

Every item compares the wanted state with what is on disk under ``root``, so a second run finds
nothing to do and touches nothing. Paths are the target system's (``/etc/...``); ``root`` is
where that system is (``/``, or a directory tree for tests and images).
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import AiSysadminError
from ..redact import redact_cut


class SetupError(AiSysadminError):
    """Setup could not install something (a command failed, a file failed its check)."""


@dataclass(frozen=True)
class Programs:
    """The programs setup runs; every one configurable."""

    groupadd: str = "groupadd"
    useradd: str = "useradd"
    usermod: str = "usermod"
    visudo: str = "visudo"
    systemctl: str = "systemctl"


@dataclass(frozen=True)
class Step:
    """One line of the plan: ``action`` is create, update, keep or skip; an uninstall's
    also remove and stop."""

    kind: str
    target: str
    action: str
    detail: str = ""

    @property
    def changes(self) -> bool:
        return self.action in ("create", "update", "remove", "stop")


def under(root: Path, path: str) -> Path:
    """``path`` of the target system as seen from here."""
    return root / path.lstrip("/")


def make_parents(path: Path) -> None:
    """The missing directories above ``path``, each 0755 whatever the umask: under root's
    hardened 027 or 077 a parent of the state directory came out closed to the daemon's
    account, which then could not reach its own state (and setup refused its next run)."""
    missing: list[Path] = []
    parent = path.parent
    while not parent.is_dir():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)  # a file in the way raises, as mkdir(parents=) did
        os.chmod(directory, 0o755)


def run(argv: Sequence[str], what: str) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"{what}: {argv[0]}: {exc}") from exc
    if done.returncode != 0:
        detail = (redact_cut((done.stderr or done.stdout).strip(), 400, tail=True)
                  or f"exit {done.returncode}")
        raise SetupError(f"{what}: {' '.join(argv[:3])} ...: {detail}")
    return done.stdout


class Owners:
    """uid and gid by name from the target system's own /etc/passwd and /etc/group (not this
    machine's NSS): a tree under --root has its own accounts."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _ids(self, db: str) -> dict[str, int]:
        ids: dict[str, int] = {}
        try:
            text = under(self.root, f"/etc/{db}").read_text(encoding="utf-8")
        except FileNotFoundError:
            return ids
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[2].isdigit():
                ids.setdefault(fields[0], int(fields[2]))
        return ids

    def uid(self, name: str) -> int | None:
        return self._ids("passwd").get(name)

    def gid(self, name: str) -> int | None:
        return self._ids("group").get(name)


@dataclass(frozen=True)
class Node:
    """A directory or file owned by ``owner:group`` with ``mode``."""

    path: str
    owner: str
    group: str
    mode: int

    def _ownership_ok(self, here: Path, owners: Owners) -> bool:
        st = here.lstat()
        return (st.st_mode & 0o7777 == self.mode and st.st_uid == owners.uid(self.owner)
                and st.st_gid == owners.gid(self.group))

    def _set_ownership(self, here: Path, owners: Owners) -> None:
        uid, gid = owners.uid(self.owner), owners.gid(self.group)
        if uid is None or gid is None:
            raise SetupError(f"{self.path}: no account {self.owner}:{self.group} on the target")
        os.chown(here, uid, gid, follow_symlinks=False)
        os.chmod(here, self.mode)


@dataclass(frozen=True)
class Directory(Node):
    """``adopt``: patterns of the names in it that are ai-sysadmin's own; what they hold
    becomes the owner's too (the state a `sudo ai-sysadmin check` left there before setup,
    which the daemon's user could not open otherwise). Anything else in it of another owner
    is refused, never taken: a state_dir of /var/lib would hand every service's data to the
    daemon. ``setting``: the config key that names the directory, said when it is refused."""

    adopt: tuple[str, ...] = ()
    setting: str = ""

    def check(self, root: Path) -> Step:
        here = under(root, self.path)
        detail = f"{self.owner}:{self.group} {self.mode:04o}"
        if here.is_symlink() or (here.exists() and not here.is_dir()):
            raise SetupError(f"{self.path} exists and is not a directory")
        if not here.exists():
            return Step("directory", self.path, "create", detail)
        owners = Owners(root)
        taken = sorted({p.relative_to(here).parts[0] for p in self._foreign(here, owners)})
        if self._ownership_ok(here, owners) and not taken:
            return Step("directory", self.path, "keep", detail)
        return Step("directory", self.path, "update",
                    f"{detail}, with what is in it: {', '.join(taken)}" if taken else detail)

    def _foreign(self, here: Path, owners: Owners) -> list[Path]:
        """What in ``here`` setup gives the owner: all of it under ``adopt``'s names."""
        if not self.adopt:
            return []
        ids = (owners.uid(self.owner), owners.gid(self.group))

        def theirs(path: Path) -> bool:
            st = path.lstat()
            return (st.st_uid, st.st_gid) != ids

        found: list[Path] = []
        others: list[str] = []
        for entry in sorted(here.iterdir()):
            inside = (entry.rglob("*") if entry.is_dir() and not entry.is_symlink() else ())
            if any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in self.adopt):
                found += [p for p in (entry, *inside) if theirs(p)]
            elif theirs(entry) or any(theirs(p) for p in inside):
                others.append(entry.name)
        if others:
            them = "it" if len(others) == 1 else "them"
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more"
                                             if len(others) > 5 else "")
            raise SetupError(
                f"{self.path} holds {shown}, which {'is' if them == 'it' else 'are'} not "
                f"ai-sysadmin's: setup would give {them} to {self.owner}; set "
                f"{self.setting or 'it'} to a directory of its own, or move {them} out")
        return found

    def apply(self, root: Path, programs: Programs) -> None:
        here = under(root, self.path)
        make_parents(here)
        here.mkdir(exist_ok=True)
        owners = Owners(root)
        self._set_ownership(here, owners)
        uid, gid = owners.uid(self.owner), owners.gid(self.group)
        for path in self._foreign(here, owners):
            os.chown(path, uid, gid, follow_symlinks=False)  # type: ignore[arg-type]


@dataclass(frozen=True)
class File(Node):
    """A file with exactly ``text``; ``keep_existing``: an operator's file is never replaced
    (the config); ``verify``: a check of the new content before it takes the file's place;
    ``requires``: raises when the file would be of no use here (checked by the plan, so a
    dry run shows it and a real run stops before it changes anything); ``origin``: the file
    ``text`` was read from, if any (a config named with --config), said when it is created."""

    text: str = ""
    keep_existing: bool = False
    verify: Callable[[Path, Programs], None] | None = None
    requires: Callable[[], None] | None = None
    origin: str = ""

    def check(self, root: Path) -> Step:
        if self.requires is not None:
            self.requires()
        here = under(root, self.path)
        detail = f"{self.owner}:{self.group} {self.mode:04o}"
        if here.is_symlink() or (here.exists() and not here.is_file()):
            raise SetupError(f"{self.path} exists and is not a regular file")
        if not here.exists():
            return Step("file", self.path, "create",
                        f"{detail}, a copy of {self.origin}" if self.origin else detail)
        if self.keep_existing:
            # the content is the operator's; owner and mode are what lets the daemon read it
            ok = self._ownership_ok(here, Owners(root))
            return Step("file", self.path, "keep" if ok else "update",
                        "present: left as it is" if ok else f"{detail}, content kept")
        same = here.read_text(encoding="utf-8") == self.text
        ok = same and self._ownership_ok(here, Owners(root))
        return Step("file", self.path, "keep" if ok else "update",
                    detail if same else f"{detail}, new content")

    def apply(self, root: Path, programs: Programs) -> None:
        here = under(root, self.path)
        if self.keep_existing and here.exists():
            self._set_ownership(here, Owners(root))
            return
        make_parents(here)
        # a name with a dot: sudo's includedir and systemd both ignore it while it is written
        temp = here.with_name(f".{here.name}.setup-tmp")
        temp.unlink(missing_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self.text)
        try:
            self._set_ownership(temp, Owners(root))
            if self.verify is not None:
                self.verify(temp, programs)
            os.replace(temp, here)
        finally:
            temp.unlink(missing_ok=True)


def carries_marker(path: Path, marker: str) -> bool:
    """A script whose second line starts with ``marker`` (how a generated file says who
    made it)."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return handle.readline(4096).startswith("#!") and \
                handle.readline(4096).startswith(marker)
    except OSError:
        return False


#: what every link setup or ``commands install`` made leads to, wherever it was installed
PROGRAM_NAME = "ai-sysadmin"


def setups_link(leads_to: str) -> bool:
    """Whether a link that leads to ``leads_to`` is setup's own (one to an ai-sysadmin
    program, whichever path named it): setup replaces it and --uninstall removes it, both by
    this one test."""
    return Path(leads_to).name == PROGRAM_NAME


@dataclass(frozen=True)
class Link:
    """A symbolic link ``path`` -> ``target``; anything else at ``path`` is an error unless it
    is a link to an ai-sysadmin program (an older install's) or a script carrying
    ``replaces`` on its second line (the wrapper ``commands install`` writes for the same
    command), which is replaced. A person's own link of that name is theirs: refused."""

    path: str
    target: str
    replaces: str | None = None

    def check(self, root: Path) -> Step:
        here = under(root, self.path)
        if here.is_symlink():
            leads_to = os.readlink(here)
            if leads_to == self.target:
                return Step("link", self.path, "keep", f"-> {self.target}")
            if not setups_link(leads_to):
                raise SetupError(f"{self.path} exists and leads to {leads_to}, not to "
                                 f"{PROGRAM_NAME}: setup never replaces it; remove it, or "
                                 "install the commands elsewhere (--bin-dir)")
            return Step("link", self.path, "update", f"-> {self.target}")
        if self.replaces is not None and carries_marker(here, self.replaces):
            return Step("link", self.path, "update",
                        f"-> {self.target} (replaces the `commands install` wrapper)")
        if here.exists():
            raise SetupError(f"{self.path} exists and is not a symbolic link")
        return Step("link", self.path, "create", f"-> {self.target}")

    def apply(self, root: Path, programs: Programs) -> None:
        here = under(root, self.path)
        make_parents(here)
        temp = here.with_name(f".{here.name}.setup-tmp")
        temp.unlink(missing_ok=True)
        temp.symlink_to(self.target)
        os.replace(temp, here)
