"""``ai-sysadmin knowledge`` / ``{name}-knowledge``: what the assistant knows and has learned.

list, search, show, add, remove, export and import (JSON lines). The knowledge base (and
chromadb with it) is opened only when one of these runs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from .context import banner, err, out, print_json, state

if TYPE_CHECKING:
    from ..knowledge.models import Hit, KnowledgeEntry
    from ..knowledge.store import ImportResult, KnowledgeBase

app = typer.Typer(help="Knowledge: list, search, show, add, remove, export, import."
                  " Alone, or with only `list`'s options, it lists them.")

Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ProvenanceOpt = Annotated[str | None, typer.Option(
    "--provenance", metavar="seed|operator|learned", help="Only entries of this origin.")]
CategoryOpt = Annotated[str | None, typer.Option(
    "--category", metavar="CATEGORY", help="Only this category (systemd, nixos, disk, ...).")]
EntryId = Annotated[str, typer.Argument(metavar="ID", help="The entry's id (see `list`).",
                                        show_default=False)]


def _open(ctx: typer.Context, vectors: bool = True, seed: bool | None = None
          ) -> KnowledgeBase:
    from ..knowledge.store import KnowledgeBase

    kb = KnowledgeBase.open(state(ctx).settings, vectors=vectors, seed=seed)
    if note := kb.outdated_note():
        err.print(f"warning: {note}", markup=False, highlight=False, soft_wrap=True)
    return kb


def _reading(ctx: typer.Context) -> KnowledgeBase:
    """The knowledge base for a command that reads entries by id or metadata, never by
    meaning: it works where the vector index is damaged (ChromaDB loads no index for that),
    and says so, since a search, `add` and the daemon's recall are refused until mended."""
    kb = _open(ctx, vectors=False)
    if kb.damaged:
        err.print(f"warning: {kb.damaged}", markup=False, highlight=False, soft_wrap=True)
    return kb


def _left_out(kb: KnowledgeBase) -> None:
    """Records this version cannot read were left out of the answer: say so, once."""
    if note := kb.unreadable_note():
        err.print(f"warning: {note}", markup=False)


def _lessons_waiting(ctx: typer.Context) -> None:
    """Fixes whose lessons the knowledge base did not take yet (the daemon tries again):
    said, so that a person looking for a lesson knows it is not lost."""
    settings = state(ctx).settings
    if not settings.db_path.is_file():  # no state yet: nothing ran, and none is made here
        return
    from ..redact import redact_cut
    from ..store.actions import ActionStore

    waiting, why = ActionStore(state(ctx).store.db).lessons_waiting()
    if waiting:
        # masked again as it is shown: a row an older version stored holds the error in clear
        last = redact_cut(why.splitlines()[0], 300) if why else ""
        err.print(f"note: {waiting} lesson(s) of fixes that ran wait to be learned; the daemon "
                  "tries again at each housekeeping"
                  + (f" (the last try: {last})" if last else ""),
                  markup=False, soft_wrap=True)


def _provenance(value: str | None) -> Any:
    from ..knowledge.models import PROVENANCES

    if value is not None and value not in PROVENANCES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(PROVENANCES)}",
                                 param_hint="--provenance")
    return value


def _when(ts: float) -> str:
    if not ts:
        return "shipped"
    try:
        return time.strftime("%Y-%m-%d", time.localtime(ts))
    except (OverflowError, OSError, ValueError):  # no date (the models refuse one now)
        return "?"


def _as_json(entry: KnowledgeEntry) -> dict[str, Any]:
    return entry.model_dump(mode="json")


def _table(entries: list[KnowledgeEntry], hits: list[Hit[Any]] | None = None) -> Table:
    from ..monitor.findings import masked

    table = Table()
    columns = ["id", "provenance", "category", "topic", "confidence", "added"]
    if hits is not None:
        columns.insert(0, "score")
    for column in columns:
        table.add_column(column, overflow="fold")
    for i, e in enumerate(entries):
        origin = e.provenance + (" (verified)" if e.verified else "")
        # a topic or category is the model's words or a person's, maybe from an import file
        # (masked as --json masks it, no terminal escapes)
        row = [e.id, origin, masked(e.category), masked(e.topic), f"{e.confidence:.2f}",
               _when(e.created_at)]
        if hits is not None:
            row.insert(0, f"{hits[i].score:.2f}")
        table.add_row(*row)
    return table


