"""What a person reads: a title with the assistant's name and the host, the summary, two lines
of evidence, and the exact next command (``hal-approve approve 12``, ``hal-issues show 7``)."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..monitor.findings import quote
from ..redact import redact
from ..store.outbox import PAGING_PRIORITY, OutboxEvent

#: Gotify's scale: low 2, normal 5, high 8 (what pages a person)
PRIORITIES = {"low": 2, "normal": 5, "high": PAGING_PRIORITY}
_BY_SEVERITY = {"critical": 8, "warning": 5, "info": 2}
TITLE_LIMIT = 160
BODY_LIMIT = 3000
#: digest lines before "... and N more"
DIGEST_LINES = 12
#: a summary, an evidence line, an action's subject (a host's text: a journal identifier, a
#: log line) in a message
HOST_TEXT_LIMIT = 300
#: what a fix's verification or failure said (command output among it)
DETAIL_LIMIT = 1000
#: why the model proposed a fix (its words) in an approval's message
RATIONALE_LIMIT = 500


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    priority: int


def priority_of(event: OutboxEvent) -> int:
    """Severity maps to priority; a person's question at least normal, good news low."""
    by_severity = _BY_SEVERITY.get(event.severity, 5)
    if event.kind in ("back", "resolved", "fixed", "withdrawn", "llm_back", "worker_back",
                      "check_back"):
        return PRIORITIES["low"]
    if event.kind in ("unreachable", "llm_down", "worker_down", "check_failing"):
        return PRIORITIES["high"]
    # a warning left to a person is no page: below notify.min_severity its opening said
    # nothing, and a busy machine's load was escalated at 8 twice an hour
    if event.kind in ("approval", "failed", "escalated"):
        return max(by_severity, PRIORITIES["normal"])
    return by_severity


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _flat(value: object, limit: int = HOST_TEXT_LIMIT) -> str:
    """A host's text as one bounded line without control characters: a newline in a journal
    identifier (any local user sets one) would otherwise start a line of the host's own in
    what a person reads, such as a forged "Next:" command."""
    return quote(str(value or ""), limit)


def _action_text(facts: dict[str, Any]) -> str:
    """What runs, as a person reads it: the kind and what it acts on. An action's subject is
    what its incident is about; a kill signals one process of it, which the title names
    ("kill_process PID 302 (reindex.service)"), not the whole service."""
    action = facts.get("action") or {}
    kind, subject = action.get("kind", "?"), action.get("subject", "")
    params = action.get("params") or {}
    if kind == "kill_process" and isinstance(params.get("pid"), int):
        pid = params["pid"]
        what = f"PID {pid}" + (f" ({subject})" if subject and subject != f"pid:{pid}" else "")
        if params.get("signal") == "KILL":
            what += " with SIGKILL"
        return _flat(f"{kind} {what}")
    return _flat(f"{kind} {subject}")


def _summary(facts: dict[str, Any]) -> str:
    return _flat(facts.get("summary"))


def _headline(event: OutboxEvent) -> str:
    facts = event.facts
    summary = _summary(facts) or _action_text(facts)
    return {
        "opened": summary,
        "worse": f"{summary} (now {event.severity})",
        "unreachable": "unreachable",
        "back": "reachable again",
        "resolved": _cleared(event),
        "approval": f"approval needed: {_action_text(facts)}",
        "withdrawn": f"no longer needed: {_action_text(facts)}",
        "fixed": f"fixed: {summary}",
        "failed": f"fix failed: {summary}",
        "escalated": f"needs a person: {summary}",
        "llm_down": f"the LLM does not answer: {facts.get('waiting', '?')} incident(s) wait",
        "llm_back": "the LLM answers again",
        "worker_down": f"no LLM worker takes requests: {facts.get('waiting', '?')} incident(s) "
                       "wait",
        "worker_back": "an LLM worker takes requests again",
        "check_failing": "not watched: its checks fail",
        "check_back": "checked again: its checks work",
    }.get(event.kind, summary)


def _cleared(event: OutboxEvent) -> str:
    """The all-clear's headline: what the person was paged with, how bad and how long ago."""
    paged = event.facts.get("paged") or {}
    what = _flat(paged.get("summary")) or _summary(event.facts)
    at = paged.get("at")
    since = (f", paged {max(event.at - at, 0) / 60:.0f} min ago"
             if isinstance(at, int | float) else "")
    return f"resolved: {what} (was {_flat(paged.get('severity', event.severity))}{since})"


