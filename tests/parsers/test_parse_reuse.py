"""A host's checks that read a text unchanged reuse what the last one made of it; a changed text
is always parsed anew, and a text that could not be parsed is never taken for one that was."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import CommandResult, LocalTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.sections import ParseReuse


def units(*states: tuple[str, str]) -> str:
    return json.dumps([{"unit": name, "load": "loaded", "active": active, "sub": active,
                        "description": name} for name, active in states])


class Answering(LocalTransport):
    """This machine, but for the unit list and the disk usage: what the test says they are."""

    def __init__(self) -> None:
        super().__init__("here")
        self.answers: dict[str, str] = {}

    async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
        for words, text in self.answers.items():
            if " ".join(argv).startswith(words):
                return CommandResult(tuple(argv), 0, text, "", 0.0)
        return await super().run(argv, timeout)


@pytest.fixture
def host(tmp_path: Path) -> tuple[Answering, Collector]:
    transport = Answering()
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state")
    return transport, Collector(transport, settings)


def test_an_unchanged_unit_list_is_reused_and_a_changed_one_read_anew(
        host: tuple[Answering, Collector]) -> None:
    transport, collector = host
    failed = units(("web.service", "failed"), ("db.service", "active"))
    transport.answers["systemctl list-units"] = failed
    first = asyncio.run(collector.collect())
    assert [(u.name, u.active) for u in first.units or []] == [
        ("web.service", "failed"), ("db.service", "active")]
    again = asyncio.run(collector.collect())
    assert again.units is first.units  # not parsed again

    transport.answers["systemctl list-units"] = units(("web.service", "active"),
                                                      ("db.service", "active"))
    fixed = asyncio.run(collector.collect())
    assert [(u.name, u.active) for u in fixed.units or []] == [
        ("web.service", "active"), ("db.service", "active")]
    assert [(u.name, u.active) for u in first.units or []][0] == ("web.service", "failed")

    transport.answers["systemctl list-units"] = failed  # back as it was: read, not remembered
    back = asyncio.run(collector.collect())
    assert [(u.name, u.active) for u in back.units or []][0] == ("web.service", "failed")


def test_a_unit_list_that_cannot_be_read_fails_every_check_that_gets_it(
        host: tuple[Answering, Collector]) -> None:
    transport, collector = host
    transport.answers["systemctl list-units"] = "Failed to list units: not JSON"
    for _ in range(2):
        snap = asyncio.run(collector.collect())
        assert "did not print JSON" in snap.errors["units"]
        assert snap.units is None


def test_hosts_do_not_share_what_they_parsed(tmp_path: Path) -> None:
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state")
    one, other = Answering(), Answering()
    for transport in (one, other):
        transport.answers["systemctl list-units"] = units(("web.service", "failed"))
    first = asyncio.run(Collector(one, settings).collect())
    second = asyncio.run(Collector(other, settings).collect())
    assert first.units == second.units and first.units is not second.units


def test_each_parser_keeps_its_own_last_text() -> None:
    reuse = ParseReuse()
    calls: list[str] = []

    def upper(text: str) -> list[str]:
        calls.append(text)
        return [text.upper()]

    def lower(text: str) -> list[str]:
        calls.append(text)
        return [text.lower()]

    made = reuse(upper, "Unit")
    assert reuse(upper, "Unit") is made and reuse(lower, "Unit") == ["unit"]
    assert reuse(upper, "Other") == ["OTHER"] and reuse(upper, "Unit") == ["UNIT"]
    assert calls == ["Unit", "Unit", "Other", "Unit"]
