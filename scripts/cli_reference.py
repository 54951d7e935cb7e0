"""Write docs/cli.md and docs/commands/*.md from the CLI (or into the folder of the PATH given
for cli.md); ``--check``: exit 1 when any is stale or a page has no command, write nothing."""

from __future__ import annotations

import sys
from pathlib import Path

from ai_sysadmin.cli.main import app
from ai_sysadmin.cli.reference import pages, render

TARGET = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _wanted(target: Path) -> dict[Path, str]:
    folder = target.parent / "commands"
    return {target: render(app), **{folder / name: text for name, text in pages(app).items()}}


def main() -> int:
    paths = [Path(a) for a in sys.argv[1:] if not a.startswith("--")]
    target = paths[0] if paths else TARGET
    wanted = _wanted(target)
    folder = target.parent / "commands"
    if "--check" in sys.argv[1:]:
        stale = [p for p, text in wanted.items()
                 if not p.exists() or p.read_text(encoding="utf-8") != text]
        stale += [p for p in folder.glob("*.md") if p not in wanted]
        for path in stale:
            sys.stderr.write(f"{path} is stale: run python scripts/cli_reference.py\n")
        return 1 if stale else 0
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.md"):
        if old not in wanted:
            old.unlink()
    for path, text in wanted.items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
