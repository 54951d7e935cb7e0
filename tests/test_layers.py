"""Each layer imports only from the layers listed before it, as docs/architecture.md numbers
them: the test reads the layers from the document and every import (lazy ones in functions,
and those only for type checking, included) from the code, so neither can drift alone."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "ai_sysadmin"
DOC = ROOT / "docs" / "architecture.md"

_ITEM = re.compile(r"^(\d+)\. `(\w+)(?:\.py|/)`")
_MORE = re.compile(r"^ {3}`(\w+)/` —")
_TOP_MODULE = re.compile(r"`(\w+)\.py`")


def layers(doc: str, top: set[str]) -> dict[str, int]:
    """Top-level module or package -> its number in the document's "## Layers"; a module
    named first inside an item (`errors.py` under `config.py`) is of that item."""
    section = doc.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    found: dict[str, int] = {}
    number = 0
    for line in section.splitlines():
        if item := _ITEM.match(line):
            number = int(item.group(1))
            found.setdefault(item.group(2), number)
        elif more := _MORE.match(line):
            found.setdefault(more.group(1), number)
        for name in _TOP_MODULE.findall(line):
            if name in top and number:
                found.setdefault(name, number)
    return found


def _imported(path: Path, package: Path) -> list[tuple[int, list[str]]]:
    """(line, the module's path inside the package) for each import of the package."""
    here = list(path.relative_to(package).with_suffix("").parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[:len(here) - node.level]
            if node.module:
                found.append((node.lineno, base + node.module.split(".")))
            else:
                found += [(node.lineno, [*base, alias.name]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [
                alias.name for alias in node.names]
            found += [(node.lineno, name.split(".")[1:]) for name in names
                      if name and name.split(".")[0] == package.name]
    return found


def violations(package: Path, doc: str) -> list[str]:
    top = {p.stem if p.is_file() else p.name for p in package.iterdir()
           if (p.suffix == ".py" or (p / "__init__.py").is_file()) and p.stem != "__init__"}
    number = layers(doc, top)
    problems = [f"{name}: not among the layers of docs/architecture.md"
                for name in sorted(top - set(number))]
    for path in sorted(package.rglob("*.py")):
        own = path.relative_to(package).parts[0].removesuffix(".py")
        for line, target in _imported(path, package):
            other = target[0] if target else ""
            if other in number and own in number and number[other] > number[own]:
                problems.append(f"{path.relative_to(package)}:{line}: layer {number[own]} "
                                f"({own}) imports {'.'.join(target)}, layer {number[other]}")
    return problems


def test_no_layer_imports_a_layer_listed_after_it() -> None:
    assert violations(PACKAGE, DOC.read_text(encoding="utf-8")) == []


def test_the_document_names_every_layer_and_the_order_is_read_from_it() -> None:
    number = layers(DOC.read_text(encoding="utf-8"), {"config", "errors", "logs", "aio"})
    assert number["config"] == number["errors"] == number["aio"] == 1
    assert number["hosts"] < number["monitor"] < number["store"] < number["safety"] \
        < number["llm"] < number["agent"] < number["knowledge"] < number["executor"] \
        == number["notify"] == number["orchestrator"] < number["lab"] < number["cli"]


def test_an_upward_import_is_named_with_its_place(tmp_path: Path) -> None:
    package = tmp_path / "ai_sysadmin"
    for folder in ("hosts", "monitor"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "config.py").write_text("X = 1\n")
    (package / "hosts" / "ssh.py").write_text(
        "from ..config import X\n\ndef f():\n    from ..monitor import parsers\n")
    (package / "monitor" / "parsers.py").write_text("from ai_sysadmin.hosts import ssh\n")
    doc = ("# x\n\n## Layers\n\n1. `config.py` — one\n2. `hosts/` — two\n"
           "3. `monitor/` — three\n\n## Next\n")
    assert violations(package, doc) == [
        "hosts/ssh.py:4: layer 2 (hosts) imports monitor, layer 3"]
    # a package the document does not list is named too
    (package / "web").mkdir()
    (package / "web" / "__init__.py").write_text("")
    assert violations(package, doc)[0] == "web: not among the layers of docs/architecture.md"


#: the wiring (issue 9): the daemon, its runtime and the commands; a function longer than this
#: does more than one thing, and the next feature lands in the middle of it
WIRING, LONGEST = ("orchestrator", "cli"), 60


def test_no_function_of_the_wiring_is_over_60_lines() -> None:
    long = []
    for folder in WIRING:
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                    if lines > LONGEST:
                        long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} "
                                    f"{node.name} ({lines} lines)")
    assert long == []
