"""The remediation shapes: the argvs a fix may run, each with the risk the policy gives it.
Pure code, no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from ..redact import redact_cut
from .argv_parser import (
    Decision,
    Refused,
    Risk,
    Spec,
    charset,
    deny,
    flags,
    opt,
    parse_args,
)
from .protected import SYSTEM_UNITS, protected_reason
from .readonly_commands import (
    JOURNALCTL,
    REDIRECT,
    SYSTEMCTL,
)
from .units import mangle, parse_unit, unit_problem

_REMEDIATE = "in a remediation"
_UNIT_VERBS: dict[str, Risk] = {
    "restart": "low", "try-restart": "low", "reload-or-restart": "low",
    "try-reload-or-restart": "low", "reload": "low", "start": "low", "reset-failed": "low",
    "stop": "medium", "disable": "medium", "mask": "medium",
}
#: verbs a person may still run on a protected unit (high risk); reset-failed stays low
_PROTECTED_WITH_PERSON = frozenset({"restart", "try-restart", "reload-or-restart",
                                    "try-reload-or-restart", "reload", "start"})
_NEVER_VERBS: dict[str, str] = {
    "kill": "kills a unit's processes (use kill_process with one PID)",
    "isolate": "stops every unit the target does not want",
    "freeze": "freezes a unit's processes", "clean": "deletes a unit's state, cache or logs",
    **dict.fromkeys(("poweroff", "halt", "kexec", "suspend", "hibernate", "hybrid-sleep",
                     "suspend-then-hibernate", "soft-reboot", "emergency", "rescue", "default",
                     "switch-root", "exit"), "changes the state of the whole host"),
}
#: starting one of these powers off, reboots or drops to a rescue shell
_SYSTEM_STATE_TARGETS = frozenset(f"{t}.target" for t in (
    "poweroff", "reboot", "halt", "kexec", "shutdown", "emergency", "rescue", "soft-reboot",
    "ctrl-alt-del", "exit", "final", "sleep", "suspend", "hibernate", "hybrid-sleep",
    "suspend-then-hibernate", "umount", "factory-reset", "initrd-switch-root",
    "system-update"))

_FILE_SYSTEM_TYPES = frozenset({"mount", "automount", "swap"})
_WHOLE_TYPES = {"slice": "it acts on every unit in the slice",
                "scope": "it acts on a whole session, container or the system manager",
                "device": "devices come and go with the hardware, not with systemctl"}


def _whole_system(unit: str, unit_type: str) -> str | None:
    if unit in _SYSTEM_STATE_TARGETS:
        return "it powers off, reboots, suspends or leaves the normal system state"
    if unit in SYSTEM_UNITS:
        return f"it is {SYSTEM_UNITS[unit]}"
    return _WHOLE_TYPES.get(unit_type)


SYSTEMCTL_REMEDIATE = Spec(
    options=flags("--no-pager, --no-ask-password, -q --quiet"),
    denied={**{k: v for k, v in SYSTEMCTL.denied.items() if k in REDIRECT},
            **deny("--runtime --force -f --now -i --ignore-inhibitors --kill-whom --signal -s "
                   "--job-mode --no-block --wait --no-reload --no-wall --global --dry-run "
                   "--drop-in --when --what --marked",
                   "is not allowed in a remediation: only the plain verb is")},
)


def _unit_operand(verb: str, operands: list[str]) -> str:
    if not operands:
        raise Refused(f"systemctl {verb} needs a unit")
    if len(operands) > 1:
        raise Refused(f"systemctl {verb} takes one unit at a time here")
    given = operands[0]
    if set("*?[") & set(given):
        raise Refused(f"systemctl {verb} {redact_cut(given, 40)!r}: patterns are not allowed when "
                       "changing the host; name one unit")
    if problem := unit_problem(mangle(given)):
        raise Refused(f"{redact_cut(given, 60)!r} is not a valid systemd unit name: {problem}")
    return mangle(given)


def _is_read(args: list[str]) -> bool:
    try:
        operands = parse_args("systemctl", SYSTEMCTL, args, "").operands
    except Refused:
        return False
    return not operands or operands[0] in (SYSTEMCTL.subcommands or ())


def systemctl_operands(args: list[str]) -> list[str] | None:
    """The verb and operands of a systemctl argv (after ``systemctl``) as the policy reads
    them (``--`` ends the options); None when neither a remediation nor a read parses."""
    for spec in (SYSTEMCTL_REMEDIATE, SYSTEMCTL):
        try:
            return parse_args("systemctl", spec, args, _REMEDIATE).operands
        except Refused:
            continue
    return None


def _systemctl(args: list[str], protected: tuple[str, ...]) -> Decision | None:
    try:
        parsed = parse_args("systemctl", SYSTEMCTL_REMEDIATE, args, _REMEDIATE)
    except Refused:
        if _is_read(args):
            return None  # a read: the read-only allow-list decides
        raise
    if not parsed.operands or parsed.operands[0] in (SYSTEMCTL.subcommands or ()):
        return None
    verb, operands = parsed.operands[0], parsed.operands[1:]
    if verb not in _UNIT_VERBS and verb not in _NEVER_VERBS and verb != "reboot":
        raise Refused(f"systemctl {verb} is not on the remediation allow-list (allowed: "
                       f"{', '.join(_UNIT_VERBS)}, reboot)")
    if verb == "reboot":
        if operands:
            raise Refused("systemctl reboot takes no operands here")
        return Decision(True, "reboots the host", "high")
    unit = _unit_operand(verb, operands) if operands or verb in _UNIT_VERBS else None
    why = protected_reason(unit, protected) if unit else None
    if why and unit and verb not in _PROTECTED_WITH_PERSON and verb != "reset-failed":
        raise Refused(f"{unit} is protected ({why}): systemctl {verb} is never run on it, at "
                       "any autonomy level")
    if verb in _NEVER_VERBS:
        raise Refused(f"systemctl {verb} is never run by automation: it "
                       f"{_NEVER_VERBS[verb]}")
    assert unit is not None
    parsed_unit = parse_unit(unit)
    if parsed_unit.is_template:
        raise Refused(f"{unit} is a template: name an instance")
    if verb != "reset-failed" and (whole := _whole_system(unit, parsed_unit.type)):
        raise Refused(f"systemctl {verb} {unit} is never run by automation: {whole}")
    if unit[0] in "-.":
        # a name a reader of the argv could take for an option (the root slice and mount,
        # the only units so named, are refused above)
        raise Refused(f"systemctl {verb} {redact_cut(unit, 60)!r}: a unit that starts with "
                      f"{unit[0]!r} is never changed by a remediation")
    if why and verb in _PROTECTED_WITH_PERSON:
        return Decision(True, f"protected unit: needs a person ({unit}: {why})", "high")
    risk = _UNIT_VERBS[verb]
    if parsed_unit.type in _FILE_SYSTEM_TYPES and verb != "reset-failed":
        # unmounting /var or /nix, or turning swap off, can take the host down
        risk = "high" if risk == "medium" else "medium"
        return Decision(True, f"systemctl {verb} of {unit} (a file system or swap)", risk)
    return Decision(True, f"systemctl {verb} of {unit}", risk)


_VACUUM_SIZE = re.compile(r"([1-9][0-9]{0,5})([KMG])")
_VACUUM_TIME = re.compile(r"([1-9][0-9]{0,3})(d|w|month|months|y|year|years)")
_DAYS = {"d": 1, "w": 7, "month": 30, "months": 30, "y": 365, "year": 365, "years": 365}
JOURNALCTL_REMEDIATE = Spec(
    options=flags("--no-pager, -q --quiet") + (
        opt("--vacuum-size", value=charset(_VACUUM_SIZE.pattern, "is not a size like 500M")),
        opt("--vacuum-time", value=charset(_VACUUM_TIME.pattern, "is not a time like 30d"))),
    denied={**REDIRECT, **{k: v for k, v in JOURNALCTL.denied.items()
                            if k not in ("--vacuum-size", "--vacuum-time")},
            "--vacuum-files": "is not on the remediation allow-list (use --vacuum-size or "
                              "--vacuum-time)"},
    max_operands=0,
)


def _journalctl(args: list[str], protected: tuple[str, ...]) -> Decision | None:
    if not any(len(a) > 4 and "--vacuum-".startswith(a.partition("=")[0][:9]) for a in args):
        return None
    parsed = parse_args("journalctl", JOURNALCTL_REMEDIATE, args, _REMEDIATE)
    if parsed.operands:
        raise Refused("journalctl takes no operands when vacuuming")
    size, time = parsed.value("--vacuum-size"), parsed.value("--vacuum-time")
    # one of them, once: journalctl takes the last of a repeated one, this the first, and
    # "--vacuum-size=500M --vacuum-size=1K" would be judged (and shown) as the 500M it is not
    vacuums = sum(name in ("--vacuum-size", "--vacuum-time") for name, _ in parsed.options)
    if vacuums != 1 or len(parsed.options) > 2:
        raise Refused("journalctl vacuums with one --vacuum-size or one --vacuum-time")
    if size is not None:
        match = _VACUUM_SIZE.fullmatch(size)
        assert match is not None
        mib = int(match.group(1)) * {"K": 1 / 1024, "M": 1, "G": 1024}[match.group(2)]
        if mib < 100:
            return Decision(True, f"shrinks the journal to {size}: little history is left",
                            "medium")
        return Decision(True, f"shrinks the journal to {size}", "low")
    match = _VACUUM_TIME.fullmatch(time or "")
    assert match is not None
    days = int(match.group(1)) * _DAYS[match.group(2)]
    risk = "low" if days >= LOW_RISK_DAYS else "medium"
    return Decision(True, f"deletes archived journal entries older than {time}", risk)


def _exact(program: str, args: list[str], shapes: dict[tuple[str, ...], tuple[Risk, str]],
           why: Mapping[str, str]) -> Decision:
    """Programs with their own parsers get exact argument sets (order free)."""
    for arg in args:
        if arg in why:
            raise Refused(f"{program} {arg} {why[arg]}")
    found = shapes.get(tuple(sorted(args)))
    if found is None:
        shown = " | ".join(" ".join((program, *s)) for s in shapes)
        raise Refused(f"{program} {redact_cut(' '.join(args), 80)} is not on the remediation "
                       f"allow-list (allowed: {shown})")
    return Decision(True, found[1], found[0])


def _yes_forms(verbs: Iterable[str], yeses: Iterable[str], risk: Risk, why: str
               ) -> dict[tuple[str, ...], tuple[Risk, str]]:
    return {tuple(sorted((v, y))): (risk, why) for v in verbs for y in yeses}


_APT_WHY = {**dict.fromkeys(("-o", "--option", "-c", "--config-file"),
                            "can run arbitrary commands (APT hooks); not allowed"),
            **dict.fromkeys(("dist-upgrade", "full-upgrade", "autoremove", "remove", "purge"),
                            "may remove packages; a person must do it"),
            "install": "installs named packages; not allowed"}
_DNF_WHY = {**dict.fromkeys(("--setopt", "-c", "--config", "--enablerepo", "--repofrompath"),
                            "changes repositories or configuration; not allowed"),
            "--nogpgcheck": "skips signature checks; never allowed"}
_RPM_OSTREE_WHY = {**dict.fromkeys(("-r", "--reboot"),
                                   "reboots the host; a reboot is an action of its own"),
                   **dict.fromkeys(("install", "uninstall", "override", "rebase", "reset",
                                    "--install", "--uninstall"),
                                   "changes which packages the system has; not allowed")}
_ZYPPER_WHY = {**dict.fromkeys(("--no-gpg-checks", "--gpg-auto-import-keys"),
                               "skips or takes over signature checks; never allowed"),
               **dict.fromkeys(("-p", "--plus-repo", "--plus-content", "-R", "--root",
                                "-c", "--config", "-D", "--reposd-dir", "--from", "-r",
                                "--repo"), "changes repositories or configuration; not allowed"),
               **dict.fromkeys(("install", "in", "remove", "rm", "addrepo", "ar"),
                               "changes which packages the system has; not allowed")}
_TRANSACTIONAL_WHY = {**dict.fromkeys(("reboot", "--reboot", "-r"),
                                     "reboots the host; a reboot is an action of its own"),
                      **dict.fromkeys(("pkg", "shell", "run", "rollback", "migration",
                                       "register", "setup-selinux", "apply"),
                                      "changes the system beyond its pending updates; not "
                                      "allowed")}
_PACMAN_WHY = {**dict.fromkeys(("--overwrite", "-d", "--nodeps", "-dd"),
                               "skips package safety checks; never allowed"),
               **dict.fromkeys(("-r", "--root", "-b", "--dbpath", "--config"),
                               "redirects the target (another root or database)")}
#: history younger than this (journal entries, Nix generations) is little to fall back on: a
#: deletion that keeps less is medium risk
LOW_RISK_DAYS = 7
_NIX_GC_WHY = dict.fromkeys(("-d", "--delete-old"), "deletes every old generation: no "
                            "rollback would be left")
_NIX_ENV_WHY = {**dict.fromkeys(("--delete-generations", "-e", "--uninstall", "-i",
                                 "--install", "-u", "--upgrade", "--set"),
                                "changes installed software; not allowed"),
                "--switch-generation": "is not on the remediation allow-list (use --rollback)"}
_NIXOS_REBUILD_WHY = {**dict.fromkeys(("--target-host", "--build-host"),
                                      "redirects the target (another host)"),
                      **dict.fromkeys(("-I", "--flake", "--option", "--override-input",
                                       "--install-bootloader", "--specialisation", "-p",
                                       "--profile-name"),
                                      "changes what is built or booted; not allowed")}
_PID_MAX = 1 << 22
_SIGNALS = {"-TERM": "TERM", "-SIGTERM": "TERM", "-15": "TERM", "-KILL": "KILL",
            "-SIGKILL": "KILL", "-9": "KILL"}


def kill_pid(argv: list[str] | tuple[str, ...]) -> int | None:
    """The PID a remediation ``kill [-SIGNAL] PID`` signals; None for any other argv."""
    if not argv or argv[0] != "kill":
        return None
    try:
        _kill(list(argv[1:]), ())
    except Refused:
        return None
    return int(argv[-1])


def _kill(args: list[str], protected: tuple[str, ...]) -> Decision:
    signal, rest = "TERM", list(args)
    if rest and rest[0] in _SIGNALS:
        signal = _SIGNALS[rest.pop(0)]
    if len(rest) != 1:
        raise Refused("kill takes one signal (-TERM or -KILL) and one PID")
    pid = rest[0]
    if pid == "0" or re.fullmatch(r"-[0-9]+", pid):
        raise Refused(f"kill {pid} would signal a process group or every process: one "
                       "positive PID only")
    if not re.fullmatch(r"[1-9][0-9]{0,6}", pid) or int(pid) >= _PID_MAX:
        raise Refused(f"kill: {redact_cut(pid, 20)!r} is not a PID (a positive number below "
                      f"{_PID_MAX})")
    if pid == "1":
        raise Refused("kill 1: PID 1 (init) is never killed")
    # SIGKILL: no handler runs, the process cannot end cleanly; a person's decision
    return Decision(True, f"sends SIG{signal} to process {pid}",
                    "high" if signal == "KILL" else "medium")


def _reboot(args: list[str], protected: tuple[str, ...]) -> Decision:
    if args:
        raise Refused("reboot takes no arguments here (--force/-f would skip a clean "
                       "shutdown)")
    return Decision(True, "reboots the host", "high")


def _nix_gc(args: list[str], protected: tuple[str, ...]) -> Decision:
    for arg in args:
        if arg in _NIX_GC_WHY:
            raise Refused(f"nix-collect-garbage {arg} {_NIX_GC_WHY[arg]}")
    if len(args) != 2 or args[0] != "--delete-older-than":
        raise Refused(f"nix-collect-garbage {redact_cut(' '.join(args), 80)} is not on the "
                       "remediation allow-list (allowed: nix-collect-garbage "
                       "--delete-older-than Nd)")
    days = re.fullmatch(r"([1-9][0-9]{0,3})d", args[1])
    if days is None:
        raise Refused(f"nix-collect-garbage --delete-older-than {redact_cut(args[1], 20)!r} is "
                       "not a number of days like 14d (at least 1d)")
    why = f"deletes Nix generations older than {args[1]}"
    if int(days.group(1)) < LOW_RISK_DAYS:
        # next to -d, which is refused: what is left to roll back to is days old at most
        return Decision(True, f"{why}: few generations are left to roll back to", "medium")
    return Decision(True, why, "low")


REMEDIATION: dict[str, Callable[[list[str], tuple[str, ...]], Decision | None]] = {
    "systemctl": _systemctl,
    "journalctl": _journalctl,
    "kill": _kill,
    "reboot": _reboot,
    "nix-collect-garbage": _nix_gc,
    "nix-env": lambda args, _: None if "--list-generations" in args else _exact(
        "nix-env", args,
        {tuple(sorted((p, "/nix/var/nix/profiles/system", "--rollback"))):
         ("medium", "rolls the system profile back one generation") for p in
         ("-p", "--profile")}, _NIX_ENV_WHY),
    "nixos-rebuild": lambda args, _: _exact(
        "nixos-rebuild", args,
        {("switch",): ("high", "rebuilds and switches the NixOS configuration"),
         ("--rollback", "switch"): ("medium", "switches back to the previous generation"),
         ("--upgrade", "switch"): ("high", "upgrades channels, rebuilds and switches")},
        _NIXOS_REBUILD_WHY),
    "apt-get": lambda args, _: _exact(
        "apt-get", args, _yes_forms(["upgrade"], ["-y", "--yes", "--assume-yes"], "high",
                                    "installs pending package updates"), _APT_WHY),
    "dnf": lambda args, _: _exact(
        "dnf", args, _yes_forms(["upgrade", "update"], ["-y", "--assumeyes"], "high",
                                "installs pending package updates"), _DNF_WHY),
    # yum's options are dnf's (dnf took them over): the same are refused
    "yum": lambda args, _: _exact(
        "yum", args, _yes_forms(["upgrade", "update"], ["-y", "--assumeyes"], "high",
                                "installs pending package updates"), _DNF_WHY),
    "rpm-ostree": lambda args, _: _exact(
        "rpm-ostree", args, {("upgrade",): ("high", "stages the pending updates as a new "
                                            "deployment, applied at the next boot")},
        _RPM_OSTREE_WHY),
    "zypper": lambda args, _: _exact(
        "zypper", args, {**_yes_forms(["update", "up"], ["--non-interactive", "-n"], "high",
                                      "installs pending package updates"),
                         **_yes_forms(["dist-upgrade", "dup"], ["--non-interactive", "-n"],
                                      "high", "updates a rolling release to its latest "
                                      "snapshot")}, _ZYPPER_WHY),
    "transactional-update": lambda args, _: _exact(
        "transactional-update", args, {
            **_yes_forms(["up"], ["--non-interactive", "-n"], "high",
                         "stages the pending updates as a new snapshot, applied at the next "
                         "boot"),
            **_yes_forms(["dup"], ["--non-interactive", "-n"], "high",
                         "stages a rolling release's latest snapshot, applied at the next "
                         "boot")}, _TRANSACTIONAL_WHY),
    "pacman": lambda args, _: _exact(
        "pacman", args, {tuple(sorted((f"-{''.join(p)}", "--noconfirm"))):
                         ("high", "installs pending package updates")
                         for p in ("Syu", "Suy", "ySu", "yuS", "uSy", "uyS")}, _PACMAN_WHY),
}


