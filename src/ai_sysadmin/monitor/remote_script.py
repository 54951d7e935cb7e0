"""One round trip per host per check: every command of a Snapshot in one remote POSIX sh script.

Over SSH each command costs a session and a round trip; a check runs about fifteen. Here every
source of the collection table (:mod:`.sections`) becomes one step of one sh script that runs
them in turn (each under coreutils' ``timeout`` when careful), and frames each output with a
random marker, on stdout and stderr alike; it ends with a "done" line, so that a transport can
keep one shell for all its checks (:meth:`Transport.run_script`: over SSH one long-lived
``sh -s``, elsewhere ``sh -c``). The reply is split back into one :class:`CommandResult` per
command and served by a :class:`ReplayTransport`, so the collector and its parsers run
unchanged on the same raw text: the Snapshot is the one the per-command path would give. A
command that means nothing on a host (systemctl where systemd is not PID 1) sits behind its
row's :class:`Guard`, a builtin test that spares its process. The script first sets the C
locale in the host's character set (:data:`C_LOCALE`). Remote hosts need only sh,
coreutils, procps and systemd. Every argument in the script is quoted with :func:`shlex.quote`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import secrets
import shlex
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from ..errors import (
    CommandRefused,
    CommandTimeout,
    LocalLimit,
    NoAnswer,
    ProgramMissing,
    TransportError,
)
from ..hosts.transport import C_LOCALE, CommandResult, Transport, _check_argv
from ..redact import redact_cut

#: timeout(1) exits 124 on a timeout, 125 when it fails itself, 126/127 when it cannot exec
_TIMED_OUT = 124
_CANNOT_START = (126, 127)
#: of those, the one for a program that is not there
_NOT_FOUND = 127
#: seconds between timeout's TERM and its KILL
_KILL_AFTER = 2
#: the exit code a step reports when its guard kept it from running (outside 0-255 of commands)
_NOT_RUN = 256

#: The reply's layout. Each step ends with one line on stdout, ``M i end RC PID``, and one on
#: stderr, ``M i end`` (a step that never runs, its guard false, needs none there): a step's
#: output on a stream is the text between the marker line before its end line (or the start
#: of the reply) and that end line. Every marker line starts with a newline of its own, so the
#: text between two of them is exactly what was written. Each write into sshd's pipes can
#: become an SSH packet, which costs CPU on both ends and a wake-up of sshd and of us, so the
#: end lines wait in ``P`` (stdout) and ``Q`` (stderr) and go out in one write just before the
#: next command starts (a command's output must follow them) or with the done line; files read
#: by builtins and guarded-out steps only add to them. The shell says its pid
#: (``M shell PID``) with the done line. ``P`` starts as ``M start``, which the first write
#: carries, before the first command starts: a reply that brought not even that is a host
#: that stopped answering, not a step that hangs, whatever the first step is (see
#: ``answer_within`` of :meth:`Transport.run_script`), and it costs no write of its own.
#: In careful mode timeout(1) puts the command in a process group of its own and kills all
#: of it on expiry; starting it with ``&`` gives its pid, so that the process listing can
#: leave the script's own processes out. Otherwise the command runs in the foreground, and a
#: ``sh -c`` step in a subshell of the script's own shell (``c``, see :func:`_inline_sh`).
_STEP = """\
s() {{
  i=$1; shift
  [ -z "$P" ] || {{ printf %s "$P"; P=; }}; [ -z "$Q" ] || {{ printf %s "$Q" >&2; Q=; }}
  {runner}
  P="
$M $i end $r $p
"; Q="
$M $i end
"
}}
f() {{
  while [ $# -gt 1 ]; do
    if [ -r "$2" ] && [ -f "$2" ]; then
      t=; while IFS= read -r l || [ -n "$l" ]; do
        t="$t$l
"; [ ${{#t}} -lt 4096 ] || {{ printf %s "$P$t"; P=; t=; }}
      done < "$2"
      P="$P$t
$M $1 end 0 0
"
    else
      P="$P
$M $1 end 1 0
"; Q="${{Q}}cat: $2: No such file or directory

$M $1 end
"
    fi
    shift 2
  done
}}
n() {{
  for i; do P="$P
$M $i end {not_run} 0"; done
  P="$P
"
}}
c() (
  b=$1; shift; [ $# -eq 0 ] || shift
  unset -f s f n c; unset ctype M P Q i r p t l; eval "unset b
$b"
)"""
_FOREGROUND = '"$@" </dev/null; r=$? p=0'
_BACKGROUND = 'timeout -k {kill} {timeout:g} "$@" </dev/null & p=$!; wait "$p"; r=$?'
_DONE = ("printf '%s\\n%s shell %s\\n\\n%s done\\n' \"$P\" \"$M\" \"$$\" \"$M\"; "
         "printf '%s\\n%s done\\n' \"$Q\" \"$M\" >&2\n")
#: a file read (``cat -- PATH``) is done by the shell's builtins: no process, no timeout needed
FILE_READ = ("cat", "--")


@dataclass(frozen=True)
class Guard:
    """A command that only means something where a path exists (tested by a shell builtin).

    Where the path is absent the command is not run, and is answered with exit 1 and
    ``absent`` on stderr: what the command itself would have said, without its process.
    """

    #: ``! -s``: where the path is no file with something in it
    test: Literal["-d", "-L", "-e", "! -s"]
    path: str
    absent: str
    #: more paths, tested alike: the command runs where any of them passes
    also: tuple[str, ...] = ()

    @property
    def shell_test(self) -> str:
        """The builtin test, as the script writes it."""
        return " || ".join(f"[ {self.test} {shlex.quote(path)} ]"
                           for path in (self.path, *self.also))


@dataclass(frozen=True)
class RoundTrip:
    """The script for some commands, and how to read its reply."""

    commands: tuple[tuple[str, ...], ...]
    command_timeout: float
    marker: str
    guards: Mapping[tuple[str, ...], Guard]
    #: careful: every step under its own timeout(1), so a hung one costs its section only;
    #: else no process but the command itself, and the whole script has command_timeout
    careful: bool = True

    @classmethod
    def plan(cls, commands: Sequence[Sequence[str]], command_timeout: float,
             guards: Mapping[tuple[str, ...], Guard] | None = None,
             careful: bool = True) -> RoundTrip:
        unique = tuple(dict.fromkeys(_check_argv(c) for c in commands))
        return cls(unique, command_timeout, _new_marker(),
                   {argv: guard for argv, guard in (guards or {}).items() if argv in unique},
                   careful)

    def again(self, careful: bool) -> RoundTrip:
        """The same script with a marker of its own (one a check: no output of a check can
        know it in advance). What was worked out for the same commands comes along: a
        host's checks send the same script over and over."""
        if careful != self.careful:  # a host whose check hung: rare, built afresh
            return dataclasses.replace(self, marker=_new_marker(), careful=careful)
        # worked out once on the plan; each check's copy shares them (copy keeps __dict__)
        self._script_body, self._tail_headers  # noqa: B018
        twin = copy.copy(self)
        object.__setattr__(twin, "marker", _new_marker())
        return twin

    @functools.cached_property
    def _script_body(self) -> str:
        guards = tuple((argv, self.guards[argv]) for argv in self.commands if argv in self.guards)
        return _body(self.commands, guards, self.careful, self.command_timeout)

    @property
    def script(self) -> str:
        # the marker is the only part that differs from one check to the next
        return (f'{C_LOCALE}\nM={shlex.quote(self.marker)} Q=\nP="\n$M start\n"\n'
                f"{self._script_body}{_DONE}")

    @functools.cached_property
    def tailed_files(self) -> list[str]:
        """The files one ``tail -v`` reads (see :func:`_tailed_files`)."""
        return _tailed_files(self.commands, tuple(argv for argv in self.commands
                                                  if argv in self.guards))

    @functools.cached_property
    def _tail_headers(self) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
        """Each tailed file's path, the header tail writes before it, its ``cat`` argv."""
        return tuple((path, f"==> {path} <==\n", (*FILE_READ, path))
                     for path in self.tailed_files)

    @property
    def done(self) -> str:
        """The line that ends the script's output, on stdout and on stderr."""
        return f"{self.marker} done"

    @property
    def timeout(self) -> float:
        """For the whole script: careful, room for a few commands that each run into their
        timeout; else one command's time for all of them (a healthy check takes a second)."""
        return self.command_timeout * 3 + _KILL_AFTER if self.careful else self.command_timeout

    def split(self, stdout: str, stderr: str) -> tuple[dict[tuple[str, ...], Step], str | None]:
        """Each command that ran to its end marker, with its exit code, output and pid; and
        the pid of the shell that ran them (None where it did not say).

        Splitting on the marker (random per script, so no output holds it) needs no regular
        expression, and each stream is split once: a fleet sweep splits one reply per host.
        """
        split_on = f"\n{self.marker} "
        ends: dict[int, tuple[int, int, str]] = {}
        shell = None
        before, *parts = stdout.split(split_on)
        for part in parts:
            tag, _, payload = part.partition("\n")
            words = tag.split()
            if len(words) == 4 and words[1] == "end":
                try:
                    ends[int(words[0])] = (int(words[2]), int(words[3]), before)
                except ValueError:
                    pass
            elif len(words) == 2 and words[0] == "shell" and words[1].isdigit():
                shell = words[1]
            before = payload
        errors: dict[int, str] = {}
        before, *parts = stderr.split(split_on)
        for part in parts:
            tag, _, payload = part.partition("\n")
            words = tag.split()
            if len(words) == 2 and words[1] == "end" and words[0].isdigit():
                errors[int(words[0])] = before
            before = payload
        steps: dict[tuple[str, ...], Step] = {}
        commands = self.commands
        for i, (returncode, pid, output) in ends.items():
            if 0 <= i < len(commands):
                argv = commands[i]
                steps[argv] = Step(argv, returncode, output, errors.get(i, ""), pid)
        group = ends.get(len(commands))
        if group is not None:
            files = _tail_files(group[2], self._tail_headers)
            for (path, _, argv), text in zip(self._tail_headers, files, strict=True):
                steps[argv] = (Step(argv, 0, text, "", 0) if text is not None else Step(
                    argv, 1, "", f"cat: {path}: No such file or directory\n", 0))
        return steps, shell


def _new_marker() -> str:
    return f"@@ai-sysadmin-{secrets.token_hex(12)}@@"


@functools.lru_cache(maxsize=32)
def _tailed_files(commands: tuple[tuple[str, ...], ...],
                  guarded: tuple[tuple[str, ...], ...]) -> list[str]:
    """The files one ``tail -v`` reads, by their ``==> PATH <==`` headers: those the kernel
    writes (/proc), whose text holds no such header, and last one other file (os-release),
    whose text has no file after it to pose as. The rest stay with the shell's builtins,
    which read a byte a call."""
    files = [argv[2] for argv in commands
             if argv[:2] == FILE_READ and len(argv) == 3 and argv not in guarded]
    kernel = [path for path in files if path.startswith("/proc/")]
    return kernel + [path for path in files if not path.startswith("/proc/")][:1]


@functools.lru_cache(maxsize=32)
def _body(commands: tuple[tuple[str, ...], ...], guards: tuple[tuple[tuple[str, ...], Guard], ...],
          careful: bool, command_timeout: float) -> str:
    """The script but for its first lines (the locale, the marker) and its last (the done
    line).

    A host's checks send the same commands over and over (the journal cursor aside): built
    once, not once a check.
    """
    runner = (_BACKGROUND.format(kill=_KILL_AFTER, timeout=command_timeout) if careful
              else _FOREGROUND)
    lines = [_STEP.format(runner=runner, not_run=_NOT_RUN).rstrip("\n")]
    guard_of = dict(guards)
    tailed = _tailed_files(commands, tuple(guard_of))
    if tailed:
        # one tail(1) for the files: half the CPU of reading them with builtins
        lines.append(f"s {len(commands)} tail -v -n +1 -- {shlex.join(tailed)}")
    # consecutive steps behind one guard share its test, and where it fails, one write
    runs: list[tuple[Guard | None, list[tuple[int, str]]]] = []
    for i, argv in enumerate(commands):
        guard = guard_of.get(argv)
        if argv[:2] == FILE_READ and len(argv) == 3:
            if argv[2] in tailed:
                continue
            if runs and runs[-1][0] == guard and runs[-1][1][-1][1].startswith("f "):
                i_before, files = runs[-1][1][-1]
                runs[-1][1][-1] = (i_before, f"{files} {i} {shlex.quote(argv[2])}")
                runs[-1][1].append((i, ""))
                continue
            step = f"f {i} {shlex.quote(argv[2])}"
        elif not careful and _inline_sh(argv):
            step = f"s {i} c {shlex.join(argv[2:])}"
        else:
            step = f"s {i} {shlex.join(argv)}"
        if runs and guard is not None and runs[-1][0] == guard:
            runs[-1][1].append((i, step))
        else:
            runs.append((guard, [(i, step)]))
    for guard, steps in runs:
        if guard is None:
            lines.extend(step for _, step in steps if step)
        else:
            lines.append(f"if {guard.shell_test}; then\n"
                         + "\n".join(step for _, step in steps if step)
                         + f"\nelse n {' '.join(str(i) for i, _ in steps)}; fi")
    return "\n".join(lines) + "\n"


def _inline_sh(argv: tuple[str, ...]) -> bool:
    """Whether a step is ``sh -c SCRIPT [NAME ARG...]``, which the script's own shell runs in
    a subshell (``c``) that has forgotten the script's variables and functions: a fork,
    where sh would be another program to start (each check runs one or two). Only outside
    careful mode, whose timeout(1) needs a program to run; and only for the ``sh`` the
    script runs in, not another one a setting names. Such a SCRIPT (the collection
    table's, none a model writes) must not read ``$$``, ``$0`` or ``$-``: there they are the
    script's shell's (``kill $$`` would end the whole check)."""
    return len(argv) >= 3 and argv[0] == "sh" and argv[1] == "-c"


def _tail_files(text: str, headers: Sequence[tuple[str, str, object]]) -> list[str | None]:
    """``tail -v -n +1 PATH...`` output back into each file's text (None: not there), in the
    order of ``headers`` (each path with its header).

    tail writes ``==> PATH <==`` before each file it could open, in the order given, and a
    blank line between files. Only the last file's text may hold such a line (the kernel's
    hold none, :func:`_tailed_files`): where an earlier file is absent (no PSI), its header
    written inside the last file must not be taken for it. So the last file's header is
    found first (its first occurrence is tail's), and the others only before it.
    """
    if not headers:
        return []
    last = len(headers) - 1
    last_at = text.find(headers[last][1])
    kernel_end = last_at if last_at >= 0 else len(text)
    found: list[tuple[int, int, int]] = []
    offset = 0
    for n, (_, header, _) in enumerate(headers[:last]):
        at = text.find(header, offset, kernel_end)
        if at >= 0:
            found.append((n, at, at + len(header)))
            offset = at + len(header)
    if last_at >= 0:
        found.append((last, last_at, last_at + len(headers[last][1])))
    files: list[str | None] = [None] * len(headers)
    for k, (n, _, start) in enumerate(found):
        end = found[k + 1][1] - 1 if k + 1 < len(found) else len(text)  # less the blank line
        files[n] = text[start:max(start, end)]
    return files


class Step(NamedTuple):
    """One command's part of a reply (a tuple: a sweep makes ten a host)."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    pid: int  # of timeout(1), which ran the command


def without_own_processes(ps_output: str, marker: str, own: set[str]) -> str:
    """``ps`` output without the script's own processes (``own``: its shell and, careful, the
    ``timeout`` that ran each command) and any line that shows the script's marker.

    The per-command path sees neither; ps itself stays, as it does there. The lines are found
    with a few searches of the text, not by splitting each of its lines: a host lists
    hundreds of processes, and the script's own are two or three of them.
    """
    starts: set[int] = set()
    for pid in own:
        # the digits alone: a needle that ends in a space is slow to find in ps's padding
        at = ps_output.find(pid)
        while at >= 0:
            start = ps_output.rfind("\n", 0, at) + 1
            after = at + len(pid)
            if ps_output[after:after + 1] == " " and not ps_output[start:at].strip():
                starts.add(start)  # only padding before it, a space after: its pid column
                break
            at = ps_output.find(pid, after)
    at = ps_output.find(marker)
    while at >= 0:
        starts.add(ps_output.rfind("\n", 0, at) + 1)
        at = ps_output.find(marker, at + len(marker))
    if not starts:
        return ps_output
    kept, pos = [], 0
    for start in sorted(starts):
        end = ps_output.find("\n", start)
        kept.append(ps_output[pos:start])
        pos = len(ps_output) if end < 0 else end + 1
    kept.append(ps_output[pos:])
    return "".join(kept)


def _not_started(program: str, stderr: str) -> bool:
    """timeout(1)'s or the shell's words for a program that could not be started."""
    if "timeout: failed to run command" in stderr:
        return True
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return program in last and any(
        words in last for words in ("not found", "No such file", "Permission denied"))


class ReplayTransport(Transport):
    """Answers a collector from one round trip's results: no process, no connection."""

    def __init__(self, host: str, steps: dict[tuple[str, ...], Step], timeout: float,
                 missing: str | Callable[[], str],
                 guards: Mapping[tuple[str, ...], Guard] | None = None,
                 runs_as_root: bool | None = None, failure: TransportError | None = None
                 ) -> None:
        self.host = host
        self.runs_as_root = runs_as_root
        #: why the script did not run at all, as the transport raised it (None: it ran)
        self.failure = failure
        #: the script ran past its time (a step hung): no results at all; not where the
        #: host sent nothing back (:class:`NoAnswer`), which no step's time limit mends
        self.overran = isinstance(failure, CommandTimeout) and not isinstance(failure, NoAnswer)
        #: the host answered but ran none of it: this round trip's own, not the transport's
        #: last word, which a command run meanwhile may have changed
        self.refusal = failure if isinstance(failure, CommandRefused) else None
        self._steps = steps
        self._timeout = timeout
        self._missing = missing
        self._guards = guards or {}

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        return argv

    async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
        return self.answer(argv)

    def answer(self, argv: Sequence[str]) -> CommandResult:
        """What :meth:`run` answers, without a coroutine: the results are all here already."""
        # the plan checked the argvs it ran: one of them is looked up as it is
        step = self._steps.get(argv) if type(argv) is tuple else None
        cmd = step.argv if step is not None else _check_argv(argv)
        step = step or self._steps.get(cmd)
        if step is None:
            refusal = self.refusal
            if refusal is not None:
                # the host's answer to every command, as each would have had it on its own
                raise CommandRefused(str(refusal), refusal.status, refusal.said)
            missing = self._missing if isinstance(self._missing, str) else self._missing()
            raise TransportError(f"{self.host}: {' '.join(cmd)!r}: {missing}"
                                 ) from self.failure
        if step.returncode == _NOT_RUN and cmd in self._guards:
            return CommandResult(cmd, 1, "", self._guards[cmd].absent, 0.0)
        if step.returncode == _TIMED_OUT:
            raise TransportError(
                f"{self.host}: {' '.join(cmd)!r} timed out after {self._timeout:g} s"
            )
        if step.returncode in _CANNOT_START and _not_started(cmd[0], step.stderr):
            detail = step.stderr.strip().splitlines()[-1]
            said = f"{self.host}: cannot start {cmd[0]!r}: {detail}"
            # 127: not found (the shell's, timeout's exit); 126: there, but it could not
            # be run, which says nothing of what the host has
            if step.returncode == _NOT_FOUND:
                raise ProgramMissing(said, cmd[0])
            raise TransportError(said)
        return CommandResult(cmd, step.returncode, step.stdout, step.stderr, 0.0)

    async def stream_lines(self, argv: Sequence[str]) -> AsyncIterator[str]:
        raise TransportError(f"{self.host}: a round trip's results cannot be streamed")
        yield ""  # pragma: no cover - makes this an async generator


async def run_round_trip(transport: Transport, trip: RoundTrip,
                         process_lists: Iterable[Sequence[str]] = ()) -> ReplayTransport:
    """Run a planned script on the host in one remote command; never raises for the host's
    sake.

    A host that cannot be reached gives a replay whose every command fails with that reason,
    exactly as each command would have failed on its own; the replay keeps the error itself
    (``failure``; ``refusal`` where the host answered but ran nothing, whose every command is
    then refused). ``process_lists`` name the ``ps`` commands whose output must not show the
    script's own processes.
    """
    command_timeout = trip.command_timeout
    try:
        # a host that answers writes the script's first line at once, careful or not
        result = await transport.run_script(trip.script, trip.done, trip.timeout,
                                            answer_within=trip.command_timeout)
    except TransportError as exc:
        reason = str(exc).removeprefix(f"{transport.host}: ")
        if not isinstance(exc, LocalLimit):  # this machine's shortage: no host's silence
            reason = f"no answer: {reason}"
        return ReplayTransport(transport.host, {}, command_timeout, reason,
                               runs_as_root=transport.runs_as_root, failure=exc)
    steps, shell = trip.split(result.stdout, result.stderr)
    # careful: each step's pid is its timeout(1), not the command (ps stays, as it does when
    # run on its own); otherwise it is the command itself
    own = {str(step.pid) for step in steps.values()} if trip.careful else set()
    if shell is not None:
        own.add(shell)
    for listing in process_lists:
        key = _check_argv(listing)
        step = steps.get(key)
        if step is not None and step.returncode == 0:
            steps[key] = step._replace(stdout=without_own_processes(step.stdout, trip.marker,
                                                                    own))

    code, stderr = result.returncode, result.stderr

    @functools.cache
    def missing() -> str:
        # only where a command has no result: masking the reply's stderr is a tenth of a
        # check's CPU, and every command of a check that ran to its end has one
        return ("not gathered: the remote script ended early "
                f"(exit {code}: {redact_cut(stderr.strip(), 200, tail=True) or 'no output'})")

    return ReplayTransport(transport.host, steps, command_timeout, missing, trip.guards,
                           runs_as_root=transport.runs_as_root)
