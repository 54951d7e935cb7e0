"""clean_directory deletes only in the directory it judged, whatever a local user swaps meanwhile.

The unit tests check the pure argv builder; the lab tests run the real script with the lab's sh,
coreutils and findutils through SandboxTransport, as the executor would on any host, while a
loop in the lab keeps swapping a component of the path for a symlink to a victim directory.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.safety.catalog import PlanContext, plan_action
from ai_sysadmin.safety.clean_script import (
    EXIT_NOT_A_DIRECTORY,
    EXIT_OUTSIDE,
    EXIT_USAGE,
    NAME,
    SCRIPT,
    CleanArgumentError,
    clean_argv,
    explain_exit,
    sudoers_rule,
)

lab = pytest.mark.lab

OLD = "@1000000000"  # 2001: older than any day count
ROOTS = ("/var/cache", "/var/tmp", "/tmp")

# -- the pure builder ----------------------------------------------------------------------------


def test_argv_is_the_constant_script_with_every_value_its_own_argument() -> None:
    path = "/tmp/a dir; rm -rf / $(reboot) `id`"
    argv = clean_argv(path, 30, ROOTS)
    assert argv == ("sh", "-c", SCRIPT, NAME, *ROOTS, "--", "30", path)
    assert clean_argv("/tmp/x", 7, ROOTS)[2] is SCRIPT  # nothing of the call is in the text
    assert path not in SCRIPT and "reboot" not in SCRIPT


def test_the_script_is_one_group_on_one_line_for_sudo() -> None:
    # sudo matches it as text: no newline or tab, no double space; one { } group, so that a
    # word glued after it is a syntax error before anything runs
    assert "\n" not in SCRIPT and "\t" not in SCRIPT and "  " not in SCRIPT
    assert SCRIPT.startswith("{ ") and SCRIPT.endswith(" }")
    # the only deleting command is the last one, after every check
    assert SCRIPT.count("-delete") == 1 and SCRIPT.index("-delete") > SCRIPT.index("fail 3")


def test_trailing_slashes_of_configured_roots_are_dropped() -> None:
    assert clean_argv("/tmp/x", 7, ["/var/cache/", "/tmp"])[4:6] == ("/var/cache", "/tmp")


@pytest.mark.parametrize(("path", "days", "roots", "why"), [
    ("tmp/x", 7, ROOTS, "not an absolute path"),
    ("/tmp/../etc", 7, ROOTS, "not a plain path"),
    ("/tmp/./x", 7, ROOTS, "not a plain path"),
    ("/tmp/x/", 7, ROOTS, "not a plain path"),
    ("//tmp/x", 7, ROOTS, "not a plain path"),
    ("/", 7, ROOTS, "never cleaned"),
    ("/tmp/a\x00b", 7, ROOTS, "control character"),
    ("/tmp/a\nb", 7, ROOTS, "control character"),
    (b"/tmp/x", 7, ROOTS, "not an absolute path"),
    ("/tmp/x", 0, ROOTS, "1..3650"),
    ("/tmp/x", 3651, ROOTS, "1..3650"),
    ("/tmp/x", True, ROOTS, "1..3650"),
    ("/tmp/x", "7", ROOTS, "1..3650"),
    ("/tmp/x", 7.0, ROOTS, "1..3650"),
    ("/tmp/x", 7, (), "no allowed root"),
    ("/tmp/x", 7, "/tmp", "not one string"),
    ("/tmp/x", 7, ("/",), "cannot be an allowed root"),
    ("/tmp/x", 7, ("/var/my cache",), "contains a space"),
    ("/tmp/x", 7, ("tmp",), "not an absolute path"),
    ("/tmp/x", 7, ("/tmp/../etc",), "not a plain path"),
])
def test_odd_arguments_are_refused(path, days, roots, why) -> None:
    with pytest.raises(CleanArgumentError, match=why):
        clean_argv(path, days, roots)


def test_the_catalog_plans_the_script_and_no_host_check() -> None:
    # for the full file system it is on (tests/safety/test_fix_scope.py: else a person's)
    ctx = PlanContext(clean_paths=ROOTS, path_mount="/var", incident_rule="disk_space",
                      incident_subject="/var")
    plan = plan_action("clean_directory", {"path": "/var/cache/apt/", "older_than_days": 3}, ctx)
    assert plan.allowed and plan.risk == "medium"
    assert plan.commands == (clean_argv("/var/cache/apt", 3, ROOTS),)
    # the string checks stay the first layer
    assert not plan_action("clean_directory", {"path": "/etc/x"}, ctx).allowed
    spaced = plan_action("clean_directory", {"path": "/tmp/x"},
                         PlanContext(clean_paths=("/tmp", "/var/my cache")))
    assert not spaced.allowed and "contains a space" in spaced.reason


def test_exit_statuses_are_explained() -> None:
    assert "outside the allowed" in explain_exit(EXIT_OUTSIDE)
    assert "not a directory" in explain_exit(EXIT_NOT_A_DIRECTORY)
    assert explain_exit(0) == "done" and explain_exit(99) == "exited 99"


def test_sudoers_rule_escapes_what_sudoers_and_fnmatch_treat_specially() -> None:
    rule = sudoers_rule("ai-sysadmin", ["/var/cache/", "/tmp"])
    assert rule.startswith("ai-sysadmin ALL=(root) NOPASSWD: /bin/sh -c { unset CDPATH; nl\\=")
    assert rule.endswith(f" }} {NAME} /var/cache /tmp -- *")
    body = rule.split("NOPASSWD: ", 1)[1]
    assert "\\\\*" in body and " *' '" not in body  # every * of the script is literal
    with pytest.raises(CleanArgumentError):
        sudoers_rule("a,b", ROOTS)


# -- the script on a real host -------------------------------------------------------------------


def _sh(sb: Sandbox, script: str) -> None:
    sb.exec(["sh", "-c", script], check=True)


def _clean(sb: Sandbox, argv: tuple[str, ...]) -> tuple[int, str]:
    done = asyncio.run(SandboxTransport(sb).run(argv, 30))
    return done.returncode, done.stderr


def _plan(path: str, roots: tuple[str, ...] = ROOTS) -> tuple[str, ...]:
    plan = plan_action("clean_directory", {"path": path, "older_than_days": 7},
                       PlanContext(clean_paths=roots))
    assert plan.allowed, plan.reason
    (argv,) = plan.commands
    return argv


def _tree(sb: Sandbox, top: str) -> set[str]:
    out = sb.exec(["find", top, "-printf", "%y %P\\n"], check=True).stdout
    return set(out.splitlines())


@lab
def test_old_files_go_new_stay_and_no_symlink_is_followed(sandbox: Sandbox) -> None:
    _sh(sandbox, f"""set -e
        mkdir -p /tmp/cl1/app/deep /srv/cl1/dir
        touch -d {OLD} /tmp/cl1/app/old /tmp/cl1/app/deep/old /srv/cl1/secret /srv/cl1/dir/f
        touch /tmp/cl1/app/new
        ln -s /srv/cl1/secret /tmp/cl1/app/to-file
        ln -s /srv/cl1/dir /tmp/cl1/app/to-dir
        touch -h -d {OLD} /tmp/cl1/app/to-file /tmp/cl1/app/to-dir""")
    assert _clean(sandbox, _plan("/tmp/cl1/app")) == (0, "")
    assert _tree(sandbox, "/tmp/cl1/app") == {"d ", "f new", "d deep", "l to-file", "l to-dir"}
    assert _tree(sandbox, "/srv/cl1") == {"d ", "f secret", "d dir", "f dir/f"}


@lab
def test_a_path_that_really_is_outside_is_refused_on_the_host(sandbox: Sandbox) -> None:
    _sh(sandbox, f"""set -e
        mkdir -p /tmp/cl2 /srv/cl2/sub
        touch -d {OLD} /srv/cl2/f /srv/cl2/sub/f
        ln -s /srv/cl2 /tmp/cl2/escape""")
    for path in ("/tmp/cl2/escape", "/tmp/cl2/escape/sub"):  # the last or a middle component
        code, err = _clean(sandbox, _plan(path))
        assert code == EXIT_OUTSIDE, err
        assert f"{path} is /srv/cl2" in err and "outside the allowed directories" in err
    # a plain path outside: the catalog refuses it, and so would the script
    assert not plan_action("clean_directory", {"path": "/srv/cl2"},
                           PlanContext(clean_paths=ROOTS)).allowed
    assert _clean(sandbox, clean_argv("/srv/cl2", 7, ROOTS))[0] == EXIT_OUTSIDE
    assert _tree(sandbox, "/srv/cl2") == {"d ", "f f", "d sub", "f sub/f"}
    code, err = _clean(sandbox, _plan("/tmp/cl2/missing"))
    assert code == EXIT_NOT_A_DIRECTORY and "cannot enter /tmp/cl2/missing" in err
    glued = ("sh", "-c", SCRIPT, NAME, "/tmp", "--", "7", "/tmp/cl2", "/srv/cl2")
    assert _clean(sandbox, glued)[0] == EXIT_USAGE


@lab
def test_roots_are_judged_by_their_real_path_too(sandbox: Sandbox) -> None:
    _sh(sandbox, f"""set -e
        mkdir -p /tmp/cl3/real-root/app /tmp/cl3/other
        touch -d {OLD} /tmp/cl3/real-root/app/old /tmp/cl3/other/old
        ln -s /tmp/cl3/real-root /tmp/cl3/root-link""")
    roots = ("/tmp/cl3/root-link",)
    assert _clean(sandbox, clean_argv("/tmp/cl3/real-root/app", 7, roots)) == (0, "")
    assert _clean(sandbox, clean_argv("/tmp/cl3/other", 7, roots))[0] == EXIT_OUTSIDE
    assert _tree(sandbox, "/tmp/cl3/real-root/app") == {"d "}
    assert _tree(sandbox, "/tmp/cl3/other") == {"d ", "f old"}


@lab
def test_spaces_and_non_ascii_names_are_just_data(sandbox: Sandbox) -> None:
    top = "/tmp/cl4/mit Leerzeichen é/日本 $(touch pwned); x"
    _sh(sandbox, f"""set -e
        mkdir -p '{top}/sub'
        touch -d {OLD} '{top}/alt ä' '{top}/sub/*'
        touch '{top}/neu'""")
    assert _clean(sandbox, _plan(top)) == (0, "")
    assert _tree(sandbox, top) == {"d ", "f neu", "d sub"}
    assert sandbox.exec(["test", "-e", "/pwned"]).returncode == 1


@lab
def test_another_mount_below_the_path_is_not_crossed(sandbox: Sandbox) -> None:
    _sh(sandbox, f"""set -e
        mkdir -p /tmp/cl5/app/mnt
        mount -t tmpfs cl5 /tmp/cl5/app/mnt
        touch -d {OLD} /tmp/cl5/app/old /tmp/cl5/app/mnt/old""")
    try:
        assert _clean(sandbox, _plan("/tmp/cl5/app")) == (0, "")
        assert _tree(sandbox, "/tmp/cl5/app") == {"d ", "d mnt", "f mnt/old"}
    finally:
        sandbox.exec(["umount", "/tmp/cl5/app/mnt"], check=True)


# -- the swap race -------------------------------------------------------------------------------

VICTIMS = 50
#: `mv -T` is one rename(2). A directory cannot be renamed over a symlink, so each round is four
#: renames: app (real) -> real, link -> app, app (the symlink) -> link, real -> app. After each
#: round one more old file lands in the real directory, so that later runs have work to do.
#: The count is written on SIGTERM (KillMode=mixed: the running mv or touch is not killed), and
#: only after its file exists, so that `rounds - files left` never overcounts deletions.
OUTER_SWAPPER = """n=0; trap 'echo $n > {top}/swaps; exit 0' TERM; cd {top}
while :; do
  mv -T app real; mv -T link app; mv -T app link; mv -T real app
  touch -d {old} app/cache/f$n; n=$((n+1))