@app.callback(invoke_without_command=True)
def _default(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_entries, ctx=ctx)


@app.command("list")
def list_entries(
    ctx: typer.Context,
    provenance: ProvenanceOpt = None,
    category: CategoryOpt = None,
    limit: Annotated[int | None, typer.Option("-n", "--limit", metavar="N", min=1,
                                              help="At most N entries, newest first.")] = None,
    as_json: Json = False,
) -> None:
    """Knowledge entries, newest first."""
    kb = _reading(ctx)
    entries = kb.list(provenance=_provenance(provenance), category=category, limit=limit)
    _left_out(kb)
    _lessons_waiting(ctx)
    if as_json:
        print_json([_as_json(e) for e in entries])
        return
    banner(state(ctx).settings, f"{len(entries)} knowledge entr"
           + ("y" if len(entries) == 1 else "ies"))
    if entries:
        out.print(_table(entries))


@app.command("search")
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(metavar="QUERY", help="What to look for, in words.",
                                         show_default=False)],
    n: Annotated[int | None, typer.Option("-n", metavar="N", min=1, max=100,
                                          help="At most N results (default knowledge.top_k)."
                                          )] = None,
    provenance: ProvenanceOpt = None,
    category: CategoryOpt = None,
    as_json: Json = False,
) -> None:
    """Entries nearest in meaning to QUERY, best first."""
    if not query.strip():
        raise typer.BadParameter("is empty", param_hint="QUERY")
    kb = _open(ctx)
    hits = kb.search(query, n, provenance=_provenance(provenance), category=category)
    _left_out(kb)
    if as_json:
        print_json([{**_as_json(h.item), "distance": round(h.distance, 4),
                     "score": round(h.score, 4)} for h in hits])
        return
    banner(state(ctx).settings, f"{len(hits)} result(s) for {query!r}")
    if hits:
        out.print(_table([h.item for h in hits], hits))


@app.command("show")
def show(ctx: typer.Context, entry_id: EntryId, as_json: Json = False) -> None:
    """One entry in full."""
    entry = _reading(ctx).get(entry_id)
    if as_json:
        print_json(_as_json(entry))
        return
    from ..monitor.findings import masked

    # a lesson is the model's words, an incident record the host's: masked as --json masks
    out.print(entry.id, style="bold")
    out.print(masked(entry.topic), markup=False)
    origin = entry.provenance + (" (verified)" if entry.verified else "")
    out.print(f"category {masked(entry.category)} · {origin} · confidence {entry.confidence:.2f} · "
              f"added {_when(entry.created_at)}"
              + (f" · from {masked(entry.source)}" if entry.source else ""), markup=False)
    if entry.tags:
        out.print("tags: " + masked(", ".join(entry.tags)), markup=False)
    out.print()
    out.print(masked(entry.text), markup=False)


@app.command("add")
def add(
    ctx: typer.Context,
    topic: Annotated[str, typer.Option(metavar="TEXT", help="One line: what it is about.",
                                       show_default=False)],
    text: Annotated[str, typer.Option(metavar="TEXT", help="The knowledge itself.",
                                      show_default=False)],
    category: Annotated[str, typer.Option(metavar="CATEGORY",
                                          help="systemd, journald, disk, nixos, service, ...")
                        ] = "general",
    tags: Annotated[list[str] | None, typer.Option("--tag", metavar="TAG",
                                                   help="A tag; repeat for more.")] = None,
    confidence: Annotated[float, typer.Option(metavar="0..1", min=0, max=1,
                                              help="How sure you are.")] = 0.9,
    as_json: Json = False,
) -> None:
    """Add what you know (provenance: operator)."""
    from pydantic import ValidationError

    from ..config import validation_message
    from ..knowledge.models import KnowledgeEntry, new_id

    try:
        entry = KnowledgeEntry(id=new_id("op"), topic=topic, text=text, category=category,
                               tags=tags or [], confidence=confidence, provenance="operator",
                               source="operator")
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise typer.BadParameter(validation_message(problem),
                                 param_hint=f"--{problem['loc'][0]}") from None
    _open(ctx).add(entry)
    if as_json:
        print_json(_as_json(entry))
    else:
        from ..monitor.findings import masked

        # the topic as list and show give it: a secret typed into it is not echoed back
        out.print(f"added {entry.id}: {masked(entry.topic)}", markup=False)


