from __future__ import annotations

from typing import NamedTuple

from ..findings import Finding, Severity
from .base import Rule, RuleContext


class Trouble(NamedTuple):
    """A taint flag that says something went wrong in the running kernel."""

    letter: str
    #: the finding's subject: the same for as long as the flag is set
    subject: str
    #: what happened, said after "since the host booted, the kernel"
    happened: str
    severity: Severity


#: bit -> the trouble it records (Documentation/admin-guide/tainted-kernels.rst). A machine
#: check, a bad page and an oops mean hardware or kernel memory can no longer be relied on:
#: critical. A WARN is the kernel's code meeting a state it did not expect and going on; a
#: lockup is a CPU held in the kernel for many seconds (20 s for a soft one), which an
#: overloaded hypervisor causes as often as a bug: warnings, for a person to read, not to
#: wake for
TROUBLE: dict[int, Trouble] = {
    4: Trouble("M", "machine-check", "saw a machine check exception: the processor "
               "reported a hardware error (CPU, memory or bus)", Severity.CRITICAL),
    5: Trouble("B", "bad-page", "found a bad page: memory it manages was corrupted (failing "
               "RAM, or a kernel bug)", Severity.CRITICAL),
    7: Trouble("D", "oops", "oopsed or hit a BUG: code died inside the kernel, and what it "
               "held (locks, half-done writes) may stay so", Severity.CRITICAL),
    9: Trouble("W", "kernel-warning", "issued a warning (WARN): its code met a state it did "
               "not expect", Severity.WARNING),
    14: Trouble("L", "lockup", "saw a CPU locked up: held in the kernel for many seconds "
                "without scheduling", Severity.WARNING),
}

#: every flag's letter and meaning, as the evidence names the others set beside the trouble:
#: modules a person loaded (proprietary, out-of-tree, unsigned, staging, forced), a live
#: patch, an ACPI table override, a distribution's or a test's mark are choices, never a
#: finding, but tell whoever reads an oops what else ran in that kernel
FLAGS: dict[int, str] = {
    0: "P (proprietary module)", 1: "F (module force-loaded)", 2: "S (CPU out of spec)",
    3: "R (module force-unloaded)", 4: "M (machine check)", 5: "B (bad page)",
    6: "U (set by a user)", 7: "D (oops or BUG)", 8: "A (ACPI table overridden)",
    9: "W (kernel warning)", 10: "C (staging module)", 11: "I (firmware bug worked around)",
    12: "O (out-of-tree module)", 13: "E (unsigned module)", 14: "L (lockup)",
    15: "K (live patched)", 16: "X (distribution's mark)", 17: "T (randstruct build)",
    18: "N (test module)", 19: "J (fwctl used)",
}

TAINTED = "/proc/sys/kernel/tainted"


class KernelTainted(Rule):
    """The running kernel recorded trouble since the host booted, in its taint flags
    (/proc/sys/kernel/tainted): a machine check, a bad page, an oops or BUG (critical), a
    WARN or a CPU lockup (warnings). Flags that record a person's choices (a proprietary,
    out-of-tree or unsigned module, a live patch) are never a finding.

    A flag stays set until the next boot, whatever was done about it: one finding a flag
    (subject: its name), so a standing taint is one incident that stays open, tells once,
    and resolves at the boot that clears it, and a new kind of trouble is a new incident a
    person hears about. The summary says it stays, so that one who dealt with it knows why
    it is still listed. Not judged in a container, whose /proc/sys/kernel/tainted is its
    host's kernel's: the host, checked itself, reports it once, not once a container.
    """

    name = "kernel_tainted"
    requires = ("kernel_taint", "container")
    of_the_host = True
    description = ("The kernel recorded trouble since the host booted (an oops, a machine "
                   "check, a bad page, a warning, a lockup): it stays until a boot.")

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        mask = ctx.snapshot.kernel_taint or 0
        evidence = [f"{TAINTED} = {mask}: {_flags(mask)}"]
        return [self.finding(ctx, trouble.subject, trouble.severity,
                             f"since the host booted, the kernel {trouble.happened} (taint "
                             f"{trouble.letter}); the flag stays set until the next boot, "
                             "and so does this finding, dealt with or not",
                             evidence)
                for bit, trouble in TROUBLE.items() if mask >> bit & 1]



def _flags(mask: int) -> str:
    return ", ".join(FLAGS.get(bit, f"bit {bit}") for bit in range(mask.bit_length())
                     if mask >> bit & 1)
