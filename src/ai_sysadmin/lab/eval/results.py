"""The results file: one JSON document per run, to compare models side by side later."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ...errors import AiSysadminError
from .harness import EvalRun

#: bumped when the file's shape changes, so a reader knows what it holds
FORMAT = 1


def results_path(folder: Path, run: EvalRun) -> Path:
    """``<folder>/<date>-<model>-<mode>.json``, the model's name made safe for a file name."""
    model = re.sub(r"[^A-Za-z0-9._-]+", "_", run.model).strip("._") or "model"
    stamp = re.sub(r"[^0-9T]", "", run.started_at)[:15]
    return folder / f"{stamp}-{model}-{run.mode}.json"


def write_results(run: EvalRun, path: Path) -> Path:
    """Write the whole run (scores and transcripts) atomically; the folder is made if needed.
    The file is private to its owner: transcripts quote host text."""
    data = {"format": FORMAT, **run.to_dict(transcript=True)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, default=str)
            handle.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise AiSysadminError(f"cannot write the results file {path}: {exc}") from exc
    return path


def load_results(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AiSysadminError(f"cannot read the results file {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise AiSysadminError(f"{path} is not an evaluation results file (format {FORMAT})")
    return data
