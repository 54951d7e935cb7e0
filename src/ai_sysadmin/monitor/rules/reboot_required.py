from __future__ import annotations

from ..findings import Finding, Severity, quote
from ..snapshot import BootChange
from .base import Rule, RuleContext


class RebootRequired(Rule):
    """The host does not run what it has installed until it boots: a new kernel (or initrd,
    or kernel modules) of the NixOS system it switched to since it booted, or the packages
    Debian and Ubuntu record in /run/reboot-required (a kernel, libc, a security update).

    A warning: what runs is the older, unpatched version, and only a boot changes that: the
    catalog's ``reboot``, high risk, which waits for a person at every autonomy level (the
    person picks the moment). One finding a host (subject ``boot``): a boot clears it, and
    what it says is what the host says now.
    """

    name = "reboot_required"
    requires = ("reboot", "nixos_boot")
    description = "The host runs an older kernel or packages than it has installed: a boot is due."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        changes = [*(ctx.snapshot.nixos_boot or []), *(ctx.snapshot.reboot or [])]
        if not changes:
            return []
        parts = ", ".join(dict.fromkeys(_part(c) for c in changes))
        return [self.finding(ctx, "boot", Severity.WARNING,
                             f"a boot is due: {parts} installed since the host booted do not "
                             "run until it boots again",
                             [_evidence(c) for c in changes])]


def _part(change: BootChange) -> str:
    return "packages" if change.part == "packages" else f"the {change.part}"


def _evidence(change: BootChange) -> str:
    if change.part == "packages":
        named = quote(change.installed, 300)
        return ("/run/reboot-required is there" +
                (f"; /run/reboot-required.pkgs names {named}" if named else ""))
    return (f"{change.part}: booted {quote(change.running, 200)}, current system's "
            f"{quote(change.installed, 200)}")
