"""What a check of this machine finds of the machine itself, whatever a test does to it."""

from __future__ import annotations

from ai_sysadmin.lab.runner import HOST_WIDE_RULES

#: the rules that judge the machine a suite runs on, its load, memory and kernel (a suite on two
#: cores loads them), and its processes, which a host sharing its process table (this machine
#: itself, an sshd here in a network namespace) lists: another test's runaway or zombies
MACHINE_WIDE = HOST_WIDE_RULES | {"runaway_process", "zombie_processes"}

#: a config's [thresholds] that no busy machine reaches, for tests where what a check finds of
#: the machine running the suite is no matter
QUIET_THRESHOLDS = """
[thresholds]
load_per_core_warn = 100000
load_per_core_critical = 100000
memory_available_warn_percent = 0
memory_available_critical_percent = 0
memory_psi_some_avg60 = 100
swap_thrash_pages_per_second = 1e12
"""
