"""Schema migrations, numbered. A shipped migration is never edited: add the next one."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: hosts, incidents with history, append-only audit, journal cursors and entries
    """
    CREATE TABLE hosts (
        name TEXT PRIMARY KEY,
        first_seen REAL NOT NULL,
        last_check REAL,
        last_ok REAL,
        os TEXT
    );
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        host TEXT NOT NULL,
        rule TEXT NOT NULL,
        subject TEXT NOT NULL,
        severity TEXT NOT NULL,
        summary TEXT NOT NULL,
        evidence TEXT NOT NULL DEFAULT '[]',
        state TEXT NOT NULL,
        opened_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        last_seen REAL NOT NULL,
        resolved_at REAL,
        occurrences INTEGER NOT NULL DEFAULT 1,
        diagnosis TEXT
    );
    -- at most one live (not closed) incident per fingerprint
    CREATE UNIQUE INDEX incidents_live ON incidents(fingerprint) WHERE state != 'closed';
    CREATE INDEX incidents_host_state ON incidents(host, state);
    CREATE TABLE incident_events (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT,
        actor TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX incident_events_incident ON incident_events(incident_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TABLE journal_cursors (
        host TEXT NOT NULL,
        consumer TEXT NOT NULL,
        cursor TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (host, consumer)
    );
    CREATE TABLE journal_entries (
        id INTEGER PRIMARY KEY,
        host TEXT NOT NULL,
        consumer TEXT NOT NULL,
        cursor TEXT NOT NULL,
        at REAL NOT NULL,
        priority INTEGER NOT NULL,
        source TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX journal_entries_host_at ON journal_entries(host, at);
    """,
)

MIGRATIONS += (
    # 2: proposals recorded by investigations; investigation retry bookkeeping on incidents
    """
    CREATE TABLE proposals (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER REFERENCES incidents(id),
        host TEXT NOT NULL,
        kind TEXT NOT NULL,
        parameters TEXT NOT NULL,
        rationale TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'proposed',
        created_at REAL NOT NULL,
        source TEXT NOT NULL DEFAULT 'agent'
    );
    CREATE INDEX proposals_incident ON proposals(incident_id);
    ALTER TABLE incidents ADD COLUMN investigation_attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE incidents ADD COLUMN next_investigation_at REAL;
    ALTER TABLE incidents ADD COLUMN investigation_error TEXT;
    """,
)

MIGRATIONS += (
    # 3: actions: the policy's decision on each proposal, approvals, execution at most once
    """
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER REFERENCES incidents(id),
        proposal_id INTEGER REFERENCES proposals(id),
        host TEXT NOT NULL,
        kind TEXT NOT NULL,
        params TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '',
        risk TEXT NOT NULL,
        plan TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL,
        decided_by TEXT,
        decided_at REAL,
        decision_reason TEXT,
        started_at REAL,
        finished_at REAL,
        result TEXT
    );
    CREATE INDEX actions_state ON actions(state);
    CREATE INDEX actions_subject ON actions(host, kind, subject, started_at);
    """,
)

MIGRATIONS += (
    # 4: the inventory: where a host came from and whether the operator manages it
    """
    ALTER TABLE hosts ADD COLUMN source TEXT NOT NULL DEFAULT 'checked';
    ALTER TABLE hosts ADD COLUMN status TEXT NOT NULL DEFAULT 'managed';
    ALTER TABLE hosts ADD COLUMN target TEXT;
    ALTER TABLE hosts ADD COLUMN reachable INTEGER;
    ALTER TABLE hosts ADD COLUMN last_error TEXT;
    """,
)

MIGRATIONS += (
    # 5: the notification outbox: events written with the change they report, the messages
    # made of them, one delivery per message and channel
    """
    CREATE TABLE notify_events (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        host TEXT NOT NULL,
        fingerprint TEXT NOT NULL DEFAULT '',
        incident_id INTEGER,
        action_id INTEGER,
        severity TEXT NOT NULL,
        repeat_key TEXT NOT NULL,
        facts TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'new',
        message_id INTEGER,
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX notify_events_state ON notify_events(state);
    CREATE INDEX notify_events_repeat ON notify_events(repeat_key, at);
    CREATE TABLE notify_messages (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        priority INTEGER NOT NULL
    );
    CREATE TABLE notify_deliveries (
        message_id INTEGER NOT NULL REFERENCES notify_messages(id),
        channel TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        last_error TEXT,
        delivered_at REAL,
        PRIMARY KEY (message_id, channel)
    );
    CREATE INDEX notify_deliveries_due ON notify_deliveries(channel, state, next_at);
    """,
)

MIGRATIONS += (
    # 6: which process holds an approved or executing action (see store.actions.this_process):
    # a restarted daemon leaves alone what a living `approve` is running
    """
    ALTER TABLE actions ADD COLUMN owner TEXT;
    """,
)

MIGRATIONS += (
    # 7: when an action's commands ran: a fix's time, by which a checker of any process judges
    # what came after it (a burst's earlier errors). Actions that ran before have none: as
    # before, only the process that ran them knew it.
    """
    ALTER TABLE actions ADD COLUMN ran_at REAL;
    CREATE INDEX actions_ran ON actions(host, ran_at);
    """,
)

MIGRATIONS += (
    # 8: when each service's restart count last rose (the look after which it did): a crash
    # loop slower than the checks stays one incident across a restart of the daemon
    """
    CREATE TABLE restart_rises (
        host TEXT NOT NULL,
        unit TEXT NOT NULL,
        rose_after REAL NOT NULL,
        PRIMARY KEY (host, unit)
    );
    """,
)

MIGRATIONS += (
    # 9: since when a host's checks fail for a reason of ai-sysadmin's own (a bug: the check
    # raised), none of them stored; NULL once one works. `systems` shows such a host and a
    # person is told (the outbox's check_failing)
    """
    ALTER TABLE hosts ADD COLUMN check_failed_since REAL;
    """,
)

MIGRATIONS += (
    # 10: the lessons of actions that ran, until the knowledge base holds them: one it could
    # not take (a ChromaDB server down, its disk full, its files damaged) waits here and is
    # tried again, not lost
    """
    CREATE TABLE lessons_due (
        action_id INTEGER PRIMARY KEY REFERENCES actions(id),
        since REAL NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        error TEXT
    );
    """,
)

MIGRATIONS += (
    # 11: restart_rises generalised to every counter whose rises a rule judges by (`counter`:
    # a service's "restarts", its "oom_kills"), so an OOM kill incident too resolves a window
    # after its last kill across a restart of the daemon. A live one from before kept its
    # kill's time in memory only: the latest check that found it (the kill came before it)
    # stands for it, so it resolves no later than a daemon restarted before this one would
    """
    CREATE TABLE rises (
        host TEXT NOT NULL,
        counter TEXT NOT NULL,
        unit TEXT NOT NULL,
        rose_after REAL NOT NULL,
        PRIMARY KEY (host, counter, unit)
    );
    INSERT INTO rises(host, counter, unit, rose_after)
        SELECT host, 'restarts', unit, rose_after FROM restart_rises;
    INSERT INTO rises(host, counter, unit, rose_after)
        SELECT host, 'oom_kills', subject, MAX(last_seen) FROM incidents
        WHERE rule = 'oom_kill'
          AND state IN ('open', 'investigating', 'awaiting_approval', 'remediating', 'reopened')
        GROUP BY host, subject;
    DROP TABLE restart_rises;
    """,
)

MIGRATIONS += (
    # 12: migration 8's restart_rises back, empty and read by no one: a process of schema 8 to
    # 10 still running when this file is upgraded (an older `approve` whose fix is being
    # verified as the services restart) fails every check on a table it reads and writes.
    # A migration adds from now on, never drops or renames what an older release uses
    """
    CREATE TABLE IF NOT EXISTS restart_rises (
        host TEXT NOT NULL,
        unit TEXT NOT NULL,
        rose_after REAL NOT NULL,
        PRIMARY KEY (host, unit)
    );
    """,
)

MIGRATIONS += (
    # 13: an incident a person closed while its finding was present (`issues close`) holds its
    # finding since then: no new incident opens for it until a check that judged its rule
    # finds it gone (NULL again). Indexed by what a check asks: its host's, and a finding's
    """
    ALTER TABLE incidents ADD COLUMN held_since REAL;
    CREATE INDEX incidents_held ON incidents(host, fingerprint) WHERE held_since IS NOT NULL;
    """,
)

MIGRATIONS += (
    # 14: what a check and the notifications ask of the history, indexed: an incident's events
    # (its resolution asks whether a person was paged of it, in the check's write
    # transaction), a fingerprint's (an outage's, what was last told of a thing), a fix's, the
    # messages of the last minutes (a storm's count) and an incident's fixes (whether one is
    # being run or held, for each live incident at each check). Unindexed, each read all of
    # its table: 200 resolutions over 30,000 events of history took 7.8 s, over 200,000 38 s,
    # other writers waiting on the lock meanwhile
    """
    CREATE INDEX IF NOT EXISTS notify_events_incident ON notify_events(incident_id, id);
    CREATE INDEX IF NOT EXISTS notify_events_fingerprint ON notify_events(fingerprint, id);
    CREATE INDEX IF NOT EXISTS notify_events_action ON notify_events(action_id)
        WHERE action_id IS NOT NULL;
    CREATE INDEX IF NOT EXISTS notify_events_message ON notify_events(message_id)
        WHERE message_id IS NOT NULL;
    CREATE INDEX IF NOT EXISTS notify_messages_at ON notify_messages(at);
    CREATE INDEX IF NOT EXISTS actions_incident ON actions(incident_id, id);
    """,
)
