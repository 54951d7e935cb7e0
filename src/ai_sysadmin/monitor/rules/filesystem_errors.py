from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from ..findings import Finding, Severity
from ..snapshot import FilesystemErrors as Counted
from .base import Rule, RuleContext

#: errors within this long are new: ext4's last recorded error (on the host's clock), and a
#: count that rose at a check this recent (the checker remembers when, across restarts)
RECENT_ERROR_SECONDS = 3600.0


def fs_errors_rose(before: Sequence[Counted] | None,
                   now: Sequence[Counted] | None) -> dict[str, int]:
    """Each mount point whose file system's count rose between two looks, with by how much.
    Known by its mount point, not by its device's name: those may swap at a reboot (sda1
    and sdb1), and a standing count would read as new."""
    was = _by_target(before)
    if was is None or now is None:
        return {}
    return {fs.target: fs.errors - was[fs.target].errors for fs in now
            if fs.target in was and fs.errors > was[fs.target].errors}


class FilesystemErrors(Rule):
    """A file system whose kernel driver recorded errors, though it may still take writes:
    ext4 mounted ``errors=continue`` (the default of many images) goes on after a metadata
    or I/O error, and btrfs goes on with a device that fails to write, read or checksum.
    Only a person ends it: e2fsck clears ext4's count (at the next boot, or unmounted), a
    failing disk is replaced (``btrfs device stats -z`` clears btrfs's counters).

    The counts stand until then, so a count that stays is a warning, kept as one incident
    whatever the checks between; errors that are new are critical: a count that rose within
    :data:`RECENT_ERROR_SECONDS` (since the last look, or at a look the checker remembers:
    btrfs keeps no time of its errors, and a disk that fails now and then would otherwise
    flip between critical and warning, each flip a change of the incident), or ext4's last
    error within it.

    Only a file system mounted where the check looks is judged, named by its mount point: a
    container (a fault lab among them) sees its host's sysfs, and one disk's errors would be
    reported from every container on it."""

    name = "filesystem_errors"
    requires = ("fs_errors",)
    description = "A file system's kernel driver recorded errors (ext4's count, btrfs's)."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        before = _by_target(ctx.previous.fs_errors if ctx.previous is not None else None)
        rose = fs_errors_rose(ctx.previous.fs_errors if ctx.previous is not None else None,
                              ctx.snapshot.fs_errors)
        now = ctx.snapshot.host_time()
        findings = []
        for fs in ctx.snapshot.fs_errors or []:
            if fs.errors <= 0 or not fs.target:
                continue
            was = before.get(fs.target) if before is not None else None
            new = rose.get(fs.target, 0)
            lately = not new and _rose_lately(ctx, fs.target)
            recent = fs.last_error is not None and fs.last_error >= now - RECENT_ERROR_SECONDS
            severity = Severity.CRITICAL if new or lately or recent else Severity.WARNING
            findings.append(self.finding(ctx, fs.target, severity, _summary(fs, new, lately),
                                         _evidence(fs, was, lately)))
        return findings


def _rose_lately(ctx: RuleContext, target: str) -> bool:
    """The count rose at a look within the window, as the checker remembers it."""
    after = ctx.fs_errors_rose_after.get(target)
    return after is not None and after >= ctx.snapshot.taken_at - RECENT_ERROR_SECONDS


def _by_target(counts: Sequence[Counted] | None) -> dict[str, Counted] | None:
    """A look's counts of the file systems mounted where it looked, by mount point; None
    where it did not read them."""
    if counts is None:
        return None
    return {fs.target: fs for fs in counts if fs.target}


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _summary(fs: Counted, new: int, lately: bool) -> str:
    where = fs.target
    rose = (f", {new} new since the last check" if new
            else ", rising within the last hour" if lately else "")
    if fs.fstype == "btrfs":
        return (f"{where}: btrfs counted {fs.errors} device errors (write, read, flush, "
                f"checksum or generation){rose}; a device may be failing")
    last = f", the last at {_stamp(fs.last_error)}" if fs.last_error is not None else ""
    return (f"{where}: the kernel recorded {fs.errors} errors on this {fs.fstype} since its "
            f"last fsck{rose}{last}; it needs an fsck")


def _evidence(fs: Counted, was: Counted | None, lately: bool) -> list[str]:
    earlier = f" ({was.errors} at the previous check)" if was is not None else ""
    mounted = f"mounted at {fs.target}"
    rising = ([f"its count rose within the last {RECENT_ERROR_SECONDS:g} s"]
              if lately else [])
    if fs.fstype == "btrfs":
        return [f"btrfs {fs.name}, {mounted}: {fs.errors} errors in its devices' "
                f"error_stats{earlier}", *rising, *fs.detail]
    evidence = [f"/sys/fs/ext4/{fs.name}/errors_count: {fs.errors}{earlier}; {fs.fstype} "
                f"{mounted}", *rising]
    times = [f"{which} error at {_stamp(at)}" for which, at in
             (("first", fs.first_error), ("last", fs.last_error)) if at is not None]
    if times:
        evidence.append(", ".join(times))
    return evidence
