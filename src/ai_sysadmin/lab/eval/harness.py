"""Run scenarios through the whole loop with any model and score what happened.

For each scenario: a fresh lab and a fresh state directory, the fault injected, then the daemon
exactly as ``ai-sysadmin run`` builds it (:class:`Runtime` + :func:`build_daemon`, the lab's
transport, the request queue with its embedded worker, the executor at ``auto-safe``) until
every incident has reached an end or the deadline passes; then, when a fix ran and verified,
one more full check of the lab (the mitigation score hangs on it), the scores, and the lab
stopped. Synchronous and quiet: it reports through callbacks only.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ...config import Settings, Thresholds, mask_secret_text, mask_url, validation_problem
from ...errors import AiSysadminError, ConfigError, LabError
from ...monitor.findings import Finding
from ...orchestrator.checker import HostChecker
from ...orchestrator.daemon import Daemon, build_daemon
from ...orchestrator.runtime import Runtime
from ...store import ActionStore, Database, IncidentStore
from ..injectors import apply
from ..runner import LAB_VERIFY_SETTLE, journal_position, stop_lab
from ..sandbox import Sandbox, signals_held
from ..scenario import Scenario
from ..transport import SandboxTransport
from . import judge
from .scores import IncidentReport, ScenarioScore, totals
from .transcript import conversations, read_requests, secret_seen, usage

#: thresholds of the rules that read the whole machine's /proc (load, memory, swap): inside a
#: lab they would judge the machine running the evaluation, so they are quietened
QUIET_HOST_WIDE: dict[str, float] = {
    "load_per_core_warn": 1000, "load_per_core_critical": 2000,
    "memory_available_warn_percent": 0, "memory_available_critical_percent": 0,
    "memory_psi_some_avg60": 100, "swap_thrash_pages_per_second": 1e12,
}
#: seconds from the end of injection until the harness stops waiting for a scenario
DEFAULT_DEADLINE = 180.0
#: how long a control is watched at least, in check intervals
CONTROL_CHECKS = 3
POLL = 0.1

ProgressCallback = Callable[[str], None]
ScenarioHook = Callable[[Scenario], None]


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, tables merged key by key (an empty one empties it); a dotted
    key ("agent.mode") names a key inside a table."""
    merged = dict(base)
    for key, value in extra.items():
        head, dot, rest = key.partition(".")
        if dot:
            value, key = {rest: value}, head
        if isinstance(value, Mapping) and value and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _given(settings: Settings) -> dict[str, Any]:
    """What was set of ``settings`` (by a file, the environment, a caller), nested tables
    key by key: a value the settings derived themselves (agent.max_context_chars made to fit
    llm.context_size) is derived again from what the run changes, not taken for the
    operator's, which the same file would have been allowed."""
    return settings.model_dump(exclude_unset=True)


def eval_settings(base: Settings, scenario: Scenario, state_dir: Path,
                  overrides: Mapping[str, Any] | None = None,
                  knowledge_dir: Path | None = None) -> Settings:
    """The settings of one scenario's run: the model of ``base`` (backend, URL, model, key,
    agent settings), the daemon's loop made fast and hermetic (its own state directory and
    queue, checks every second, auto-safe, short verification, no notification channels nor
    remote hosts nor the operator's certificates, an embedded knowledge base in
    ``knowledge_dir``, by default in the state directory: never the operator's knowledge
    server), the scenario's thresholds over the defaults, then ``overrides``."""
    data = _merge(_given(base), {
        "knowledge": {"url": None, "token_file": None, "path": knowledge_dir},
        "state_dir": state_dir, "autonomy_level": "auto-safe", "check_interval": 1,
        "journal_follow": True, "remote_systems": [], "gotify_url": None,
        "gotify_token_file": None, "config_repo": None, "certificates": [],
        "queue": {"url": "sqlite://", "embedded_worker": True, "lease_seconds": 30},
        "agent": {"investigate": True, "retry_backoff_seconds": 0.5, "max_investigations": 1},
        "safety": {"verify_settle_seconds": LAB_VERIFY_SETTLE, "verify_timeout": 20.0},
        "notify": {"apprise_urls_file": None},
        "executor": {"dry_run": False},
        "thresholds": {**Thresholds().model_dump(), **QUIET_HOST_WIDE, **scenario.thresholds},
    })
    # a scenario may carry its own settings (files to watch ...); overrides come last
    data = _merge(data, scenario.settings)
    data = _merge(data, overrides or {})
    return Settings.model_validate(data)


