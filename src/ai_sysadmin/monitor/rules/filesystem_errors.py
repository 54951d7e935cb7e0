from __future__ import annotations

from datetime import UTC, datetime

from ..findings import Finding, Severity
from ..snapshot import FilesystemErrors as Counted
from ..snapshot import Snapshot
from .base import Rule, RuleContext

#: an ext4 whose last recorded error is this recent (on the host's clock) has errors now:
#: critical, as a count that rose since the last look is
RECENT_ERROR_SECONDS = 3600.0


class FilesystemErrors(Rule):
    """A file system whose kernel driver recorded errors, though it may still take writes:
    ext4 mounted ``errors=continue`` (the default of many images) goes on after a metadata
    or I/O error, and btrfs goes on with a device that fails to write, read or checksum.
    Only a person ends it: e2fsck clears ext4's count (at the next boot, or unmounted), a
    failing disk is replaced (``btrfs device stats -z`` clears btrfs's counters).

    The counts stand until then, so a count that stays is a warning, kept as one incident
    whatever the checks between; errors that are new are critical: a count that rose since
    the last look, or ext4's last error within :data:`RECENT_ERROR_SECONDS`.

    Only a file system mounted where the check looks is judged, named by its mount point: a
    container (a fault lab among them) sees its host's sysfs, and one disk's errors would be
    reported from every container on it."""

    name = "filesystem_errors"
    requires = ("fs_errors",)
    description = "A file system's kernel driver recorded errors (ext4's count, btrfs's)."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        before = _by_key(ctx.previous)
        now = ctx.snapshot.host_time()
        findings = []
        for fs in ctx.snapshot.fs_errors or []:
            if fs.errors <= 0 or not fs.target:
                continue
            was = before.get(fs.key) if before is not None else None
            new = fs.errors - was.errors if was is not None and fs.errors > was.errors else 0
            recent = fs.last_error is not None and fs.last_error >= now - RECENT_ERROR_SECONDS
            severity = Severity.CRITICAL if new or recent else Severity.WARNING
            findings.append(self.finding(ctx, fs.target, severity, _summary(fs, new),
                                         _evidence(fs, was)))
        return findings


def _by_key(previous: Snapshot | None) -> dict[tuple[str, str], Counted] | None:
    """The previous look's counts; None where it did not read them."""
    if previous is None or previous.fs_errors is None:
        return None
    return {fs.key: fs for fs in previous.fs_errors}


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _summary(fs: Counted, new: int) -> str:
    where = fs.target
    rose = f", {new} new since the last check" if new else ""
    if fs.fstype == "btrfs":
        return (f"{where}: btrfs counted {fs.errors} device errors (write, read, flush, "
                f"checksum or generation){rose}; a device may be failing")
    last = f", the last at {_stamp(fs.last_error)}" if fs.last_error is not None else ""
    return (f"{where}: the kernel recorded {fs.errors} errors on this {fs.fstype} since its "
            f"last fsck{rose}{last}; it needs an fsck")


def _evidence(fs: Counted, was: Counted | None) -> list[str]:
    earlier = f" ({was.errors} at the previous check)" if was is not None else ""
    mounted = f"mounted at {fs.target}"
    if fs.fstype == "btrfs":
        return [f"btrfs {fs.name}, {mounted}: {fs.errors} errors in its devices' "
                f"error_stats{earlier}", *fs.detail]
    evidence = [f"/sys/fs/ext4/{fs.name}/errors_count: {fs.errors}{earlier}; {fs.fstype} "
                f"{mounted}"]
    times = [f"{which} error at {_stamp(at)}" for which, at in
             (("first", fs.first_error), ("last", fs.last_error)) if at is not None]
    if times:
        evidence.append(", ".join(times))
    return evidence
