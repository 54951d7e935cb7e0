"""A host removed and added again at another target (`systems remove`, `systems add`: the
documented way to replace a host's target) while the daemon runs is investigated and fixed at
its new target: the transports the daemon built at its start reached the old machine until
the host's next check renewed its checker. Two listeners on loopback stand for the old and
the new machine: where a connection goes is all that is asked of them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from ai_sysadmin.config import Settings
from ai_sysadmin.llm.backends import make_backend
from ai_sysadmin.llm.client import DirectLLM
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.daemon import build_daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, IncidentStore
from tests.support.scripted_model import ScriptedModel, call, say

Cli = Callable[..., tuple[int, str, str]]
FAILED = Finding("web1", "failed_unit", "app.service", Severity.CRITICAL,
                 "app.service has failed", ("app.service: active=failed",))


class Machine:
    """A listener on 127.0.0.1 that counts the connections it takes and hangs up on each."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _hang_up(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def __aenter__(self) -> Machine:
        self._server = await asyncio.start_server(self._hang_up, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._server is not None
        self._server.close()


def _settings(tmp_path: Path, llm_url: str = "http://127.0.0.1:9") -> Settings:
    return Settings(ai_name="hal", state_dir=tmp_path / "state", journal_follow=False,
                    knowledge={"enabled": False},
                    ssh={"connect_timeout": 2, "known_hosts": str(tmp_path / "known_hosts"),
                         "use_ssh_config": False},
                    llm={"backend": "openai", "url": llm_url, "model": "scripted"})


async def _add(cli: Cli, machine: Machine) -> None:
    added = await asyncio.to_thread(cli, "systems", "add", "--no-probe",
                                    f"root@127.0.0.1:{machine.port}", "--name", "web1")
    assert added[0] == 0, added


async def _replace(cli: Cli, machine: Machine) -> None:
    """web1 at ``machine`` now, as the docs say to replace a host's target."""
    removed = await asyncio.to_thread(cli, "systems", "remove", "web1")
    assert removed[0] == 0, removed
    await _add(cli, machine)


def _opened(store: IncidentStore) -> int:
    """An incident of the new web1, as a person's `check` of it opens one."""
    (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"},
                                        registered=store.registration("web1")).opened
    return incident_id


def test_an_incident_of_a_host_added_again_is_investigated_at_its_new_target(
        cli: Cli, tmp_path: Path) -> None:
    with ScriptedModel([call("failed_units", host="web1"), say("DIAGNOSIS: looked.")]) as model:
        settings = _settings(tmp_path, model.url)
        store = IncidentStore(Database(settings.db_path))

        async def go() -> tuple[int, int, bool]:
            async with Machine() as old, Machine() as new:
                await _add(cli, old)
                daemon = build_daemon(Runtime(settings, store), follow_config=False)
                investigator = daemon.investigator
                assert investigator is not None
                investigator.llm_for = lambda _: DirectLLM(make_backend(settings.llm))
                was = daemon.runtime.checkers["web1"]
                await _replace(cli, new)
                incident_id = _opened(store)
                # the daemon's sweep of incidents nobody triaged, before web1's next check
                assert investigator.pick_up(store.untriaged()) == [incident_id]
                await asyncio.wait_for(asyncio.shield(investigator.running[incident_id]), 60)
                await investigator.close()
                now = daemon.runtime.checkers["web1"]
                swapped = now is not was and now in daemon.checkers and was not in daemon.checkers
                await daemon.runtime.close()
                return old.connections, new.connections, swapped

        at_old, at_new, swapped = asyncio.run(go())
    assert at_old == 0 and at_new > 0
    assert swapped  # the daemon's own checks go on with the fresh checker, renewed once
    assert len(model.requests) == 2


def test_a_fix_for_a_host_added_again_runs_at_its_new_target(cli: Cli, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store = IncidentStore(Database(settings.db_path))

    async def go() -> tuple[str, int, int]:
        async with Machine() as old, Machine() as new:
            await _add(cli, old)
            runtime = Runtime(settings, store)
            executor = runtime.executor  # as the daemon's, built at its start
            await _replace(cli, new)
            action = executor.actions.create(
                incident_id=_opened(store), proposal_id=None, host="web1",
                kind="restart_unit", params={"unit": "app.service"}, subject="app.service",
                risk="low", plan={"commands": [["systemctl", "restart", "app.service"]]},
                outcome="execute", reason="low risk at auto-safe", state="approved")
            ran = await executor.run(action.id)
            assert runtime.checkers["web1"].transport is runtime.transports["web1"]
            await runtime.close()
            return ran.state, old.connections, new.connections

    state, at_old, at_new = asyncio.run(go())
    assert at_old == 0 and at_new > 0
    assert state == "pending"  # the new machine did not answer: nothing ran, a person's
