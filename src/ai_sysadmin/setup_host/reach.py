"""Whether the daemon's account can reach what its unit names: the program, the interpreter of
its ``#!`` line, the state directory and the daemon's other directories.

The unit starts the program as root and ``setpriv`` hands it to the account; from then on the
program is read, its Python finds its library beside itself, and the state is written, all as
that account. A venv in a home only its owner may enter made a unit that could never start
(exit 2, which the unit does not restart). Judged from the files themselves, each directory on
the way with its owner, group, mode and POSIX access ACL, as the kernel judges the account:
setup may not have made it yet, and ``os.access`` would answer for root. An ACL opens a home
closed by its mode to the account (``setfacl -m u:ai-sysadmin:x /home/alice``), or closes
one its mode opens.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..config import Settings
from .accounts import entries
from .install import Layout, own_dirs
from .steps import SetupError, under

READ, EXECUTE = 4, 1
#: symbolic links followed on one way before it counts as a loop, as the kernel counts them
_MAX_LINKS = 40
#: a file's access ACL, as the kernel gives it: a version (2), then entries of a tag, the
#: permission bits and a uid or gid (linux/posix_acl_xattr.h), little-endian
_ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

#: an ACL's entries: (tag, permission bits, uid or gid)
Acl = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class Account:
    """The daemon's account as the target's files see it: ``uid`` None where setup has yet to
    make it (it owns nothing then), ``gids`` the groups setpriv --init-groups gives it."""

    uid: int | None
    gids: frozenset[int]

    @classmethod
    def of(cls, root: Path, layout: Layout) -> Account:
        passwd, groups = entries(root, "passwd"), entries(root, "group")
        found = passwd.get(layout.user)
        uid = int(found[2]) if found and found[2].isdigit() else None
        gids = {int(found[3])} if found and found[3].isdigit() else set()
        for name, fields in groups.items():
            # its own group, the groups setup adds it to, and those it is in already
            if (name == layout.group or name in layout.reader_groups
                    or layout.user in fields[3].split(",")) and fields[2].isdigit():
                gids.add(int(fields[2]))
        return cls(uid, frozenset(gids))

    def may(self, st: os.stat_result, need: int, acl: Acl | None = None) -> bool:
        """Whether the file grants ``need`` (READ, EXECUTE or both) to this account: the
        owner's bits where it owns the file, else the group's where it is in the group, else
        the others'; with an access ``acl``, as the kernel reads one (posix_acl_permission)."""
        if self.uid == 0:
            return True
        if st.st_uid == self.uid:
            return (st.st_mode >> 6) & need == need  # the ACL's owner entry is these bits
        if acl is not None:
            return self._acl_grants(acl, st.st_gid, need)
        bits = st.st_mode >> 3 if st.st_gid in self.gids else st.st_mode
        return bits & need == need

    def _acl_grants(self, acl: Acl, file_gid: int, need: int) -> bool:
        """An entry naming the account, else those of its groups (one granting is enough,
        any naming one with none granting refuses), both within the mask; else the others'."""
        mask = next((perm for tag, perm, _ in acl if tag == _MASK), 0o7)
        for tag, perm, uid in acl:
            if tag == _USER and uid == self.uid:
                return perm & mask & need == need
        groups = [perm for tag, perm, gid in acl
                  if (tag == _GROUP_OBJ and file_gid in self.gids)
                  or (tag == _GROUP and gid in self.gids)]
        if groups:
            return any(perm & mask & need == need for perm in groups)
        return any(perm & need == need for tag, perm, _ in acl if tag == _OTHER)


