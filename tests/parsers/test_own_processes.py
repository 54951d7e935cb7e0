"""The remote script's own processes (its shell, the timeout(1) of each step) and any line that
shows its marker are left out of the process listing a check keeps; nothing else is."""

from __future__ import annotations

import pytest

from ai_sysadmin.monitor.remote_script import without_own_processes

MARKER = "@@ai-sysadmin-0123456789abcdef01234567@@"

LISTING = "".join(f"{pid:>7} {rest}\n" for pid, rest in [
    ("1", "0 S root 0.0 0.1 11840 9000 0:00:01 0::/init.scope /sbin/init"),
    ("12", "1 S root 0.0 0.0 1200 80 0:00:00 0::/system.slice/a.service /usr/bin/a 412 12"),
    ("412", "1 S root 0.0 0.0 1720 60 0:00:00 0::/user.slice sh -s"),
    ("1412", "412 R root 0.0 0.0 4556 0 0:00:00 0::/user.slice ps -ww -eo pid="),
    ("2412", "1 S www 12.0 0.5 98000 600 0:00:42 0::/system.slice/web.service web 412"),
    ("3000", f"1 S root 0.0 0.0 1720 60 0:00:00 0::/user.slice sh -c M={MARKER} P= Q="),
    ("41", "1 S root 0.0 0.0 1720 60 0:00:00 0::/user.slice tail -f /var/log/412"),
]).removesuffix("\n")


def pids(listing: str) -> list[str]:
    return [line.split()[0] for line in listing.splitlines()]


@pytest.mark.parametrize("own, expected", [
    # the shell: not pid 1412 or 2412 (they end in its digits), nor a line that merely holds
    # 412 as a parent, an argument or a path; the line with the marker goes too
    ({"412"}, ["1", "12", "1412", "2412", "41"]),
    ({"412", "1412"}, ["1", "12", "2412", "41"]),
    ({"1"}, ["12", "412", "1412", "2412", "41"]),  # the first line, which has no newline before
    ({"41"}, ["1", "12", "412", "1412", "2412"]),  # the last line, which has no newline after
    ({"99999"}, ["1", "12", "412", "1412", "2412", "41"]),  # gone before ps ran
    (set(), ["1", "12", "412", "1412", "2412", "41"]),
])
def test_only_the_scripts_own_lines_are_left_out(own: set[str], expected: list[str]) -> None:
    kept = without_own_processes(LISTING, MARKER, own)
    assert pids(kept) == expected
    # the lines kept are kept whole, with their line ends
    assert all(line in LISTING.splitlines() for line in kept.splitlines())
    assert kept.endswith(LISTING[-10:]) == ("41" in expected)


def test_a_listing_without_any_of_them_is_returned_as_it_is() -> None:
    listing = LISTING.replace(MARKER, "elsewhere") + "\n"
    assert without_own_processes(listing, MARKER, {"7"}) == listing
