"""Write docs/cli.md (or the PATH given) from the CLI; ``--check``: exit 1 when it is stale,
write nothing."""

from __future__ import annotations

import sys
from pathlib import Path

from ai_sysadmin.cli.main import app
from ai_sysadmin.cli.reference import render

TARGET = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def main() -> int:
    text = render(app)
    paths = [Path(a) for a in sys.argv[1:] if not a.startswith("--")]
    target = paths[0] if paths else TARGET
    if "--check" in sys.argv[1:]:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            sys.stderr.write(f"{target} is stale: run python scripts/cli_reference.py\n")
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