#: what to run next about an outage, by its event's kind
_OUTAGE_NEXT = {
    "llm_down": "ai-sysadmin llm status",  # no {name}-llm tool: the command's own name
    "worker_down": "{name}-queue",
    "check_failing": "{name}-logs service",  # the daemon logs the traceback on that channel
    "check_back": "{name}-systems",
}


def next_command(event: OutboxEvent, ai_name: str) -> str:
    action = event.facts.get("action") or {}
    if event.kind in _OUTAGE_NEXT:
        return _OUTAGE_NEXT[event.kind].format(name=ai_name)
    if event.kind == "approval":
        return f"{ai_name}-approve approve {action.get('id')}"
    if event.incident_id is not None:
        return f"{ai_name}-issues show {event.incident_id}"
    if action.get("id") is not None:
        return f"{ai_name}-approve show {action['id']}"
    return f"{ai_name}-issues list"


def _since(event: OutboxEvent) -> str:
    """Since when an outage (the LLM server, a worker, a host's checks) lasts, and for how
    long by the event's time."""
    since = event.facts.get("since")
    if not isinstance(since, int | float):
        return "a time not known"
    seconds = max(event.at - since, 0)
    # an outage told after notify.*_after_seconds of less than a minute read "for 0 min"
    lasted = f"{seconds:.0f} s" if seconds < 59.5 else f"{seconds / 60:.0f} min"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(since))} (for {lasted})"


def _llm_detail(event: OutboxEvent) -> str:
    facts = event.facts
    # masked when stored; a server's error text is no more trusted than a host's
    url = _flat(facts.get("url"))
    if event.kind == "llm_back":
        return (f"The LLM at {url} answers again; it had not since {_since(event)}. The "
                "incidents that waited are investigated now.")
    return (f"The LLM at {url} has not answered investigations since {_since(event)}; they "
            "are retried, and the incidents stay open with no diagnosis or fix until it does."
            "\n"
            f"Last error: {_flat(facts.get('error'))}")


def _worker_detail(event: OutboxEvent) -> str:
    facts = event.facts
    queue, unit = _flat(facts.get("queue")), _flat(facts.get("unit"))
    if event.kind == "worker_back":
        return (f"A worker takes LLM requests from the queue {queue} again; none had since "
                f"{_since(event)}. The incidents that waited are investigated now.")
    return (f"LLM requests wait in the queue {queue}, but no worker has taken one since "
            f"{_since(event)}: none serves the queue (none announces itself). Investigations "
            "are retried, and the incidents stay open with no diagnosis or fix until one does."
            "\n"
            f"Check the worker where it runs: systemctl status {unit} (`ai-sysadmin worker`), "
            "and its journal.")


def _checks_detail(event: OutboxEvent) -> str:
    facts = event.facts
    host = _flat(event.host)
    if event.kind == "check_back":
        return (f"The checks of {host} work again; they had failed since {_since(event)}. "
                "What they find is noticed again.")
    # the error is an exception's text: a host's own text may be in it
    return (f"Every check of {host} has failed since {_since(event)}, so nothing on it is "
            "noticed. This is ai-sysadmin's own failure, not the host's: what was found "
            "before stays as it was; nothing is opened or resolved until a check works again."
            "\n"
            f"Last error: {_flat(facts.get('error'))}\n"
            "The daemon's log has the traceback (the command below), as does the journal of "
            f"{_flat(facts.get('unit'))}.")


