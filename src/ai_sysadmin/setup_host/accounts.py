"""The daemon's account: a system group and user, and its memberships of the log-reading groups.

Created with the distribution's own shadow tools (``groupadd``, ``useradd``, ``usermod``), which
also keep ``/etc/shadow`` and ``/etc/gshadow`` right; ``--prefix`` points them at a tree other
than ``/`` without chrooting into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .steps import Programs, SetupError, Step, run, under

#: the comment (GECOS) of the account setup makes: how a later run knows the account is its own
COMMENT = "ai-sysadmin daemon"
NOLOGIN = ("/usr/sbin/nologin", "/sbin/nologin", "/usr/bin/nologin", "/bin/false")


def entries(root: Path, db: str) -> dict[str, list[str]]:
    """``/etc/passwd`` or ``/etc/group`` of the target: name -> its fields."""
    path = under(root, f"/etc/{db}")
    if not path.exists():
        return {}
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and not line.startswith(("#", "+", "-")):
            out.setdefault(fields[0], fields)
    return out


def _prefix(root: Path) -> list[str]:
    return [] if root == Path("/") else ["--prefix", str(root)]


@dataclass(frozen=True)
class Group:
    name: str

    def check(self, root: Path) -> Step:
        found = self.name in entries(root, "group")
        return Step("group", self.name, "keep" if found else "create", "system group")

    def apply(self, root: Path, programs: Programs) -> None:
        if self.name not in entries(root, "group"):
            run([programs.groupadd, "--system", *_prefix(root), self.name],
                f"creating group {self.name}")


@dataclass(frozen=True)
class User:
    """A system user that cannot log in, its home the state directory (``~/.ssh`` for the
    known hosts of managed machines)."""

    name: str
    group: str
    home: str

    def check(self, root: Path) -> Step:
        found = entries(root, "passwd").get(self.name)
        if found is None:
            return Step("user", self.name, "create", f"system user, home {self.home}")
        if len(found) > 5 and found[5] != self.home and found[4] != COMMENT:
            # another service's account (--user postgres): moving its home and adding it to
            # the log groups would change that service, and --uninstall would not undo it
            raise SetupError(
                f"the account {self.name} exists and setup did not make it: its home is "
                f"{found[5]}, not {self.home}, and setup never changes another account; name "
                "a new one with --user")
        if len(found) > 5 and found[5] != self.home:
            # the daemon's HOME (its ~/.ssh) is the state directory; a command root runs as
            # the daemon's user takes HOME from passwd: both must be the one directory
            return Step("user", self.name, "update",
                        f"home {found[5]} -> {self.home} (what was in {found[5]} stays there)")
        return Step("user", self.name, "keep", f"uid {found[2]}")

    def apply(self, root: Path, programs: Programs) -> None:
        found = entries(root, "passwd").get(self.name)
        if found is not None:
            if len(found) > 5 and found[5] != self.home:
                run([programs.usermod, *_prefix(root), "--home", self.home, self.name],
                    f"moving the home of {self.name} to {self.home}")
            return
        shell = next((s for s in NOLOGIN if under(root, s).exists()), "/bin/false")
        run([programs.useradd, "--system", *_prefix(root), "--gid", self.group,
             "--home-dir", self.home, "--no-create-home", "--shell", shell,
             "--comment", COMMENT, self.name], f"creating user {self.name}")


@dataclass(frozen=True)
class Memberships:
    """``user`` in each of ``groups`` that exists on the target; a missing one is reported and
    skipped (a distribution without ``adm`` keeps its logs in the journal)."""

    user: str
    groups: tuple[str, ...]

    def _missing(self, root: Path) -> tuple[list[str], list[str]]:
        table = entries(root, "group")
        absent = [g for g in self.groups if g not in table]
        wanted = [g for g in self.groups if g in table
                  and self.user not in table[g][3].split(",")]
        return wanted, absent

    def check(self, root: Path) -> Step:
        wanted, absent = self._missing(root)
        note = f"; no group {', '.join(absent)} here: skipped" if absent else ""
        present = [g for g in self.groups if g not in absent]
        if not present:
            return Step("groups", self.user, "skip", note.lstrip("; "))
        if wanted:
            return Step("groups", self.user, "update", f"add to {', '.join(wanted)}{note}")
        return Step("groups", self.user, "keep", f"in {', '.join(present)}{note}")

    def apply(self, root: Path, programs: Programs) -> None:
        wanted, _ = self._missing(root)
        if wanted:
            if self.user not in entries(root, "passwd"):
                raise SetupError(f"no user {self.user} to add to {', '.join(wanted)}")
            run([programs.usermod, *_prefix(root), "--append", "--groups", ",".join(wanted),
                 self.user], f"adding {self.user} to {', '.join(wanted)}")
