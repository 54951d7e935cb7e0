from __future__ import annotations

from ..findings import Finding, Severity, in_unit, process_subject, program, quote
from ..parsers import same_process
from ..snapshot import Process, Snapshot
from .base import Rule, RuleContext


class RunawayProcess(Rule):
    """A process that has burned CPU for a sustained time.

    The share is the CPU seconds it used over the wall seconds passed (between the two ps
    readings, on the host's clock: :func:`_between_listings`) since the newest
    periodic snapshot at least ``runaway_min_seconds`` old (the baseline, or one before it
    when the baseline is more recent: a check seconds after an interval check); where it was
    not running then, its lifetime average, once it has lived ``runaway_min_seconds``.

    The subject is the service the process runs in (its cgroup) when there is one: a service
    that restarts its hog keeps one incident, not one per pid.
    """

    name = "runaway_process"
    requires = ("processes",)
    description = "A process keeps using a whole core (sustained CPU)."
    subject_is_unit = True  # the unit systemd (or its cgroup) names, or pid:N
    over_words = ("no process of {subject} from before the fix runs",
                  "a process of {subject} from before the fix still runs")

    def _share(self, ctx: RuleContext, proc: Process, prev: Snapshot | None,
               before: dict[int, Process]) -> tuple[float, float] | None:
        if prev is not None:
            span = _between_listings(prev, ctx.snapshot)
            used = _used_since(ctx, prev, proc, before)
            if used is not None:
                return 100.0 * used / span, span
        if proc.elapsed_seconds >= ctx.thresholds.runaway_min_seconds:
            return proc.cpu_percent, float(proc.elapsed_seconds)
        return None

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        # one finding per subject: several hogs of one unit are one problem, the busiest first
        hogs: dict[str, list[tuple[float, float, Process]]] = {}
        prev = _measured_from(ctx)
        before = {p.pid: p for p in prev.processes or []} if prev else {}
        for proc in ctx.snapshot.processes or []:
            measured = self._share(ctx, proc, prev, before)
            subject = process_subject(proc.unit, proc.pid)
            # shares of a core, as the level is: a hog at about the level (92 % and 88 % in
            # turn) is one incident, held until it is clear_margin_percent points below
            if measured is None or measured[0] < self.warns_at(
                    ctx, subject, ctx.thresholds.runaway_cpu_percent):
                continue
            hogs.setdefault(subject, []).append((*measured, proc))
        findings = []
        for subject, found in hogs.items():
            found.sort(key=lambda hog: hog[0], reverse=True)
            share, span, top = found[0]
            findings.append(self.finding(
                ctx, subject, Severity.WARNING,
                f"{quote(program(top.command), 60) or '?'} (pid {top.pid}){in_unit(top.unit)} "
                f"has used {share:.0f}% CPU for {span:.0f} s",
                [_evidence(*hog) for hog in found],
            ))
        return findings

    def judges(self, ctx: RuleContext) -> bool:
        # without a look runaway_min_seconds back only lifetime averages are there, and a
        # process that has idled for days before it began to spin averages as idle
        return _measured_from(ctx) is not None

    def over_since(self, ctx: RuleContext, subject: str, began: float,
                   ended: float) -> bool | None:
        """Every process of ``subject`` that ran before the fix has ended (killed, or
        restarted with its unit): what runs now began with the fix or after it, too recently
        to have burned a core for long. One from before, or a listing that failed, is
        judged by the finding."""
        snap = ctx.snapshot
        if not snap.collected("processes"):
            return None
        # an age is read in whole seconds, a moment after the collection began: one the fix
        # started may seem to have begun up to a second before the fix did
        older = [p for p in snap.processes or [] if process_subject(p.unit, p.pid) == subject
                 and snap.taken_at - p.elapsed_seconds < began - 1]
        return None if older else True


def _measured_from(ctx: RuleContext) -> Snapshot | None:
    """The newest earlier look, periodic where there are such, at least
    ``runaway_min_seconds`` (a second at the least) before this one: what a sustained share
    is measured from. None where there is none: a short gap says nothing of "sustained"."""
    sustained = max(ctx.thresholds.runaway_min_seconds, 1.0)
    latest = ctx.rates_from
    for snap in reversed((*ctx.earlier_baselines, *([latest] if latest else []))):
        if snap.processes is not None and ctx.snapshot.taken_at - snap.taken_at >= sustained:
            return snap
    return None


def _between_listings(prev: Snapshot, now: Snapshot) -> float:
    """The wall seconds between two process listings: on the host's clock, when ps ran
    (``processes_listed_at``), where both say; else between the collections' ``taken_at``.
    ``taken_at`` is when a collection began (or its reply came back), and ps runs after the
    slower commands of a check: seconds later into one check than into the next on a slow
    host or after a journal backlog, and a hog's share was read too low or too high. Both
    moments on the host's clock: no offset of it from this machine's shifts their gap."""
    if prev.processes_listed_at is not None and now.processes_listed_at is not None \
            and now.processes_listed_at > prev.processes_listed_at:  # not a clock set back
        return now.processes_listed_at - prev.processes_listed_at
    return now.taken_at - prev.taken_at


def _listed_at(snap: Snapshot) -> float:
    """The moment its listing's process starts are counted from (see ``_processes``)."""
    return snap.processes_listed_at if snap.processes_listed_at is not None else snap.taken_at


def _used_since(ctx: RuleContext, prev: Snapshot, proc: Process,
                before: dict[int, Process]) -> int | None:
    """The CPU seconds the process used since ``prev``: by every process's CPU seconds
    listed then (whether or not that check kept the process), else by the processes it kept;
    None where it was not there then (a new process, a reused pid)."""
    if prev.cpu_seconds is not None:
        earlier = prev.cpu_seconds.get(proc.pid)
        start = round(_listed_at(ctx.snapshot)) - proc.elapsed_seconds
        if earlier is None or not same_process(earlier[0], start):
            return None
        return proc.cpu_seconds - earlier[1]
    kept = before.get(proc.pid)
    return proc.cpu_seconds - kept.cpu_seconds if kept and kept.command == proc.command \
        else None


def _evidence(share: float, span: float, proc: Process) -> str:
    return (f"pid {proc.pid}{in_unit(proc.unit)} user {proc.user} cpu {share:.0f}% over "
            f"{span:.0f} s, rss {proc.rss_kb} kB: {quote(proc.command, 200)}")