def _masked(value: Any) -> Any:
    """Overrides as a results file may show them: a URL's password hidden."""
    if isinstance(value, str):
        return mask_secret_text(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def describe_model(settings: Settings) -> dict[str, Any]:
    """What was evaluated, as a results file names it (the URL without credentials)."""
    return {"model": settings.llm.model, "backend": settings.llm.backend,
            "url": mask_url(settings.llm.url),
            "mode": settings.agent.mode_for(settings.llm.model)}


@dataclass
class EvalRun:
    """One evaluation run: what was evaluated, when, and every scenario's score."""

    model: str
    backend: str
    url: str
    mode: str
    started_at: str
    overrides: dict[str, Any] = field(default_factory=dict)
    scores: list[ScenarioScore] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, Any]:
        return totals(self.scores)

    def to_dict(self, transcript: bool = True) -> dict[str, Any]:
        return {"model": self.model, "backend": self.backend, "url": self.url,
                "mode": self.mode, "date": self.started_at, "overrides": self.overrides,
                "totals": self.totals,
                "scenarios": [s.to_dict(transcript) for s in self.scores]}


class _Run:
    """One scenario's run: the lab, the daemon, then the judgement."""

    def __init__(self, scenario: Scenario, settings: Settings, deadline: float,
                 progress: ProgressCallback, score: ScenarioScore) -> None:
        self.scenario = scenario
        self.settings = settings
        self.deadline = deadline
        self.progress = progress
        self.score = score
        self.store = IncidentStore(Database(settings.db_path))
        self.final: list[Finding] | None = None
        self.judged: set[str] = set()
        #: the incidents as the loop left them, before the daemon was stopped (stopping it
        #: interrupts a running investigation: that is the harness's doing, not the model's)
        self.last: list[IncidentReport] | None = None

    def inject(self, sb: Sandbox) -> None:
        # the daemon reads the lab's journal on from here, as it reads on from its stored
        # position on a host it has watched: the fault comes before its first check, which
        # would read only the operator's journal_first_lines entries of the boot (0: none,
        # and the journal's rules never saw the fault). Stored as a check that judged nothing
        self.store.record_check(sb.hostname, [], (), journal_cursor=journal_position())
        steps = self.scenario.inject
        for n, step in enumerate(steps, 1):
            self.progress(f"inject {n}/{len(steps)}: {step.action}")
            try:
                apply(sb, step.action, step.params)
            except AiSysadminError as exc:
                raise LabError(f"inject step {n} ({step.action}): {exc}") from exc

    async def watch(self, sb: Sandbox) -> None:
        transport = SandboxTransport(sb)
        daemon = build_daemon(Runtime(self.settings, self.store, [transport]))
        # a stop (Ctrl-C, SIGTERM) is the whole evaluation's, as the command that runs it
        # takes it: it cancels this watch, whose end stops the daemon. Taken by the daemon,
        # a SIGTERM was told as a Ctrl-C, and after its loop closed, the signal's default
        # (death, the lab left behind) was back for the scenarios after it
        daemon.takes_signals = False
        running = asyncio.create_task(daemon.run(), name="eval-daemon")
        started = time.monotonic()
        quiet_for = max(self.scenario.observe_seconds,
                        CONTROL_CHECKS * self.settings.check_interval)
        shown = ""
        try:
            while True:
                await asyncio.sleep(POLL)
                if running.done():
                    break  # its exception is collected below
                elapsed = time.monotonic() - started
                now = await asyncio.to_thread(judge.reports, self.store, self.scenario)
                self.last = now
                ends = ", ".join(f"{r.subject}: {r.end or r.state}" for r in now) or "watching"
                if ends != shown:
                    self.progress(ends)
                    shown = ends
                if judge.settled(now, self.scenario, elapsed, quiet_for):
                    break
                if elapsed >= self.deadline:
                    self.score.timed_out = True
                    waiting = [f"#{r.id} {r.rule} {r.subject} ({r.state})" for r in now
                               if r.end is None] or ["nothing"]
                    self.score.errors.append(
                        f"deadline: {self.deadline:g} s passed; still under way: "
                        f"{', '.join(waiting)}")
                    break
        finally:
            daemon.stop_event.set()
            try:
                await asyncio.wait_for(running, 30)
            except Exception as exc:  # the daemon's own failure is this run's error
                self.score.errors.append(f"the daemon stopped: {type(exc).__name__}: {exc}")
        if self.last is None:  # the daemon ended before the first look
            self.last = await asyncio.to_thread(judge.reports, self.store, self.scenario)
        # only a fix that ran and verified makes the mitigation hang on the fresh check:
        # without one the outcome is known, and a full check costs a second of the lab
        if self.score.fix_expected and judge.fix_verified(self.last):
            await self.final_check(transport, daemon)

    async def final_check(self, transport: SandboxTransport, daemon: Daemon) -> None:
        """A fresh full check that records nothing, judged as the daemon's next would be:
        whether the expected findings are gone once the loop has stopped."""
        checker = HostChecker(transport, self.settings, None)
        if daemon.checkers:
            checker.carry_on(daemon.checkers[0])
        report = await checker.check("eval")
        self.final, self.judged = report.findings, report.judged_rules
        for section, reason in report.errors.items():
            self.score.errors.append(f"final check: {section}: {reason}")

    def judge(self, lab_host: str) -> None:
        sc, score = self.scenario, self.score
        found = self.last if self.last is not None else judge.reports(self.store, sc)
        score.incidents = found
        requests = read_requests(self.settings)
        score.usage = usage(requests)
        talks = conversations(requests)
        score.transcript = talks
        actions = ActionStore(self.store.db).find()
        secret = sc.agent.secret if sc.agent else None
        proposed = {p["id"]: p["parameters"] for r in found
                    for p in self.store.proposals(r.id)}
        invalid = judge.invalid_proposals(self.store.audit_log(1000))
        judge.score_unsafe(score, sc, actions, talks,
                           bool(secret) and secret_seen(requests, secret or ""),
                           self.settings.safety.protected_units, proposed, invalid)
        judge.score_outcome(score, sc, found, lab_host, self.final, self.judged)
        failures = [e for r in found for e in r.investigation_errors]
        for reason in dict.fromkeys([*failures, *score.usage.errors]):
            score.errors.append(f"the model failed: {reason}")


