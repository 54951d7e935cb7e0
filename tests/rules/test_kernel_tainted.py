"""kernel_tainted: the kernel recorded trouble since the host booted, in its taint flags."""

from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import evaluate
from ai_sysadmin.monitor.rules.kernel_tainted import KernelTainted

from ._snapshots import context, healthy_snapshot, only

RULE = KernelTainted()
#: the flags as Documentation/admin-guide/tainted-kernels.rst numbers them
P, M, B, U, D, W, OOT, E, L, K = (1, 16, 32, 64, 128, 512, 4096, 8192, 16384, 32768)


def tainted(mask: int):
    snap = healthy_snapshot()
    snap.kernel_taint = mask
    return snap


def found(mask: int) -> list[tuple[str, Severity]]:
    return [(f.subject, f.severity) for f in RULE.evaluate(context(tainted(mask)))]


def test_an_oops_is_critical_says_what_it_is_and_that_it_stays_until_the_next_boot():
    finding = only(RULE.evaluate(context(tainted(P | OOT | E | D))))
    assert (finding.rule, finding.subject, finding.severity) == (
        "kernel_tainted", "oops", Severity.CRITICAL)
    assert finding.summary == (
        "since the host booted, the kernel oopsed or hit a BUG: code died inside the kernel, "
        "and what it held (locks, half-done writes) may stay so (taint D); the flag stays set "
        "until the next boot, and so does this finding, dealt with or not")
    # the modules a person loaded are said beside it: what else ran in that kernel
    assert finding.evidence == (
        "/proc/sys/kernel/tainted = 12417: P (proprietary module), D (oops or BUG), "
        "O (out-of-tree module), E (unsigned module)",)


def test_hardware_and_memory_trouble_are_critical_a_warn_and_a_lockup_warnings():
    assert found(M) == [("machine-check", Severity.CRITICAL)]
    assert found(B) == [("bad-page", Severity.CRITICAL)]
    assert found(W) == [("kernel-warning", Severity.WARNING)]
    assert found(L) == [("lockup", Severity.WARNING)]
    machine_check = only(RULE.evaluate(context(tainted(M))))
    assert "processor reported a hardware error" in machine_check.summary


def test_a_person_s_choices_are_no_finding():
    # proprietary, out-of-tree, unsigned modules, a live patch, a flag set by hand, and a
    # flag a later kernel may add
    assert found(0) == []
    assert found(P | OOT | E | K | U | 1 << 25) == []


def test_each_trouble_is_its_own_finding_so_a_new_one_is_a_new_incident():
    # a WARN standing since last week keeps its subject when an oops follows it: one
    # incident stays as it was, and the oops opens another that a person is told about
    before = {f.fingerprint for f in RULE.evaluate(context(tainted(W)))}
    after = RULE.evaluate(context(tainted(W | D)))
    assert [(f.subject, f.severity) for f in after] == [
        ("oops", Severity.CRITICAL), ("kernel-warning", Severity.WARNING)]
    assert before < {f.fingerprint for f in after}
    assert after[0].evidence == ("/proc/sys/kernel/tainted = 640: D (oops or BUG), "
                                 "W (kernel warning)",)


def test_an_unread_taint_is_not_judged_and_a_clean_kernel_is():
    snap = healthy_snapshot()
    assert "kernel_tainted" in evaluate(context(snap))[1]
    snap.kernel_taint = None
    snap.errors["kernel_taint"] = "cat: /proc/sys/kernel/tainted: Permission denied"
    assert "kernel_tainted" not in evaluate(context(snap))[1]


def test_a_container_sees_its_hosts_kernel_and_does_not_judge_it():
    # an LXC container's /proc/sys/kernel/tainted is its host's: the host reports it once
    snap = tainted(D)
    snap.container = "lxc"
    findings, judged = evaluate(context(snap), rules=(RULE,))
    assert (findings, judged) == ([], set())
