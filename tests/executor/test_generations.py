"""What a rollback switches to is read from the system profile's links as ``find -printf``
lists them (name, the link's own time, its target): the generation before the current one is
the newest lower number (deleted ones leave gaps), and a listing that is not one is an error,
never a guess."""

from __future__ import annotations

import pytest

from ai_sysadmin.executor.host_facts import parse_generations

LISTING = ("system-3-link\t1790000000.5\t/nix/store/aaa-nixos-system-3\n"
           "system\t1796000000.0\tsystem-9-link\n"
           "system-5-link\t1793000000.0\t/nix/store/bbb-nixos-system-5\n"
           "system-9-link\t1795999999.25\t/nix/store/ccc-nixos-system-9\n"
           "system-profiles\t1700000000.0\t\n")


def test_the_previous_generation_is_the_newest_lower_number() -> None:
    gens = parse_generations(LISTING)
    assert (gens.current, gens.previous, gens.made_at) == (9, 5, 1795999999.25)


def test_a_profile_link_written_whole_names_its_generation_too() -> None:
    text = LISTING.replace("\tsystem-9-link", "\t/nix/var/nix/profiles/system-9-link")
    assert parse_generations(text).current == 9


def test_the_oldest_generation_has_none_before_it() -> None:
    text = "system\t1.0\tsystem-1-link\nsystem-1-link\t1790000000.0\t/nix/store/a\n"
    assert parse_generations(text).previous is None


@pytest.mark.parametrize("text", [
    "",
    "system-3-link\t1790000000.0\t/nix/store/a\n",  # no profile link
    "system\t1.0\tsystem-4-link\nsystem-3-link\t1790000000.0\t/nix/store/a\n",
    "system\t1.0\t/nix/store/abc-nixos-system\n",  # not a generation link
    "system\t1.0\tsystem-3-link\nsystem-3-link\tyesterday\t/nix/store/a\n",
    "find: '/nix/var/nix/profiles': No such file or directory\n",
])
def test_a_listing_that_is_not_one_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_generations(text)