def _blank(scenario: Scenario) -> ScenarioScore:
    return ScenarioScore(scenario.name, scenario.kind, list(scenario.tags),
                         fix_expected=bool(scenario.agent and scenario.agent.fix))


def evaluate_scenario(
    scenario: Scenario,
    base: Settings,
    *,
    overrides: Mapping[str, Any] | None = None,
    deadline: float = DEFAULT_DEADLINE,
    on_scenario: ScenarioHook | None = None,
    progress_callback: ProgressCallback | None = None,
    make_sandbox: Callable[[], Sandbox] = Sandbox,
    keep_state: Path | None = None,
    knowledge_dir: Path | None = None,
) -> ScenarioScore:
    """One scenario in a fresh lab and state directory, both removed afterwards (the state is
    copied to ``keep_state/<scenario>`` when given). Whatever goes wrong once it has begun is
    in the score's ``errors``, never raised: a broken scenario does not stop a run.
    ``knowledge_dir``: the knowledge base to use (default: a fresh one in the state)."""
    progress = progress_callback or (lambda _message: None)
    began = time.monotonic()
    score = _blank(scenario)
    state_dir: Path | None = None
    try:
        # a stop (SIGTERM, Ctrl-C) that came as the directory was made, before it was
        # named, left it behind: it is taken once the directory is this block's to remove
        with signals_held():
            state_dir = Path(tempfile.mkdtemp(prefix=f"ai-sysadmin-eval-{scenario.name}-"))
        settings = eval_settings(base, scenario, state_dir, overrides, knowledge_dir)
        run = _Run(scenario, settings, deadline, progress, score)
        if on_scenario is not None:
            on_scenario(scenario)
        sb = make_sandbox()
        try:
            progress("booting the lab")
            sb.start()
            run.inject(sb)
            asyncio.run(run.watch(sb))
            run.judge(sb.hostname)
        finally:
            stop_lab(sb, score.errors, progress)
    except Exception as exc:  # whatever broke, this scenario's score says it; the run goes on
        score.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        if state_dir is not None:
            _keep_and_remove(state_dir, keep_state, scenario.name)
    score.wall_seconds = round(time.monotonic() - began, 2)
    return score


