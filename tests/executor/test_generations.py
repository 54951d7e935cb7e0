"""What a rollback switches to is read from ``nix-env --list-generations`` as NixOS prints it:
the generation before the current one is the newest lower number (deleted ones leave gaps), and
a listing that is not one is an error, never a guess."""

from __future__ import annotations

import calendar

import pytest

from ai_sysadmin.executor.host_facts import parse_generations

LISTING = ("   3   2026-10-01 08:00:00   \n   5   2026-11-02 09:30:00   \n"
           "   9   2026-12-01 23:59:59   (current)\n")


def test_the_previous_generation_is_the_newest_lower_number() -> None:
    gens = parse_generations(LISTING)
    assert (gens.current, gens.previous) == (9, 5)
    assert gens.made_at == calendar.timegm((2026, 12, 1, 23, 59, 59, 0, 0, 0))


def test_the_oldest_generation_has_none_before_it() -> None:
    assert parse_generations("   1   2026-10-01 08:00:00   (current)\n").previous is None


@pytest.mark.parametrize("text", ["", "   3   2026-10-01 08:00:00   \n",
                                  "error: opening lock file\n",
                                  "   9   yesterday   (current)\n"])
def test_a_listing_that_is_not_one_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_generations(text)