@app.command("remove")
def remove(ctx: typer.Context, entry_id: EntryId, as_json: Json = False) -> None:
    """Delete one entry; a learned one with the incident records of the fixes it was learned
    from (a verified one guides fixes too). An incident record's id (`export` lists them)
    deletes that record."""
    from ..errors import KnowledgeError, NotFoundError
    from ..knowledge.learning import RECORD_ID

    kb = _open(ctx)
    if RECORD_ID.match(entry_id):
        try:
            kb.get(entry_id)
        except NotFoundError:  # no entry of that name: the record is meant
            _remove_record(kb, entry_id, as_json)
            return
        except KnowledgeError:  # an entry of that name, unreadable: removed below
            pass
    entry = kb.remove(entry_id)
    records = kb.remove_records_of(entry_id)
    if as_json:
        print_json({"removed": _as_json(entry) if entry else {"id": entry_id,
                                                              "readable": False},
                    "incident_records": records})
        return
    if entry is None:
        out.print(f"removed {entry_id} (a record this version could not read)", markup=False)
    else:
        from ..monitor.findings import masked

        out.print(f"removed {entry.id}: {masked(entry.topic)}", markup=False)
    if records:
        out.print(f"and the incident record(s) of the fixes it was learned from, which "
                  f"guide fixes too: {', '.join(records)}", markup=False, soft_wrap=True)


def _remove_record(kb: KnowledgeBase, record_id: str, as_json: bool) -> None:
    record = kb.remove_incident(record_id)
    if as_json:
        print_json({"removed_incident_record": record.model_dump(mode="json") if record
                    else {"id": record_id, "readable": False}})
    elif record is None:
        out.print(f"removed incident record {record_id} (one this version could not read)",
                  markup=False)
    else:
        from ..monitor.findings import masked

        # an imported record's rule and host are anyone's words
        out.print(f"removed incident record {record_id}: {masked(record.rule)} on "
                  f"{masked(record.host)}, fix {record.outcome}", markup=False)


@app.command("export")
def export(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(
        metavar="FILE", help="Write here (default: standard output).", dir_okay=False,
        show_default=False)] = None,
    as_json: Json = False,
) -> None:
    """Every entry and incident record as JSON lines, after a first line that says the
    file is an export. Records this version cannot read are left out, named, and the
    command fails after writing every other one."""
    from ..errors import KnowledgeError
    from ..files import is_stdout, write_text

    # an export reads entries and records only: it still works where the vector index is
    # damaged, and is how that store's entries reach a new one; a routine backup says the
    # damage too, or nobody hears of it until a search is refused
    kb = _reading(ctx)
    lines = list(kb.export())
    # a backup that silently lacks records is worse than one that says so and exits non-zero
    incomplete = kb.unreadable_note()
    if file is None or str(file) == "-" or is_stdout(file):
        for line in lines:
            sys.stdout.write(line + "\n")
        if incomplete:
            raise KnowledgeError(f"export incomplete: {incomplete}")
        return
    try:
        write_text(file, "".join(line + "\n" for line in lines))
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {file}: {exc.strerror or exc}",
                                 param_hint="FILE") from None
    entries = sum(1 for line in lines if line.startswith('{"type": "entry"'))
    incidents = sum(1 for line in lines if line.startswith('{"type": "incident"'))
    if incomplete:
        raise KnowledgeError(f"exported {entries} entries and {incidents} incident "
                             f"records to {file}, but incomplete: {incomplete}")
    summary = {"file": str(file), "entries": entries, "incidents": incidents}
    if as_json:
        print_json(summary)
    else:
        out.print(f"exported {entries} entries and {incidents} incident records "
                  f"to {file}", markup=False)