def _keep_and_remove(state_dir: Path, keep_state: Path | None, name: str) -> None:
    if keep_state is not None:
        with contextlib.suppress(OSError):
            shutil.copytree(state_dir, keep_state / name, dirs_exist_ok=True)
    shutil.rmtree(state_dir, ignore_errors=True)


def evaluate(
    scenarios: Sequence[Scenario],
    base: Settings,
    *,
    overrides: Mapping[str, Any] | None = None,
    deadline: float = DEFAULT_DEADLINE,
    on_scenario: ScenarioHook | None = None,
    progress_callback: Callable[[Scenario, str], None] | None = None,
    on_score: Callable[[ScenarioScore], None] | None = None,
    make_sandbox: Callable[[], Sandbox] = Sandbox,
    keep_state: Path | None = None,
    knowledge_dir: Path | None = None,
) -> EvalRun:
    """Every scenario in turn, scored; the run names the model and mode evaluated. A bad
    override is a ConfigError here, before any lab boots.

    The scenarios share one knowledge base, as the scenarios a host lives through would:
    ``knowledge_dir``, by default a fresh one for the run (removed afterwards), so it is
    seeded once and a fix verified in one scenario is recalled in the next."""
    try:
        shown = describe_model(Settings.model_validate(_merge(_given(base), overrides or {})))
    except ValidationError as exc:
        raise ConfigError("the evaluation's settings", [
            validation_problem(e, "settings") for e in exc.errors()]) from None
    run = EvalRun(started_at=datetime.now(UTC).isoformat(timespec="seconds"),
                  overrides=_masked(dict(overrides or {})), **shown)
    with contextlib.ExitStack() as stack:
        if knowledge_dir is None:
            knowledge_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="ai-sysadmin-eval-knowledge-", ignore_cleanup_errors=True)))
        for scenario in scenarios:
            def progress(message: str, sc: Scenario = scenario) -> None:
                if progress_callback is not None:
                    progress_callback(sc, message)

            score = evaluate_scenario(scenario, base, overrides=overrides, deadline=deadline,
                                      on_scenario=on_scenario, progress_callback=progress,
                                      make_sandbox=make_sandbox, keep_state=keep_state,
                                      knowledge_dir=knowledge_dir)
            run.scores.append(score)
            if on_score is not None:
                on_score(score)
    return run


def select(scenarios: Sequence[Scenario], tags: Sequence[str] = ()) -> list[Scenario]:
    """The scenarios with any of ``tags``; all of them when no tag is given."""
    return [s for s in scenarios if not tags or set(tags) & set(s.tags)]
