from __future__ import annotations

from ..findings import Finding, Severity, quote, size
from ..parsers import signal_name
from ..snapshot import CoreDump, ServiceResult
from .base import Rule, RuleContext


class CoreDumped(Rule):
    """A service whose main process crashed and dumped core, as systemd reports it.

    Decided from the unit's own ``Result=core-dump`` (``systemctl show``), which stays until
    the unit starts again or its failure is reset: a restart that works clears it. Where
    systemd-coredump is installed, the dump it recorded for that process (by the unit's last
    main pid) is quoted too: its executable, signal and whether the core file was kept.

    ``core_dumps`` is evidence only, so it is not required: the verdict is systemd's. Any
    user can write journal entries that make coredumpctl fail (one without COREDUMP_UID
    aborts it); that failure is shown as the section's error, and must not keep this rule
    from judging, nor its incidents from resolving once the unit runs again.
    """

    name = "core_dump"
    requires = ("restarts",)
    description = "A service crashed and dumped core (Result=core-dump)."
    subject_is_unit = True  # the unit systemd names (its result, a cgroup), or pid:N

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        dumps = {d.pid: d for d in ctx.snapshot.core_dumps or []}
        findings = []
        for unit, ended in sorted((ctx.snapshot.service_results or {}).items()):
            if ended.result != "core-dump":
                continue
            evidence = [_ended(unit, ended)]
            dump = dumps.get(ended.main_pid) if ended.main_pid is not None else None
            if dump is not None:
                evidence.append(_recorded(dump))
            # the main process's signal; a control process (ExecStartPre=...) may be the one
            # that dumped, and then the main process's status says nothing about it
            signal = (f" (signal {signal_name(ended.main_status)})"
                      if ended.main_code == "dumped" else "")
            findings.append(self.finding(
                ctx, unit, Severity.CRITICAL, f"{unit} crashed and dumped core{signal}",
                evidence))
        return findings


def _ended(unit: str, ended: ServiceResult) -> str:
    pid = f" pid {ended.main_pid}" if ended.main_pid is not None else ""
    status = (f"{ended.main_status}/{signal_name(ended.main_status)}"
              if ended.main_code in ("dumped", "killed") else str(ended.main_status))
    return (f"{unit}: Result={ended.result}, main process{pid} code={ended.main_code or '?'} "
            f"status={status}")


def _recorded(dump: CoreDump) -> str:
    kept = f", {size(dump.size_bytes)}" if dump.size_bytes is not None else ""
    return (f"coredumpctl: pid {dump.pid} {quote(dump.exe, 200)} signal "
            f"{signal_name(dump.signal)}, core file {dump.corefile or '?'}{kept}")
