"""Run a fault drill: boot a lab, inject, watch full checks until detected, fix, watch it clear.

A full check is exactly what the daemon does to any host: ``Collector(transport).collect()``
then every detection rule, each snapshot judged against the one before. The runner never
prints; it reports through the optional progress callback and the returned DrillResult.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..config import Settings, Thresholds
from ..errors import AiSysadminError, LabError
from ..monitor.collector import SINCE_PREFIX, Collector, JournalQuery
from ..monitor.findings import Finding
from ..monitor.rules import RuleContext, evaluate
from ..monitor.snapshot import Snapshot
from .injectors import apply
from .sandbox import Sandbox, signals_held
from .scenario import Expectation, Scenario, Step, load_scenario
from .transport import SandboxTransport

#: seconds between two full checks; one check of a lab takes about 50 ms
POLL_INTERVAL = 0.2
#: a drill judges two checks at least, whatever its deadline: some rules compare a snapshot
#: with the previous one, so a single check can neither detect their fault nor prove silence
MIN_CHECKS = 2
#: a drill's ``safety.verify_settle_seconds``, as the evaluation's daemon verifies a fix in a
#: lab: the findings a fix clears must stay gone this long before it counts, as the daemon's
#: own verification asks of any fix (a unit restarted beside what kills it again is active,
#: and its finding gone, for the moment it takes to die)
LAB_VERIFY_SETTLE = 1.0

ProgressCallback = Callable[[str], None]


#: rules that read what is not namespaced: /proc/loadavg, /proc/meminfo, /proc/vmstat and
#: memory PSI, the kernel's taint flags, the file systems' error counts in sysfs (a lab's
#: mounts are its machine's), the machine's threads and file handles. Inside a lab they judge
#: the whole machine running the drill, so a busy machine, or one whose kernel once warned,
#: must not fail a drill about something else
HOST_WIDE_RULES = frozenset({"load_per_core", "memory_pressure", "swap_thrash",
                             "kernel_tainted", "filesystem_errors", "host_limits_exhausted"})


def journal_position() -> str:
    """Where the checks of a lab read its journal from: now, taken before its fault is
    injected, as a daemon that has watched a host reads on from its stored position. A lab
    shares this machine's clock. Without one, a check reads the last
    ``journal_first_lines`` entries of the boot, which the operator may have set to 0 (or
    so few that the fault's are not among them): the journal's rules then never saw it."""
    return f"{SINCE_PREFIX}{time.time():.6f}"


@dataclass
class DrillResult:
    """What one drill showed. Times are seconds from the end of injection / of the fix."""

    scenario: str
    detected: bool = False
    time_to_detect: float | None = None
    #: what the fix must clear went, and stayed gone ``safety.verify_settle_seconds``
    #: (``time_to_recover``: until it went)
    recovered: bool = False
    time_to_recover: float | None = None
    #: every distinct finding seen during the drill (by fingerprint), in order of appearance
    findings: list[Finding] = field(default_factory=list)
    #: findings that matched neither ``expect``, ``tolerate`` nor ``verify``
    unexpected: list[Finding] = field(default_factory=list)
    #: expectations never met, as "rule subject"
    missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    checks: int = 0

    @property
    def ok(self) -> bool:
        return self.detected and self.recovered and not self.unexpected and not self.errors

    def to_dict(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "ok": self.ok,
            "detected": self.detected,
            "time_to_detect": self.time_to_detect,
            "recovered": self.recovered,
            "time_to_recover": self.time_to_recover,
            "findings": [f.to_dict() for f in self.findings],
            "unexpected": [f.to_dict() for f in self.unexpected],
            "missing": list(self.missing),
            "errors": list(self.errors),
            "checks": self.checks,
        }


class _Watch:
    """Full checks of one lab; remembers what it saw for the DrillResult."""

    def __init__(self, sb: Sandbox, settings: Settings, scenario: Scenario, result: DrillResult,
                 journal: str):
        self.collector = Collector(SandboxTransport(sb), settings)
        #: every check reads the whole journal since the fault (``journal``: a position taken
        #: before it), as the checks before read the last entries of the boot: what a
        #: finding rests on is read again by each, and the rules' windows keep the recent
        self.journal = JournalQuery(after_cursor=journal)
        self.thresholds = settings.thresholds
        self.known = [*scenario.expect, *scenario.tolerate, *(scenario.verify or [])]
        self.result = result
        self.previous: Snapshot | None = None
        self._seen: set[str] = set()

    def check(self, keep: bool = True) -> list[Finding]:
        """One full check; ``keep``: as the daemon's checks woken by the journal, which come
        as often as a drill polls, keep what is read only every so often (the unit files):
        the first check after the lab was changed reads everything."""
        snapshot = asyncio.run(self.collector.collect(self.journal, keep=keep))
        findings, _judged = evaluate(RuleContext(snapshot, self.thresholds, self.previous))
        self.previous = snapshot
        self.result.checks += 1
        for section, reason in snapshot.errors.items():
            # a section that cannot be collected silences its rules: that must be visible
            _add_once(self.result.errors, f"check: {section}: {reason}")
        for finding in findings:
            if finding.fingerprint in self._seen:
                continue
            self._seen.add(finding.fingerprint)
            self.result.findings.append(finding)
            if finding.rule in HOST_WIDE_RULES:
                continue  # the machine running the drill, not the lab: neither here nor there
            if not any(e.matches(finding) for e in self.known):
                self.result.unexpected.append(finding)
        return findings


def stop_lab(sb: Sandbox, errors: list[str], progress: ProgressCallback) -> None:
    """Tear the lab down; a failure to is one more error of the run, never its end. A
    Ctrl-C meanwhile (its progress shown) is raised once the lab is gone."""
    with signals_held():
        progress("stopping the lab")
        try:
            sb.stop()
        except LabError as exc:
            errors.append(f"stop: {exc}")


def _add_once(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


def _unmet(expectations: Sequence[Expectation], findings: Sequence[Finding]) -> list[str]:
    return [str(e) for e in expectations if not any(e.matches(f) for f in findings)]


def _still_there(expectations: Sequence[Expectation], findings: Sequence[Finding]) -> list[str]:
    return [str(e) for e in expectations if any(e.matches(f) for f in findings)]


def _steps(sb: Sandbox, phase: str, steps: Sequence[Step], progress: ProgressCallback) -> None:
    for n, step in enumerate(steps, 1):
        progress(f"{phase} {n}/{len(steps)}: {step.action}")
        try:
            apply(sb, step.action, step.params)
        except AiSysadminError as exc:
            raise LabError(f"{phase} step {n} ({step.action}): {exc}") from exc


def _detect(watch: _Watch, scenario: Scenario, result: DrillResult) -> None:
    """Poll until every expectation is met (or, for a control, until the silence has lasted)."""
    started = time.monotonic()
    control = not scenario.expect
    deadline = started + (scenario.observe_seconds if control else scenario.detect_timeout)
    first = True
    while True:
        findings, first = watch.check(keep=not first), False
        elapsed = time.monotonic() - started
        if not control and not _unmet(scenario.expect, findings):
            result.detected, result.time_to_detect = True, elapsed
            return
        if time.monotonic() >= deadline and result.checks >= MIN_CHECKS:
            if control:
                result.detected = True  # nothing was expected and nothing was missed
                return
            result.missing = _unmet(scenario.expect, findings)
            return
        time.sleep(POLL_INTERVAL)


def _recover(watch: _Watch, scenario: Scenario, result: DrillResult, settle: float) -> None:
    """Poll until what the fix must clear is gone and has stayed gone ``settle`` seconds, as
    the daemon verifies a fix: the first check without the finding may come in the moment
    a restarted unit is up before it fails again."""
    started = time.monotonic()
    deadline = started + scenario.recover_timeout
    gone_since: float | None = None
    came_back: list[str] = []
    first = True
    while True:
        findings, first = watch.check(keep=not first), False
        now = time.monotonic()
        left = _still_there(scenario.must_clear, findings)
        if left:
            if gone_since is not None:
                came_back = left
            gone_since = None
        else:
            gone_since = now if gone_since is None else gone_since
            if now - gone_since >= settle:
                result.recovered, result.time_to_recover = True, gone_since - started
                return
        if now >= deadline:
            result.errors.append(_not_recovered(scenario, settle, left, came_back,
                                                now - (gone_since or now)))
            return
        time.sleep(POLL_INTERVAL)


def _not_recovered(scenario: Scenario, settle: float, left: list[str],
                   came_back: list[str], gone_for: float) -> str:
    after = f"{scenario.recover_timeout:g} s after the fix"
    if not left:
        return f"gone only {gone_for:.1f} s of the {settle:g} s it must stay gone, {after}"
    again = f" (back after it had gone: {', '.join(came_back)})" if came_back else ""
    return f"still present {after}: {', '.join(left)}{again}"


def _resolve(scenario: Scenario | str | os.PathLike[str]) -> Scenario:
    return scenario if isinstance(scenario, Scenario) else load_scenario(scenario)


def drill_settings(scenario: Scenario, settings: Settings) -> Settings:
    """The settings a drill checks its lab with: ``settings`` without what describes the
    operator's hosts (the certificates watched there, which the lab has not got, and the
    thresholds tuned for them, which a scenario's timings do not assume), a fix verified as
    the evaluation verifies one in a lab (:data:`LAB_VERIFY_SETTLE`), then the scenario's own
    settings and thresholds over the defaults."""
    safety = settings.safety.model_copy(update={"verify_settle_seconds": LAB_VERIFY_SETTLE})
    own = scenario.settings_over(settings.model_copy(update={"certificates": [],
                                                             "safety": safety}))
    return own.model_copy(update={"thresholds": scenario.thresholds_over(Thresholds())})


def run_scenario(
    scenario: Scenario | str | os.PathLike[str],
    settings: Settings,
    progress_callback: ProgressCallback | None = None,
    *,
    make_sandbox: Callable[[], Sandbox] = Sandbox,
) -> DrillResult:
    """Run one drill in a fresh lab, which is always stopped and removed afterwards.

    Synchronous (it blocks for the drill's few seconds); from async code, call it in a thread.

    ``scenario`` is a Scenario, a shipped scenario's name or a ``*.toml`` path; an unknown name
    raises NotFoundError and a bad file LabError. Everything that goes wrong once the drill has
    begun (the lab does not boot, a step fails, a check section fails) is reported in
    ``DrillResult.errors``.
    """
    sc = _resolve(scenario)
    progress = progress_callback or (lambda _message: None)
    settings = drill_settings(sc, settings)
    result = DrillResult(scenario=sc.name)
    sb = make_sandbox()
    try:
        booted = time.monotonic()
        progress("booting the lab")
        sb.start()
        progress(f"lab up in {time.monotonic() - booted:.2f} s (systemd pid {sb.pid1})")
        watch = _Watch(sb, settings, sc, result, journal_position())
        _steps(sb, "inject", sc.inject, progress)
        _detect(watch, sc, result)
        if not result.detected:
            progress(f"not detected: missing {', '.join(result.missing)}")
            return result
        if sc.expect:
            progress(f"detected in {result.time_to_detect:.2f} s")
        else:
            progress(f"control: {result.checks} checks, {len(result.findings)} findings")
        if not sc.fix and not sc.must_clear:
            result.recovered = True  # a control: nothing broke, nothing to repair
            return result
        _steps(sb, "fix", sc.fix, progress)
        settle = settings.safety.verify_settle_seconds
        _recover(watch, sc, result, settle)
        if result.recovered:
            progress(f"recovered in {result.time_to_recover:.2f} s (gone for {settle:g} s)")
    except AiSysadminError as exc:
        result.errors.append(str(exc))
    finally:
        stop_lab(sb, result.errors, progress)
    return result