done"""
#: inside the tree, for find's own traversal: cache/sub <-> a symlink to a second victim; it
#: holds the real cache directory as its working directory, wherever the outer loop moves it
INNER_SWAPPER = """n=0; trap 'echo $n > {top}/inner-swaps; exit 0' TERM
cd {top}/app/cache; touch {top}/inner-ready
while :; do
  mv -T sub subreal; mv -T sublink sub; mv -T sub sublink; mv -T subreal sub; n=$((n+1))
done"""
_RACES = itertools.count()


@dataclass
class Race:
    sb: Sandbox
    top: str
    victim: str

    def victims_left(self, below: str = "") -> int:
        top = f"{self.victim}/{below}".rstrip("/")
        return len(self.sb.exec(["find", top, "-type", "f"], check=True).stdout.split())

    def stop(self) -> tuple[int, int, int]:
        """Stop the swappers; (rounds of the outer one, of the inner one, old files left in
        the real tree)."""
        for unit in ("outer", "inner"):
            self.sb.exec(["systemctl", "stop", f"{self.unit}-{unit}.service"], check=True)
        rounds = int(self.sb.exec(["cat", f"{self.top}/swaps"], check=True).stdout)
        inner = int(self.sb.exec(["cat", f"{self.top}/inner-swaps"], check=True).stdout)
        # the real tree is at app or at real, wherever the loop stopped; link is not followed
        left = self.sb.exec(["find", self.top, "-type", "f", "-name", "f*"],
                            check=True).stdout.split()
        return rounds, inner, len(left)

    @property
    def unit(self) -> str:
        return "race" + self.top.replace("/", "-")


@pytest.fixture
def race(sandbox: Sandbox) -> Iterator[Race]:
    n = next(_RACES)
    top, victim = f"/tmp/race{n}", f"/srv/victim{n}"
    _sh(sandbox, f"""set -e
        mkdir -p {top}/app/cache/sub {victim}/cache {victim}/inner
        cd {victim}; for i in $(seq {VICTIMS}); do touch -d {OLD} cache/v$i inner/v$i; done
        touch -d {OLD} {top}/app/cache/sub/s1 {top}/app/cache/sub/s2
        ln -s {victim} {top}/link; ln -s {victim}/inner {top}/app/cache/sublink""")
    state = Race(sandbox, top, victim)
    assert state.victims_left() == 2 * VICTIMS

    def start(name: str, script: str) -> None:
        sandbox.exec(["systemd-run", f"--unit={state.unit}-{name}", "--collect",
                      "-p", "KillMode=mixed", "sh", "-c", script.format(top=top, old=OLD)],
                     check=True)

    try:
        start("inner", INNER_SWAPPER)
        # the inner loop must hold the real directory before the outer one moves it
        deadline = time.monotonic() + 10
        while not sandbox.exec(["test", "-e", f"{top}/inner-ready"]).ok:
            assert time.monotonic() < deadline, "the inner swapper did not start"
            time.sleep(0.01)
        start("outer", OUTER_SWAPPER)
        yield state
    finally:
        for name in ("outer", "inner"):
            sandbox.exec(["systemctl", "kill", "--signal=KILL", f"{state.unit}-{name}"])


async def _runs(transport: SandboxTransport, argvs: Iterator[tuple[str, ...]], runs: int,
                budget: float) -> Counter[int]:
    codes: Counter[int] = Counter()
    deadline = time.monotonic() + budget
    while sum(codes.values()) < runs and time.monotonic() < deadline:
        codes[(await transport.run(next(argvs), 30)).returncode] += 1
    return codes


def _cycle(*argvs: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    while True:
        yield from argvs


@lab
def test_swapping_a_component_never_makes_the_script_delete_outside(race: Race) -> None:
    top = race.top
    argvs = _cycle(clean_argv(f"{top}/app/cache", 7, ROOTS), clean_argv(f"{top}/app", 7, ROOTS))
    codes = asyncio.run(_runs(SandboxTransport(race.sb), argvs, 200, 60))
    rounds, inner, left = race.stop()
    deleted = rounds - left
    print(f"new approach: {sum(codes.values())} runs {dict(codes)}, {rounds}+{inner} swap "
          f"rounds (outer+inner), {deleted} files deleted in the real directory, "
          f"{2 * VICTIMS - race.victims_left()} victims lost")
    assert race.victims_left() == 2 * VICTIMS
    # both sides of the race were met: runs in the real directory and runs refused outside
    assert codes[0] > 0 and codes[EXIT_OUTSIDE] > 0 and deleted > 0, (codes, rounds, left)
    assert inner > 0
    # 1: find saw a directory vanish under it (the inner swap); 4: the path was mid-swap
    assert set(codes) <= {0, 1, EXIT_OUTSIDE, EXIT_NOT_A_DIRECTORY}, codes


@lab
def test_the_old_check_then_find_loses_victims_under_the_same_race(race: Race) -> None:
    """What the script replaces: `readlink -f` judged on the host, then `find PATH -delete`."""
    path = f"{race.top}/app/cache"

    async def old_way(transport: SandboxTransport) -> Counter[str]:
        outcomes: Counter[str] = Counter()
        deadline = time.monotonic() + 60
        while (sum(outcomes.values()) < 400 and time.monotonic() < deadline
               and race.victims_left() == 2 * VICTIMS):
            real = (await transport.run(["readlink", "-f", "--", path])).stdout.strip()
            if not any(real == r or real.startswith(r + "/") for r in ROOTS):
                outcomes["refused"] += 1
                continue
            done = await transport.run(["find", path, "-xdev", "-type", "f", "-mtime", "+7",
                                        "-delete"], 30)
            outcomes[f"find {done.returncode}"] += 1
        return outcomes

    outcomes = asyncio.run(old_way(SandboxTransport(race.sb)))
    rounds, inner, _ = race.stop()
    lost = 2 * VICTIMS - race.victims_left()
    print(f"old approach: {sum(outcomes.values())} runs {dict(outcomes)} until the first loss, "
          f"{rounds}+{inner} swap rounds, {lost} victims lost "
          f"({VICTIMS - race.victims_left('inner')} of them below the inner swap)")
    assert lost > 0, outcomes


@lab
def test_the_sudoers_rule_lets_a_user_run_this_script_and_nothing_else(sandbox: Sandbox
                                                                         ) -> None:
    if sandbox.exec(["sh", "-c", "command -v sudo visudo setpriv"]).returncode:
        reason = "sudo, visudo or setpriv is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the sudoers test", pytrace=False)
        pytest.skip(reason)
    _sh(sandbox, f"""set -e
        mkdir -p /tmp/cl6 /srv/cl6
        touch -d {OLD} /tmp/cl6/old /srv/cl6/old""")
    rule = sudoers_rule("nobody", ROOTS)
    sandbox.write_file("/etc/sudoers.d/ai-sysadmin-clean", rule + "\n", mode=0o440)
    try:
        checked = sandbox.exec(["visudo", "-c", "-f", "/etc/sudoers.d/ai-sysadmin-clean"])
        assert checked.returncode == 0, checked.stderr
        # as the executor runs it for a daemon that is not root: sudo -n -- ARGV
        nobody = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                  "sudo", "-n", "--")
        assert sandbox.exec([*nobody, *clean_argv("/tmp/cl6", 7, ROOTS)]).returncode == 0
        assert _tree(sandbox, "/tmp/cl6") == {"d "}
        for argv in (
            clean_argv("/srv/cl6", 7, (*ROOTS, "/srv")),  # a root of the caller's choosing
            clean_argv("/tmp/cl6", 7, ROOTS[:2]),
            ("sh", "-c", SCRIPT.replace("-mtime", "-mmin"), NAME, *ROOTS, "--", "7", "/tmp"),
            ("sh", "-c", "rm -f /srv/cl6/old", NAME, *ROOTS, "--", "7", "/tmp"),
        ):
            refused = sandbox.exec([*nobody, *argv])
            assert refused.returncode == 1 and "password is required" in refused.stderr
        # what sudo's text match still lets through fails in the shell or the script
        glued = SCRIPT + f" {NAME} {' '.join(ROOTS)} -- 7 /srv; rm -f /srv/cl6/old"
        assert sandbox.exec([*nobody, "sh", "-c", glued, "x"]).returncode == 2
        merged = ("sh", "-c", SCRIPT, NAME, *ROOTS[:2], f"{ROOTS[2]} --", "/srv", "--", "7",
                  "/srv/cl6")
        assert sandbox.exec([*nobody, *merged]).returncode == EXIT_USAGE
        assert _tree(sandbox, "/srv/cl6") == {"d ", "f old"}
    finally:
        sandbox.exec(["rm", "-f", "/etc/sudoers.d/ai-sysadmin-clean"])