def _detail(event: OutboxEvent) -> str:
    facts = event.facts
    detail = _flat(facts.get("detail"), DETAIL_LIMIT)
    action = facts.get("action") or {}
    if event.kind == "approval":
        proposed = f"Proposed: {_action_text(facts)} (risk {action.get('risk', '?')}). {detail}"
        rationale = _flat(action.get("rationale"), RATIONALE_LIMIT)
        # the model's words, untrusted as a host's: one line, bounded, masked
        return proposed + (f"\nThe model's reason (its words): {rationale}" if rationale else "")
    if event.kind == "withdrawn":
        return (f"Approval {action.get('id')} is withdrawn: {_action_text(facts)} will not "
                f"run ({detail}).")
    if event.kind == "fixed":
        return f"Ran {_action_text(facts)}; verified: {detail}"
    if event.kind == "resolved":
        return f"It cleared: {detail}." if detail else "It cleared."
    if event.kind == "failed":
        return f"{_action_text(facts)} failed: {detail}. A person must look."
    if event.kind in ("llm_down", "llm_back"):
        return _llm_detail(event)
    if event.kind in ("worker_down", "worker_back"):
        return _worker_detail(event)
    if event.kind in ("check_failing", "check_back"):
        return _checks_detail(event)
    return detail


def render(event: OutboxEvent, ai_name: str, repeats: int = 0, minutes: float = 0) -> Message:
    """One event as one message. ``repeats``: how many more times it happened meanwhile."""
    facts = event.facts
    title = f"[{ai_name}] {event.host}: {_headline(event)}"
    if repeats:
        title += f" ({repeats} more time{'s' if repeats > 1 else ''} in {minutes:g} min)"
    lines = []
    if facts.get("incident") is not None:
        lines.append(f"Incident #{facts['incident']} ({facts.get('severity')}): "
                     f"{_summary(facts)}")
    lines += [f"> {_flat(line)}" for line in (facts.get("evidence") or [])[:2]]
    detail = _detail(event).strip()
    if detail:
        lines.append(detail)
    lines.append(f"Next: {next_command(event, ai_name)}")
    return finish(title, lines, priority_of(event))


#: what a digest's title counts each kind of its lines as (kinds not here: notices)
_COUNTED_AS = {"opened": "incidents", "worse": "incidents", "unreachable": "unreachable",
               "back": "reachable again", "resolved": "resolved",
               "check_failing": "checks failing",
               "check_back": "checks working again"}


def _host_order(host: str) -> tuple[object, ...]:
    """web9 before web10: the numbers in a name compared as numbers."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", host) if part)


def render_digest(events: Sequence[OutboxEvent], ai_name: str) -> Message:
    """Many openings at once (a fleet-wide problem, a network coming back, the checks of
    many hosts failing) as one message: the worst news first, in its lines and in the hosts
    its title names (one host down among five back was named last, behind the "...")."""
    events = sorted(events, key=lambda e: (-priority_of(e), _host_order(e.host)))
    hosts = list(dict.fromkeys(e.host for e in events))
    counted: dict[str, int] = {}
    for event in events:
        what = _COUNTED_AS.get(event.kind, "notices")
        counted[what] = counted.get(what, 0) + 1
    title = (f"[{ai_name}] {', '.join(f'{n} {what}' for what, n in counted.items())} on "
             f"{len(hosts)} host{'s' if len(hosts) > 1 else ''}: {', '.join(hosts[:5])}"
             f"{', ...' if len(hosts) > 5 else ''}")
    tail = f"Next: {ai_name}-issues list"
    # the tail's room is kept first: twelve lines of long unit names (systemd allows 255
    # characters) filled the body, and the cut took "... and N more" and the command to run
    room = BODY_LIMIT - len(tail) - len(f"\n... and {len(events)} more\n")
    lines: list[str] = []
    for event in events[:DIGEST_LINES]:
        # measured as masked, as finish sends it
        line = redact(f"{event.host}: {_headline(event)} ({next_command(event, ai_name)})")
        if len(line) + 1 > room:
            break
        room -= len(line) + 1
        lines.append(line)
    if len(events) > len(lines):
        lines.append(f"... and {len(events) - len(lines)} more")
    lines.append(tail)
    return finish(title, lines, max(priority_of(e) for e in events))


def finish(title: str, lines: list[str], priority: int) -> Message:
    """The message as sent: masked and bounded. The last line, the command to run, is never
    cut: what is too long loses the end of what comes before it."""
    # evidence and details were masked when stored; masking again costs little
    *text, last = lines
    last = _clip(redact(last), BODY_LIMIT)
    body = _clip(redact("\n".join(text)), BODY_LIMIT - len(last) - 1)
    return Message(_clip(redact(title), TITLE_LIMIT), f"{body}\n{last}" if text else last,
                   priority)
