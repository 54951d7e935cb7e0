"""Invisible Unicode in a journal identifier (any local user names the program it logs as):
a right-to-left override turns what a person reads around, a zero-width or direction mark
hides that "nginx.service" is not the unit of that name. The alert and the CLI show the
text as it reads, and an identifier that reads as a unit's name says it is none."""

from __future__ import annotations

import asyncio
import unicodedata

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.rules import RuleContext, evaluate
from ai_sysadmin.monitor.snapshot import Snapshot
from ai_sysadmin.notify import Notifier
from ai_sysadmin.store import Database, IncidentStore
from tests.notify.conftest import make_settings, run_notifier
from tests.notify.servers import GotifyServer
from tests.support.polling import poll_until

pytestmark = pytest.mark.lab

TOKEN = "AppTok-5e0c2b9d41aa"
BURST = 20

#: what the sender named itself, and how a person must read it in the alert
IDENTIFIERS = {
    # shown right to left, "\u202eecivres.xnign" reads "nginx.service"
    "override": ("\u202eecivres.xnign", "journal errors from ecivres.xnign in"),
    # an invisible mark after the suffix: it would not read as a unit's name to the rule
    "direction mark": ("nginx.service\u200f",
                       "journal errors from nginx.service (syslog identifier) in"),
    "zero width space": ("cron.service\u200b",
                         "journal errors from cron.service (syslog identifier) in"),
}


def _invisible(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) == "Cf"]


def _burst(sandbox: Sandbox, settings: Settings, identifier: str, said: str) -> Snapshot:
    sandbox.exec(["systemd-cat", "-t", identifier, "-p", "crit", "sh", "-c",
                  f'for i in $(seq {BURST}); do echo "$0 $i"; done', said], check=True)

    def logged() -> Snapshot | None:
        snap = asyncio.run(Collector(SandboxTransport(sandbox), settings).collect())
        assert "journal" not in snap.errors
        seen = [e for e in snap.journal or [] if e.message.startswith(said)]
        return snap if len(seen) >= BURST else None

    return poll_until(logged, what="the burst in the journal")


@pytest.mark.parametrize("case", IDENTIFIERS)
def test_an_identifier_cannot_hide_what_it_is_from_a_person(
        sandbox: Sandbox, tmp_path, cli, case: str) -> None:
    identifier, reads = IDENTIFIERS[case]
    with GotifyServer(TOKEN) as gotify:
        settings = make_settings(tmp_path, gotify, token=TOKEN)
        said = f"disk error ({case})"
        snapshot = _burst(sandbox, settings, identifier, said)
        findings, judged = evaluate(RuleContext(snapshot, settings.thresholds))
        ours = [f for f in findings if f.rule == "journal_error_burst"
                and said in " ".join(f.evidence)]
        assert len(ours) == 1, findings
        store = IncidentStore(Database(settings.db_path))
        (number,) = store.record_check(snapshot.host, ours, judged).opened
        notifier = Notifier(settings, store.db)
        run_notifier(notifier, lambda: gotify.accepted)
    (message,) = gotify.accepted
    assert reads in message["title"], message["title"]
    assert _invisible(message["title"] + message["message"]) == []
    _, shown, _ = cli("issues", "show", str(number))
    _, listed, _ = cli("issues")
    assert reads.split(" from ")[1].removesuffix(" in") in shown, shown
    assert _invisible(shown + listed) == []