def _json_lines(text: str) -> list[str]:
    """One JSON text a line, split at line feeds alone: str.splitlines also splits at U+2028,
    U+0085 and \x1c-\x1e, which a JSON string may hold as they are (a note pasted from a web
    page), so a valid file was refused and the line numbers of its mistakes drifted. A byte
    order mark before the first line (an editor's UTF-8 file) is no part of it."""
    return text.removeprefix("\ufeff").split("\n")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(
        metavar="FILE", help="Read this (default: standard input).", dir_okay=False,
        show_default=False)] = None,
    trust_operator_notes: Annotated[bool, typer.Option(
        "--trust-operator-notes",
        help="Let the file's operator notes guide fixes, as a note added here does, and "
             "take the file as it is: only for a file you wrote or exported yourself. "
             "Without it notes are background (a note the file marks 'imported, not "
             "trusted' stays background either way), this store's lessons are not "
             "replaced, a failed fix's record is rebuilt from its facts, and no date may be "
             "in the future.")] = False,
    as_json: Json = False,
) -> None:
    """Add entries and incident records from JSON lines (as `export` writes them); an entry
    with an existing id replaces it, except this store's lessons (learned fixes and the
    records of fixes that ran) unless --trust-operator-notes. One bad line: nothing is
    imported. An operator note from the file is background, never a guide to a fix, unless
    --trust-operator-notes. Into a new store, an export keeps the shipped notes it holds, and
    only those (none, where it holds none); another file (notes of your own) comes with them
    all where it holds none of them (knowledge.seed). Other writers (`knowledge add`, the
    daemon's lessons) wait for the import, knowledge.timeout at most."""
    if file is None or str(file) == "-":
        if sys.stdin.isatty():
            err.print("reading JSON lines from the terminal; end with Ctrl-D")
        lines = _json_lines(sys.stdin.read())
    else:
        try:
            lines = _json_lines(file.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(
                f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}",
                param_hint="FILE") from None
    from ..knowledge.store import KnowledgeBase

    settings = state(ctx).settings
    # seeded at its opening, a new store would get back the seed entries the file's store
    # had lost: the import seeds it, or not, by what the file holds; no other process's
    # write may fall between its batches (:meth:`KnowledgeBase.opened_alone`)
    with KnowledgeBase.opened_alone(settings, seed=False) as kb:
        if note := kb.outdated_note():
            err.print(f"warning: {note}", markup=False, highlight=False, soft_wrap=True)
        result = kb.import_(lines, trust_operator_notes=trust_operator_notes,
                            seed=settings.knowledge.seed)
    _imported(result, as_json)


def _imported(result: ImportResult, as_json: bool) -> None:
    if as_json:
        print_json({"added": result.added, "replaced": result.replaced,
                    "untrusted": result.untrusted, "kept_untrusted": result.kept_untrusted,
                    "seeded": result.seeded, "merged": result.merged, "kept": result.kept})
        return
    out.print(f"imported {len(result.added)} new and {len(result.replaced)} replaced",
              markup=False)
    if result.seeded:
        out.print(f"and the {result.seeded} shipped notes, which a new store starts with "
                  "(knowledge.seed): the file held none of them", markup=False, soft_wrap=True)
    if result.merged:
        out.print(f"{len(result.merged)} lesson(s) an earlier release wrote once for each "
                  "pid of a fix merged into the newest lesson of the same fix "
                  f"({', '.join(sorted(set(result.merged)))})", markup=False, soft_wrap=True)
    if result.kept:
        out.print(f"{len(result.kept)} lesson(s) of this store kept as they are, not "
                  f"replaced by the file's ({', '.join(result.kept[:5])}"
                  f"{' ...' if len(result.kept) > 5 else ''}): an import without "
                  "--trust-operator-notes replaces no learned fix nor record of a fix that "
                  "ran", markup=False, soft_wrap=True)
    if result.untrusted:
        out.print(f"{len(result.untrusted)} operator note(s) kept as background, never a "
                  "guide to a fix: import again with --trust-operator-notes if the file's "
                  "notes are yours", markup=False, soft_wrap=True)
    if result.kept_untrusted:
        from ..knowledge.store import UNTRUSTED_TAG

        out.print(f"{len(result.kept_untrusted)} operator note(s) the file marks "
                  f"'{UNTRUSTED_TAG}' kept as background: they came into a store untrusted. "
                  "To vouch for one, remove that tag from its line and import it again.",
                  markup=False, soft_wrap=True)
