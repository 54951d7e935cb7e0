"""The inventory's state: hosts added, discovered, accepted or removed by the operator."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

from ..config import short_hostname
from ..errors import AiSysadminError, NotFoundError
from ..hosts.inventory import target_machine
from .audit import write_audit
from .db import Database

#: the machine a host's target reaches (None: none), two targets of one being one machine
MachineOf = Callable[[str], Hashable | None]


def host_removed(conn: Any, name: str) -> bool:
    """Removed by the operator (``systems remove``): nothing checks, investigates or fixes
    it any more, whatever a process that built its hosts before still holds. Never this
    machine: every command and the daemon watch the one they run on, and ``systems remove``
    refuses it (a version before that did not, so an old database may say so)."""
    row = conn.execute("SELECT status FROM hosts WHERE name=?", (name,)).fetchone()
    return row is not None and row["status"] == "removed" and name != short_hostname()


def registration(conn: Any, name: str) -> float | None:
    """Which registration of the host ``name`` is now: its ``first_seen``, new each time it
    is managed again after `systems remove` (:func:`_forget_removed`); None while it has no
    row (this machine before its first check). A check that began for another stores
    nothing: what it saw is the removed machine's."""
    row = conn.execute("SELECT first_seen FROM hosts WHERE name=?", (name,)).fetchone()
    return None if row is None else float(row["first_seen"])


def _forget_removed(conn: Any, name: str) -> None:
    """A removed host managed again may be another machine: nothing the removed one reported
    is shown as its, and ``first_seen`` anew tells a running daemon that it is not the host
    its checker checked."""
    conn.execute("UPDATE hosts SET first_seen=?, last_check=NULL, last_ok=NULL, os=NULL, "
                 "reachable=NULL, last_error=NULL, check_failed_since=NULL WHERE name=?",
                 (time.time(), name))


class HostStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _audit(self, conn: Any, actor: str, what: str, name: str, detail: str = "") -> None:
        write_audit(conn, actor, what, f"host:{name}", detail)

    def upsert(self, name: str, *, target: str | None, source: str, status: str,
               actor: str = "operator") -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO hosts(name, first_seen, source, status, target) VALUES (?,?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET status=excluded.status, "
                "target=COALESCE(excluded.target, hosts.target), source=excluded.source",
                (name, time.time(), source, status, target))
            self._audit(conn, actor, f"host.{status}", name, f"{target or name} from {source}")

    def add(self, name: str, *, target: str, source: str, actor: str = "operator",
            machine: MachineOf = target_machine) -> None:
        """Manage a new host; one already managed under this name or at this machine is
        refused, not replaced (a removed or discovered one is managed again, with this target).
        ``machine``: the machine a target reaches (the fleet's: where ~/.ssh/config sends it)."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT status, target FROM hosts WHERE name=?",
                               (name,)).fetchone()
            if row is not None and row["status"] == "managed":
                raise AiSysadminError(f"{name} is already managed ({row['target'] or name}); "
                                    f"`systems remove {name}` first to replace it")
            self._refuse_twin(conn, name, target, machine)
            if row is not None and row["status"] == "removed":
                _forget_removed(conn, name)
            conn.execute(
                "INSERT INTO hosts(name, first_seen, source, status, target) "
                "VALUES (?,?,?,'managed',?) ON CONFLICT(name) DO UPDATE SET status='managed', "
                "target=excluded.target, source=excluded.source",
                (name, time.time(), source, target))
            self._audit(conn, actor, "host.managed", name, f"{target} from {source}")

    def accept(self, name: str, actor: str = "operator",
               machine: MachineOf = target_machine) -> None:
        """Manage a discovered host, unless its machine (``machine``, as :meth:`add`) is
        managed under another name."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT target, status FROM hosts WHERE name=?",
                               (name,)).fetchone()
            if row is None:
                raise NotFoundError(f"no host {name!r}; see `systems list --all`")
            self._refuse_twin(conn, name, row["target"] or name, machine)
            if row["status"] == "removed":
                _forget_removed(conn, name)
            # one the config listed once and dropped is the operator's now, at its name:
            # still the config's, with no target, nothing checked it and the next start
            # let it go again
            conn.execute("UPDATE hosts SET status='managed', target=COALESCE(target, name), "
                         "source=CASE WHEN source IN ('config','checked') THEN 'accepted' "
                         "ELSE source END WHERE name=?", (name,))
            self._audit(conn, actor, "host.managed", name)

    def _refuse_twin(self, conn: Any, name: str, target: str, machine: MachineOf) -> None:
        """The daemon would check one machine twice: two SSH sessions, every incident and
        fix twice. Checked here, in the writing transaction, so two adds cannot both pass."""
        twin = self._twin(conn, name, target, machine)
        if twin is not None:
            raise AiSysadminError(
                f"{name} ({target}) is already managed as {twin['name']} ({twin['target']}); "
                f"`systems remove {twin['name']}` first")

    def _twin(self, conn: Any, name: str, target: str,
              machine: MachineOf) -> dict[str, Any] | None:
        """Another managed host whose target reaches the same machine. Rows a check recorded
        (source 'checked') name this machine, which no target reaches over SSH."""
        wanted = machine(target)
        if wanted is None:
            return None
        rows = conn.execute(
            "SELECT name, target FROM hosts WHERE status='managed' AND source != 'checked' "
            "AND target IS NOT NULL AND name != ?", (name,))
        return next((dict(r) for r in rows if machine(r["target"]) == wanted), None)

    def discover(self, name: str, source: str) -> bool:
        """Record a host seen somewhere; True when it is new. Known hosts are left alone."""
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO hosts(name, first_seen, source, status, target) "
                "VALUES (?,?,?,'discovered',?)", (name, time.time(), source, name))
            if cur.rowcount:
                self._audit(conn, "discovery", "host.discovered", name, f"seen in {source}")
            return bool(cur.rowcount)

    def set_status(self, name: str, status: str, actor: str = "operator") -> dict[str, Any]:
        with self.db.transaction() as conn:
            cur = conn.execute("UPDATE hosts SET status=? WHERE name=?", (status, name))
            if not cur.rowcount:
                raise NotFoundError(f"no host {name!r}; see `systems list --all`")
            self._audit(conn, actor, f"host.{status}", name)
        return self.get(name)

    def remove(self, name: str, actor: str = "operator") -> None:
        """Manage ``name`` no more; one removed already (by another terminal's `systems
        remove` a moment before, say) is refused naming who removed it and when, in the
        transaction that would remove it: of two removes, one removes it."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT status FROM hosts WHERE name=?", (name,)).fetchone()
            if row is not None and row["status"] == "removed":
                said = conn.execute("SELECT actor, at FROM audit WHERE subject=? AND "
                                    "action='host.removed' ORDER BY id DESC LIMIT 1",
                                    (f"host:{name}",)).fetchone()
                by = "" if said is None else (
                    f" by {said['actor']} at "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(said['at']))}")
                raise AiSysadminError(f"{name} is not managed: it was removed already{by}")
            self.set_status(name, "removed", actor)

    def mark_listed(self, listed: set[str], actor: str = "daemon") -> None:
        """The rows of the hosts ``remote_systems`` lists (``listed``: their names) are the
        config's (source 'config'): the ones their checks wrote ('checked', a default this
        machine's own row shares), and one discovery wrote before the config listed it
        ('discovered': the config manages it). Only such rows are ever let go when the config
        drops a name (:meth:`unlisted`): never this machine's, whatever its name is at a
        start (a hostname not set yet at boot), nor one `systems add` or `accept` manages."""
        local = short_hostname()
        now = time.time()
        with self.db.transaction() as conn:
            for name in sorted(listed - {local}):
                # one newly listed has no row yet: its first check would make it 'checked',
                # and the config dropping it after one run would leave it managed, never
                # checked again, its incidents open for good
                made = conn.execute(
                    "INSERT INTO hosts(name, first_seen, source, status) "
                    "VALUES (?,?,'config','managed') ON CONFLICT(name) DO NOTHING", (name, now))
                if made.rowcount:
                    self._audit(conn, actor, "host.managed", name, "listed in remote_systems")
                    continue
                cur = conn.execute(
                    "UPDATE hosts SET source='config', status='managed' WHERE name=? AND "
                    "(status='discovered' OR (status='managed' AND source='checked'))",
                    (name,))
                if cur.rowcount:
                    self._audit(conn, actor, "host.managed", name, "listed in remote_systems")

    def unlisted(self, listed: set[str]) -> list[str]:
        """Hosts managed because the config listed them (source 'config', see
        :meth:`mark_listed`), which it does not list now (``listed``: the names of
        ``remote_systems``)."""
        rows = self.db.conn.execute("SELECT name FROM hosts WHERE status='managed' AND "
                                    "source='config' ORDER BY name")
        return [r["name"] for r in rows if r["name"] not in listed
                and r["name"] != short_hostname()]

    def removed_among(self, listed: set[str]) -> list[str]:
        """The hosts of ``listed`` (the names of ``remote_systems``) the config dropped once
        (source 'config', removed), listed again. One `systems remove` removed stays removed
        (an older version let it remove a host the config lists): the operator said so."""
        rows = self.db.conn.execute("SELECT name FROM hosts WHERE status='removed' AND "
                                    "source='config' ORDER BY name")
        return [r["name"] for r in rows if r["name"] in listed
                and r["name"] != short_hostname()]

    def relist(self, name: str, actor: str = "daemon") -> bool:
        """Manage again a host the config dropped and lists again: as a new host, maybe
        another machine (:func:`_forget_removed`), and as the config's (no target: the config
        says where it is), so that the config dropping it again ends its management. False:
        it is not removed (now)."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT status FROM hosts WHERE name=?", (name,)).fetchone()
            if row is None or row["status"] != "removed":
                return False
            _forget_removed(conn, name)
            conn.execute("UPDATE hosts SET status='managed', source='config', target=NULL "
                         "WHERE name=?", (name,))
            self._audit(conn, actor, "host.managed", name, "listed in remote_systems again")
        return True

    def removed(self, name: str) -> bool:
        """See :func:`host_removed`."""
        return host_removed(self.db.conn, name)

    def get(self, name: str) -> dict[str, Any]:
        row = self.db.conn.execute("SELECT * FROM hosts WHERE name=?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no host {name!r}; see `systems list --all`")
        return dict(row)

    def all(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.conn.execute("SELECT * FROM hosts ORDER BY name")]

    def with_status(self, status: str) -> list[dict[str, Any]]:
        return [h for h in self.all() if h["status"] == status]

    def open_incidents(self) -> dict[str, int]:
        rows = self.db.conn.execute(
            "SELECT host, COUNT(*) AS n FROM incidents WHERE state NOT IN ('resolved','closed') "
            "GROUP BY host")
        return {r["host"]: r["n"] for r in rows}
