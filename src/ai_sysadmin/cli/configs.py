"""``ai-sysadmin configs`` / ``{name}-configs QUERY``: semantic search of the configuration
repository (``config_repo``), as ``path:line`` snippets; ``--sync`` fetches it and indexes what
changed first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import AiSysadminError
from .context import banner, err, esc, out, print_json, state

if TYPE_CHECKING:
    from ..config import Settings
    from ..knowledge.context import KnowledgeRecall

#: lines of a chunk shown under its path:line
SNIPPET_LINES = 6
#: characters of a snippet's line shown (a minified JSON is kept 2,400 characters a line: a
#: screenful of wrapped text for one line); --json gives all of it
SNIPPET_CHARS = 200


def configs(
    ctx: typer.Context,
    query: Annotated[str | None, typer.Argument(
        metavar="QUERY", help="What to look for, in words (e.g. 'nginx virtual hosts').",
        show_default=False)] = None,
    sync: Annotated[bool, typer.Option(
        "--sync", help="Fetch config_repo now and index what changed, then search (if a "
        "QUERY is given).")] = False,
    limit: Annotated[int, typer.Option(
        "-n", "--limit", metavar="N", min=1, max=100, help="Results at most.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Search the configuration repository by meaning; `--sync` fetches and re-indexes it."""
    from ..knowledge.config_repo import ConfigRepo
    from ..knowledge.context import KnowledgeRecall

    settings = state(ctx).settings
    if not settings.config_repo:
        raise AiSysadminError("no config_repo is configured: set config_repo (and "
                              "config_branch) in the config file")
    # an unusable one (config_branch "-x") is the error, not "none is configured" after a
    # warning, nor a search of the index of the branch configured before
    ConfigRepo(settings)
    if not sync and not query:
        raise typer.BadParameter("give a QUERY, or --sync to fetch and index the repository",
                                 param_hint="QUERY")
    if query and not settings.knowledge.enabled:
        raise AiSysadminError("the knowledge base is off (knowledge.enabled = false), so "
                              "config_repo is not indexed and cannot be searched; "
                              "`configs --sync` still fetches it for investigations")
    recall = KnowledgeRecall(settings)
    result: dict[str, Any] = {}
    if sync:
        result["sync"] = _sync(recall, settings, quiet=as_json, to_err=bool(query))
    elif recall.repo is not None and not recall.repo.fetched:
        raise AiSysadminError("config_repo has not been fetched yet: run `configs --sync` "
                              "(the daemon also fetches it when it investigates)")
    if query:
        # a person asked: the nearest places, however far (knowledge.max_distance is for
        # what the model is shown unasked)
        hits = recall.search_configs(query, limit, max_distance=2.0)
        if note := recall.kb.unreadable_note():
            err.print(f"warning: {note}", markup=False, highlight=False, soft_wrap=True)
        found = [{"path": h.item.path, "start_line": h.item.start_line,
                  "end_line": h.item.end_line, "commit": h.item.commit,
                  "distance": round(h.distance, 4), "text": h.item.text} for h in hits]
        result["results"] = found
        if not as_json:
            _show(settings, query, found)
    if as_json:
        print_json(result if sync else result["results"])


def _sync(recall: KnowledgeRecall, settings: Settings, quiet: bool, to_err: bool) -> dict[str, Any]:
    """``--sync``: fetch config_repo and index what changed; what it did, said on stdout
    (on stderr where a search follows, whose results are the output) unless ``quiet``."""
    from ..knowledge.config_repo import MAX_FILE_BYTES, ConfigRepoError
    from ..monitor.findings import strip_control

    say = err if to_err else out
    try:
        report = recall.sync_configs(on_wait=lambda said: err.print(
            said, markup=False, highlight=False, soft_wrap=True))
    except ConfigRepoError as exc:
        if not exc.detail or exc.advised:  # the message says it all
            raise
        raise AiSysadminError(f"{exc} (check config_repo and that this host reaches it; "
                              "`git ls-remote` of it shows all git says)") from exc
    if not quiet:
        if report.previous is not None:
            say.print(
                f"config_repo or config_branch changed: dropped the index of "
                f"{report.previous} ({len(report.removed)} file(s))", markup=False)
        if report.earlier_version:
            say.print("the index was made by an earlier version (its chunks named no "
                      "repository): indexed again whole", markup=False)
        failed = f", {len(report.failed)} failed" if report.failed else ""
        failed += (f", {len(report.too_large)} too large to index"
                   if report.too_large else "")
        failed += f", {len(report.not_text)} not UTF-8 text" if report.not_text else ""
        done = (f"{len(report.indexed)} indexed again ({report.chunks} chunks){failed}, "
                f"{len(report.removed)} removed, in {report.seconds:.1f} s"
                if recall.enabled else "fetched; not indexed: the knowledge base is off")
        left_out = (f" ({len(report.excluded)} left out by config_repo_exclude)"
                    if report.excluded and recall.enabled else "")
        say.print(
            f"{settings.config_branch} at {report.commit[:10]}: {report.files} file(s)"
            f"{left_out}, {done}", markup=False)
        # a path is text whoever commits to the repository wrote: no escape reaches the
        # terminal (one clearing the screen, or setting its title)
        for path, why in report.failed.items():
            err.print(f"not indexed: {strip_control(path)}: {why} (tried again at the next "
                      "sync)", markup=False, highlight=False)
        for path in report.too_large:
            err.print(f"not indexed: {strip_control(path)}: over {MAX_FILE_BYTES // 1024} KiB, "
                      "data rather than a config (not read)", markup=False, highlight=False)
        for path in report.not_text:
            err.print(f"not indexed: {strip_control(path)}: not UTF-8 text (a binary file, or "
                      "another encoding such as Latin-1 or UTF-16)", markup=False,
                      highlight=False)
    return report.to_dict()


def _show(settings: Any, query: str, found: list[dict[str, Any]]) -> None:
    from ..knowledge.config_repo import file_lines
    from ..monitor.findings import readable, strip_control
    from ..redact import redact_file

    banner(settings, f"{len(found)} place(s) in config_repo for {query!r}")
    for item in found:
        path = strip_control(item["path"])
        out.print(f"[bold]{esc(path)}:{item['start_line']}[/bold]"
                  f"-{item['end_line']} ({esc(item['commit'][:10])}, distance "
                  f"{item['distance']:.2f})", markup=True)
        # masked again as it is shown (as --json is): a chunk is indexed again only when its
        # file changes, so one an older version masked less keeps a secret in clear; each
        # line kept on its line, numbered as the file's lines (a form feed ends none); the
        # empty lines a masked private key leaves are not shown, so what follows it is
        text = redact_file(readable(item["text"]), item["path"], keep_lines=True)
        lines = [(number, line) for number, line in
                 enumerate(file_lines(text), item["start_line"]) if line.strip()]
        for number, line in lines[:SNIPPET_LINES]:
            if len(line) > SNIPPET_CHARS:
                line = f"{line[:SNIPPET_CHARS]} ... ({len(line) - SNIPPET_CHARS} more characters)"
            out.print(f"  {number:>5}  {line}", markup=False, highlight=False)
        if len(lines) > SNIPPET_LINES:
            out.print(f"         ... {len(lines) - SNIPPET_LINES} more line(s)", markup=False)
