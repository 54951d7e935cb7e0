"""host_limits_exhausted: the host near the kernel's limits of threads and file handles."""

from dataclasses import replace

from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import evaluate
from ai_sysadmin.monitor.rules.host_limits_exhausted import HostLimitsExhausted
from ai_sysadmin.monitor.snapshot import KernelLimits, Load

from ._snapshots import context, healthy_snapshot, only

RULE = HostLimitsExhausted()


def host(threads: int | None = 412, pid_max: int = 32768, threads_max: int = 127_431,
         files: int = 4_128, files_max: int = 1_000_000):
    snap = healthy_snapshot()
    snap.load = Load(0.5, 0.4, 0.3, threads)
    snap.kernel_limits = KernelLimits(pid_max, threads_max, files, files_max)
    return snap


def found(snap) -> list[tuple[str, Severity]]:
    return [(f.subject, f.severity) for f in RULE.evaluate(context(snap))]


def test_threads_near_pid_max_are_critical_and_say_what_fails_on_the_host():
    finding = only(RULE.evaluate(context(host(threads=31_500))))
    assert (finding.rule, finding.subject, finding.severity) == (
        "host_limits_exhausted", "threads", Severity.CRITICAL)
    assert finding.summary == (
        "the host runs 31500 of the 32768 threads the kernel allows (kernel.pid_max) "
        "(96.1%): at the limit every fork and new thread on the host fails with 'Resource "
        "temporarily unavailable'")
    assert finding.evidence == ("/proc/loadavg: 31500 threads; pid_max=32768, "
                                "threads-max=127431",)


def test_the_first_of_pid_max_and_threads_max_is_the_limit():
    # a small machine: threads-max (from its memory) comes before pid_max
    snap = host(threads=3_000, pid_max=4_194_304, threads_max=3_400)
    finding = only(RULE.evaluate(context(snap)))
    assert finding.severity is Severity.WARNING
    assert "3000 of the 3400 threads the kernel allows (kernel.threads-max)" in finding.summary
    assert found(host(threads=3_000, pid_max=4_194_304, threads_max=127_431)) == []


def test_file_handles_near_file_max_warn_then_are_critical():
    assert found(host(files=860_000)) == [("file-handles", Severity.WARNING)]
    critical = only(RULE.evaluate(context(host(files=990_000))))
    assert critical.severity is Severity.CRITICAL
    assert critical.summary == (
        "the host runs 990000 of the 1000000 file handles the kernel allocates (fs.file-max) "
        "(99%): at the limit opening a file or socket fails everywhere with 'Too many open "
        "files in system'")
    assert critical.evidence == ("/proc/sys/fs/file-nr: 990000 allocated of 1000000",)
    # systemd's fs.file-max of today: no host gets near it
    assert found(host(files=5_000_000, files_max=9_223_372_036_854_775_807)) == []


def test_a_well_host_and_one_whose_thread_count_is_not_given_have_no_finding():
    assert found(host()) == []
    assert found(host(threads=None, pid_max=100)) == []
    assert "host_limits_exhausted" in evaluate(context(healthy_snapshot()))[1]


def test_in_a_container_the_hosts_numbers_are_read_but_not_judged():
    snap = replace(host(threads=32_000, files=999_999), container="lxc")
    findings, judged = evaluate(context(snap))
    assert "host_limits_exhausted" not in judged
    assert not [f for f in findings if f.rule == "host_limits_exhausted"]


def test_unread_limits_are_not_judged():
    snap = host(threads=32_000)
    snap.kernel_limits = None
    snap.errors["kernel_limits"] = "cannot read /proc/sys/fs/file-nr"
    findings, judged = evaluate(context(snap))
    assert "host_limits_exhausted" not in judged
    assert not [f for f in findings if f.rule == "host_limits_exhausted"]
