from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import evaluate
from ai_sysadmin.monitor.rules.core_dump import CoreDumped
from ai_sysadmin.monitor.snapshot import CoreDump, ServiceResult

from ._snapshots import NOW, context, healthy_snapshot, only, snapshot

RULE = CoreDumped()
DUMPED = ServiceResult("core-dump", "dumped", 11, 4711)


def ended(results: dict[str, ServiceResult], dumps: list[CoreDump] | None = None):
    return snapshot(service_results=results, core_dumps=dumps or [])


def test_a_healthy_host_has_no_core_dump():
    assert RULE.evaluate(context(healthy_snapshot())) == []


def test_a_service_that_dumped_core_is_critical_with_systemds_own_words():
    finding = only(RULE.evaluate(context(ended({"webapp.service": DUMPED}))))

    assert (finding.rule, finding.subject, finding.severity) == (
        "core_dump", "webapp.service", Severity.CRITICAL)
    assert finding.summary == "webapp.service crashed and dumped core (signal SEGV)"
    assert finding.evidence == (
        "webapp.service: Result=core-dump, main process pid 4711 code=dumped status=11/SEGV",)


def test_other_failures_are_not_core_dumps():
    results = {"a.service": ServiceResult("exit-code", "exited", 3, 10),
               "b.service": ServiceResult("signal", "killed", 9, 11),
               "c.service": ServiceResult("timeout", "killed", 15, 12)}
    assert RULE.evaluate(context(ended(results))) == []


def test_the_dump_systemd_coredump_recorded_for_its_pid_is_quoted():
    dumps = [CoreDump(NOW - 50, 4711, 11, "/usr/bin/webapp", "present", 2 * 1024**2),
             CoreDump(NOW - 90, 999, 6, "/usr/bin/other", "none", None)]

    finding = only(RULE.evaluate(context(ended({"webapp.service": DUMPED}, dumps))))

    assert finding.evidence[1:] == (
        "coredumpctl: pid 4711 /usr/bin/webapp signal SEGV, core file present, 2.0 MiB",)


def test_a_dump_of_another_pid_is_not_quoted():
    dumps = [CoreDump(NOW - 90, 999, 6, "/usr/bin/other", "none", None)]
    finding = only(RULE.evaluate(context(ended({"webapp.service": DUMPED}, dumps))))
    assert len(finding.evidence) == 1


def test_without_the_service_results_the_rule_has_not_judged():
    snap = healthy_snapshot()
    snap.restarts = None
    snap.service_results = None
    snap.errors["restarts"] = "systemctl show: Access denied"
    findings, judged = evaluate(context(snap))
    assert "core_dump" not in judged and findings == []


def test_without_coredumpctls_list_the_rule_still_judges_from_systemd():
    # coredumpctl aborted on a forged journal entry: its error is shown, the verdict stands
    snap = healthy_snapshot()
    snap.service_results = {"webapp.service": DUMPED}
    snap.core_dumps = None
    snap.errors["core_dumps"] = "coredumpctl exited 134: Assertion 's' failed"
    findings, judged = evaluate(context(snap))
    assert "core_dump" in judged
    assert [(f.rule, f.subject, len(f.evidence)) for f in findings] == [
        ("core_dump", "webapp.service", 1)]


def test_a_control_process_that_dumped_is_not_given_the_main_processs_status():
    # ExecStartPre= crashed: the main process never ran
    pre = ServiceResult("core-dump", "", 0, None)
    finding = only(RULE.evaluate(context(ended({"migrate.service": pre}))))
    assert finding.summary == "migrate.service crashed and dumped core"
    assert finding.evidence == ("migrate.service: Result=core-dump, main process code=? status=0",)
