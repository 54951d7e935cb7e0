from __future__ import annotations

from ..findings import Finding, Severity, quote
from ..parsers import ZFS_KSTAT
from .base import Rule, RuleContext

#: states that are no trouble: a pool healthy, or being imported or exported just now (its
#: root vdev not there yet), which the next look sees settled
_WELL = frozenset({"ONLINE", "TRANSITIONING"})
#: what each other state means for the pool's data
_MEANS = {
    "DEGRADED": "it runs without part of its redundancy: the next failed device may take "
                "its data",
    "FAULTED": "it cannot be read: its data is unreachable",
    "UNAVAIL": "its devices cannot be opened: its data is unreachable",
    "SUSPENDED": "ZFS suspended its I/O after device failures: its reads and writes wait "
                 "or fail (failmode)",
    "REMOVED": "its devices were removed while in use",
    "OFFLINE": "its devices are offline",
}


class ZfsPoolUnhealthy(Rule):
    """An imported ZFS pool is not ONLINE, as OpenZFS (0.8 and later) says in
    /proc/spl/kstat/zfs/POOL/state: the state ``zpool status`` shows, read without running
    zpool (which can block for seconds on a sick pool).

    Critical, DEGRADED included: a degraded pool has lost redundancy just as a degraded md
    array has, and both are found before the second device fails, not after. One finding a
    pool (subject: its name). Judged only where ZFS's module is loaded (a host without ZFS
    has no pool to judge) and every pool's state was read (OpenZFS before 0.8 keeps none,
    and a pool not read must not pass for healthy), and not in a container, which sees its
    host's /proc/spl: the host, checked itself, reports its pools once, not once a container.
    """

    name = "zfs_pool_unhealthy"
    requires = ("zfs_pools", "container")
    of_the_host = True
    description = "A ZFS pool is DEGRADED, FAULTED, UNAVAIL, SUSPENDED or otherwise not ONLINE."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        return [self.finding(
            ctx, pool, Severity.CRITICAL,
            f"ZFS pool {pool} is {state}: "
            f"{_MEANS.get(state, 'ZFS does not call it healthy')}",
            [f"{ZFS_KSTAT}/{quote(pool, 200)}/state: {state}"])
            for pool, state in sorted((ctx.snapshot.zfs_pools or {}).items())
            if state not in _WELL]

