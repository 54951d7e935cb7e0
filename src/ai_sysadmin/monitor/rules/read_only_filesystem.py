from __future__ import annotations

from ..findings import Finding, Severity
from ..snapshot import FileSystem, Mount, distinct_filesystems, mount_order
from .base import Rule, RuleContext


class ReadOnlyFilesystem(Rule):
    """A file system mounted read-write that stopped taking writes: the kernel does this
    after an I/O or metadata error (ext4's ``errors=remount-ro``, btrfs), and every service
    writing there fails from then on, while its disk looks healthy (a read-only file system
    is never full, see :class:`DiskSpace`).

    The kernel says so in the file system's options (ext4 on recent kernels, 6.18 here:
    ``emergency_ro``, ``shutdown``). Before that, and for other file systems, it sets the
    file system's own read-only flag under the read-write mount; an image mounted without
    ``-o ro`` (a squashfs) looks the same from its first look on, so that is found only when a
    look before saw it writable, and kept while it stays read-only.

    Each file system is judged once (:func:`distinct_filesystems`, as :class:`DiskSpace`
    does): a btrfs whose subvolumes are mounted at /, /home and /var is one incident, not
    three, about the shortest of its mount points that no longer takes writes, its evidence
    naming the others. Whether it turned is the file system's (a look before saw one of its
    mounts writable, or found it); whether a mount of it was made read-only (``-o ro``) is
    the mount's own: such a mount is never the one said to have stopped taking writes."""

    name = "read_only_filesystem"
    requires = ("mounts",)
    subject_is_mount = True
    description = "A file system mounted read-write no longer takes writes."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        before = _by_target(ctx)
        findings = []
        for fs in distinct_filesystems(ctx.snapshot.mounts or []):
            turned = self._seen_turn(ctx, fs, before)
            # a mount made read-only (-o ro) never took writes: one mounted read-write is
            # the one that stopped, where there is one
            stopped = [(m, why) for m in sorted(fs.mounts, key=_read_write_first)
                       if (why := _why(m, turned)) is not None]
            if not stopped:
                continue
            m, why = stopped[0]
            others = FileSystem(m, tuple(sorted(o.target for o in fs.mounts if o is not m)),
                                pool=fs.pool)
            findings.append(self.finding(
                ctx, m.target, Severity.CRITICAL, f"{m.target} no longer takes writes",
                [f"{m.target} ({m.fstype} on {m.source}): {why}", *others.also_mounted()]))
        return findings

    def _seen_turn(self, ctx: RuleContext, fs: FileSystem,
                   before: dict[str, Mount] | None) -> bool:
        """Whether a read-only flag under its read-write mounts is a turn, not an image's
        from the start: the last check found it, or a look before saw one of its mounts (the
        same device there) writable."""
        for m in fs.mounts:
            if (self.name, m.target) in ctx.found_before:
                return True
            was = before.get(m.target) if before is not None else None
            if was is not None and was.source == m.source and not was.read_only:
                return True
        return False

    def judges(self, ctx: RuleContext) -> bool:
        # a file system read-only under a read-write mount may have been so from its
        # first look (an image): only a look before tells that it turned
        mounts = ctx.snapshot.mounts or []
        if any(m.view_read_only is None for m in mounts):
            return False  # the mount table was not read
        return _by_target(ctx) is not None or not any(_turned(m) for m in mounts)


def _why(m: Mount, turned: bool) -> str | None:
    """Why the mount no longer takes writes; None where it may (or never did: ``-o ro``, an
    image). ``turned``: its file system was seen to turn read-only (:meth:`_seen_turn`)."""
    if m.stopped == "shutdown":
        return "the kernel shut its file system down (shutdown): every write fails"
    if m.stopped:
        return (f"the kernel made its file system read-only after an error "
                f"({m.stopped}); it is mounted read-write")
    if turned and _turned(m):
        return ("mounted read-write, but its file system is read-only, as the kernel "
                "makes one after an error (errors=remount-ro)")
    return None


def _read_write_first(m: Mount) -> tuple[bool, int, str]:
    return (m.view_read_only is not False, *mount_order(m))


def _turned(m: Mount) -> bool:
    """Its file system read-only under a read-write mount (``view_read_only`` None: the
    mount table was not read, nothing is known)."""
    return m.read_only and m.view_read_only is False and not m.stopped


def _by_target(ctx: RuleContext) -> dict[str, Mount] | None:
    """The previous look's mounts by mount point; None where no look before read them."""
    previous = ctx.previous
    if previous is None or previous.mounts is None \
            or any(m.view_read_only is None for m in previous.mounts):
        return None
    return {m.target: m for m in previous.mounts}
