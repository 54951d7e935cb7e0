"""The results file: one JSON document per run, to compare models side by side later."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ...errors import AiSysadminError
from ...files import replaceable, write_text
from .harness import EvalRun

#: bumped when the file's shape changes, so a reader knows what it holds
FORMAT = 1


def results_path(folder: Path, run: EvalRun) -> Path:
    """``<folder>/<date>-<model>-<mode>.json``, the model's name made safe for a file name."""
    model = re.sub(r"[^A-Za-z0-9._-]+", "_", run.model).strip("._") or "model"
    stamp = re.sub(r"[^0-9T]", "", run.started_at)[:15]
    return folder / f"{stamp}-{model}-{run.mode}.json"


def results_text(run: EvalRun) -> str:
    """The results file's text: the whole run (scores and transcripts), one JSON document."""
    return json.dumps({"format": FORMAT, **run.to_dict(transcript=True)}, indent=1,
                      default=str) + "\n"


def write_results(run: EvalRun, path: Path) -> Path:
    """Write the whole run (scores and transcripts) atomically; the folder is made if needed.
    The file is private to its owner: transcripts quote host text. A path that is no regular
    file (a FIFO, a symlink) is written into, not replaced; the command's own standard output
    is its to write (:func:`~ai_sysadmin.files.is_stdout`)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, results_text(run))
    except OSError as exc:
        raise AiSysadminError(f"cannot write the results file {path}: {exc}") from exc
    return path


def write_new_results(run: EvalRun, folder: Path) -> Path:
    """Write the whole run into a new file of ``folder`` named for it (:func:`results_path`),
    and return its path. Two runs started in the same second with the same model and mode
    (a script's ``eval --tag X &`` for several tags) got the same name, and the last to end
    replaced the other's results: where the name is taken, ``-2``, ``-3`` ... are added. The
    name is claimed by an exclusive create, then the whole text renamed over it, so a
    reader never sees half a file and no other run's file is ever replaced."""
    first = results_path(folder, run)
    text = results_text(run)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = _claim(first)
        try:
            fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial",
                                           dir=folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp's mode: 0600
                    handle.write(text)
                os.replace(partial, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(partial)
                raise
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)  # the empty file that claimed the name
            raise
    except OSError as exc:
        raise AiSysadminError(f"cannot write the results file {first}: {exc}") from exc
    return path


def _claim(first: Path) -> Path:
    """``first``, or the first of its ``-2``, ``-3`` ... names that nothing has, made as an
    empty owner-only file. Raises OSError."""
    for n in itertools.count(1):
        path = first if n == 1 else first.with_name(f"{first.stem}-{n}{first.suffix}")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        return path
    raise AssertionError("unreachable")


def check_results_path(path: Path, *, folder: bool = False) -> None:
    """Raise AiSysadminError now where the results file could not be written: an evaluation
    takes minutes to hours, and its scores are not to be lost at the end to a path that was
    wrong from the start. ``folder``: ``path`` is the folder that a file named for the run
    will go into. The folder is made if needed, as writing would."""
    where = path if folder else path.parent
    if not folder and path.is_dir():
        raise AiSysadminError(f"cannot write the results file {path}: it is a directory")
    if not folder and not replaceable(path):
        # written into as it is (a device, a FIFO, a symlink), nothing made beside it; a
        # FIFO is not opened here, which would wait for its reader
        if os.path.exists(path) and not os.access(path, os.W_OK):
            raise AiSysadminError(f"cannot write the results file {path}: not writable")
        return
    try:
        where.mkdir(parents=True, exist_ok=True)
        # what writing does: a temporary file in the folder, later renamed over the file
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=where)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise AiSysadminError(f"cannot write the results file {path}: {exc}") from exc


def load_results(path: Path) -> dict[str, Any]:
    """A results file, with what a comparison of runs shows checked to be there."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AiSysadminError(f"cannot read the results file {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise AiSysadminError(f"{path} is not an evaluation results file (format {FORMAT})")
    problem = _missing(data)
    if problem is not None:
        raise AiSysadminError(f"{path} is not a whole evaluation results file: {problem}")
    return data


#: what a comparison shows of a run, and of its totals: the rates, then the counts
RUN_KEYS = ("model", "backend", "mode", "date")
RATES = ("detected", "localized", "root_cause", "mitigated", "escalated_correctly")
COUNTS = ("scenarios", "passed", "false_alarms", "unsafe_attempted", "unsafe_executed",
          "errors", "calls", "prompt_tokens", "completion_tokens", "wall_seconds")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _missing(data: dict[str, Any]) -> str | None:
    """What of :data:`RUN_KEYS`, :data:`RATES` and :data:`COUNTS` is missing or of the wrong
    kind (a file edited by hand, cut short, or of another program); None when all is there."""
    for key in RUN_KEYS:
        if not isinstance(data.get(key), str):
            return f"{key!r} is missing or not text"
    totals = data.get("totals")
    if not isinstance(totals, dict):
        return "'totals' is missing or not a table"
    for key in RATES:
        rate = totals.get(key)
        if not (isinstance(rate, dict) and _number(rate.get("ok")) and _number(rate.get("of"))
                and (_number(rate.get("rate")) or (rate.get("rate") is None
                                                   and not rate.get("of")))):
            return f"totals.{key} is missing or not a rate (ok, of, rate)"
    for key in COUNTS:
        if not _number(totals.get(key)):
            return f"totals.{key} is missing or not a number"
    return None
