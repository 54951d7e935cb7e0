"""The names of the structured remediation actions the model may propose.

A proposal is data: kind + parameters + rationale. Its risk, preconditions and argv come from
the action catalog (policy code), never from the model.
"""

from __future__ import annotations

ACTION_KINDS: dict[str, str] = {
    "restart_unit": "restart a systemd unit {unit}",
    "start_unit": "start a systemd unit {unit}",
    "reset_failed_unit": "clear the failed state of {unit}",
    "vacuum_journal": "shrink the journal to {max_size}",
    "nix_gc": "collect Nix store garbage older than {older_than}",
    "nix_rollback_generation": "roll NixOS back to the previous generation",
    "kill_process": "kill process {pid}",
    "clean_directory": "delete old files in a configured cache/tmp {path}",
    "update_packages": "install pending package updates",
    "nixos_rebuild_switch": "rebuild and switch the NixOS configuration",
    "reboot": "reboot the host",
    "run_command": "run one command {argv} (high risk, still through policy)",
}