def access_acl(path: Path) -> Acl | None:
    """The access ACL of the file at ``path`` (a link followed), or None where it has none
    beyond its mode (nor a file system that keeps them). One not in the kernel's format is
    none: its mode is what is judged."""
    try:
        raw = os.getxattr(path, _ACL_XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise
    if len(raw) < 4 or (len(raw) - 4) % 8 or struct.unpack_from("<I", raw)[0] != _ACL_VERSION:
        return None
    return tuple(struct.iter_unpack("<HHI", raw[4:]))


def blocked(root: Path, path: str, account: Account, need: int = 0) -> str | None:
    """What stops ``account`` on the way to ``path`` (a path of the target): a directory it may
    not search, symbolic links followed as the kernel follows them (within ``root``), or the
    file at the end, lacking ``need``. None where nothing does, and where part of the way is
    missing: setup makes a missing directory (a parent 0755 whatever the umask, the last one
    the daemon's own), and a missing file is no fact to judge."""
    try:
        return _blocked(root, path, account, need)
    except OSError:  # a dry run of an ordinary user: what it cannot look at, it cannot judge
        return None


def _blocked(root: Path, path: str, account: Account, need: int) -> str | None:
    pending = list(reversed(PurePosixPath(path).parts[1:]))
    here = PurePosixPath("/")
    links = 0
    while pending:
        if closed := _closed(root, str(here), account, EXECUTE):
            return closed
        name = pending.pop()
        if name == "..":
            here = here.parent
            continue
        if name == ".":
            continue
        there = under(root, str(here / name))
        if there.is_symlink():
            links += 1
            if links > _MAX_LINKS:
                return None
            target = PurePosixPath(os.readlink(there))
            if target.is_absolute():
                here = PurePosixPath("/")
            pending += reversed(target.parts[1:] if target.is_absolute() else target.parts)
            continue
        if not there.exists():
            return None
        here = here / name
    return _closed(root, str(here), account, need) if need else None


def _closed(root: Path, path: str, account: Account, need: int) -> str | None:
    """``path`` described, where ``account`` lacks ``need`` on it; else None."""
    where = under(root, path)
    st = os.stat(where)
    acl = access_acl(where)
    if account.may(st, need, acl):
        return None
    return _described(root, path, st, acl is not None)


def _described(root: Path, path: str, st: os.stat_result, acl: bool = False) -> str:
    """As ``ls -ld`` shows it: its mode (a ``+`` where an ACL has a say too), owner and
    group."""
    users = {int(f[2]): name for name, f in entries(root, "passwd").items() if f[2].isdigit()}
    groups = {int(f[2]): name for name, f in entries(root, "group").items() if f[2].isdigit()}
    return (f"{path} ({stat.filemode(st.st_mode)}{'+' if acl else ''} "
            f"{users.get(st.st_uid, st.st_uid)}:{groups.get(st.st_gid, st.st_gid)})")


def interpreter(path: Path) -> str | None:
    """The program named by the ``#!`` line of the file at ``path``, if it has one."""
    try:
        with path.open("rb") as handle:
            head = handle.readline(256)
    except OSError:
        return None
    words = head[2:].split() if head.startswith(b"#!") else []
    return os.fsdecode(words[0]) if words else None


def require_reach(root: Path, layout: Layout, settings: Settings, config: str) -> None:
    """Refuse (a :class:`SetupError` naming every obstacle) where the account the units run
    as could not run the program or its interpreter, or reach the state directory or the
    daemon's other directories; ``config``: where their paths are set. Under ``root`` other
    than ``/`` the program is judged in that tree, where the unit runs it, if the tree holds
    it."""
    account = Account.of(root, layout)
    problems: list[str] = []
    program = under(root, layout.program)
    if root == Path("/") or program.exists():
        script = interpreter(program)
        ways = [(layout.program, READ | EXECUTE if script else EXECUTE, "the program")]
        if script is not None:
            ways.append((script, EXECUTE, f"{layout.program}'s interpreter"))
        seen: set[str] = set()
        for path, need, what in ways:
            # a venv's closed home stops both: said once
            if (found := blocked(root, path, account, need)) and found not in seen:
                seen.add(found)
                problems.append(f"{what} {path}: {found} is closed to it")
        if problems:
            problems[-1] += ("; install ai-sysadmin where that account can read it (a venv "
                             "in /opt), or name such a program with --program")
    for key, directory in _directories(layout, settings):
        if found := blocked(root, str(PurePosixPath(directory).parent), account, EXECUTE):
            problems.append(f"{key} {directory}: {found} is closed to it; set {key} in "
                            f"{config} to a directory that account can reach")
    if problems:
        raise SetupError(f"the daemon's account {layout.user} could not reach "
                         + "; ".join(problems))


def _directories(layout: Layout, settings: Settings) -> Iterable[tuple[str, str]]:
    yield "state_dir", layout.state_dir
    for directory, (key, _) in own_dirs(settings, layout.state_dir).items():
        yield key, directory
