"""What ``ask``, ``chat`` and ``approve discuss`` run: the agent, the queue and the backends,
imported only when a conversation starts (they cost most of a command's start)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import secrets
import stat
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from ..agent.context import ToolContext
from ..agent.investigate import chat_opening
from ..agent.loop import BUDGET_SPENT, Agent, AgentEvent, AgentOutcome, cut_at_line, fenced
from ..agent.tools import REGISTRY
from ..config import Settings, mask_url
from ..errors import AiSysadminError, ConfigError
from ..llm.backends import probe
from ..llm.queue import open_queue
from ..llm.queue.base import QueueError, QueueTimeout
from ..llm.readiness import ready_or_not
from ..llm.types import (
    BackendStatus,
    LLMBadResponse,
    LLMError,
    LLMToolsUnsupported,
    Message,
    Priority,
)
from ..llm.urls import masked_url
from ..monitor.findings import masked, strip_control
from ..orchestrator.runtime import Runtime
from ..orchestrator.session import llm_session
from ..redact import redact
from ..store import Action
from .context import AppState, err, esc, out, print_json
from .identity import switched
from .main import stop_came
from .workers_word import print_workers, workers_word


def _opening(runtime: Runtime, tools: ToolContext) -> Message:
    # this host's facts: a local read, no connection to close
    facts = asyncio.run(runtime.load_facts(runtime.local.host))
    return chat_opening(tools.settings, facts, managed=sorted(tools.transports))


def _run_turn(runtime: Runtime, ctx: ToolContext, messages: list[Message],
              quiet: bool, opening: int = 0) -> AgentOutcome:
    """One turn; Ctrl-C during it cancels it (a KeyboardInterrupt to the caller). Its
    request is already out of the queue then: the interrupted turn withdrew it on its way
    out. ``opening``: the first messages, which say what the conversation is about, kept
    however long it grows."""
    return asyncio.run(_turn(runtime, ctx, messages, quiet, opening))


def _show(event: AgentEvent) -> None:
    # the model names the tool and writes its arguments (which may carry what it read): an
    # escape in them is not the terminal's to obey, a secret not the terminal's to show
    name, detail = masked(event.name), masked(event.detail)
    if event.kind == "tool_call":
        err.print(f"  → {name} {detail}", style="dim")
    elif event.kind == "tool_result" and detail != "ok":
        err.print(f"    {name}: {detail}", style="dim")


async def _turn(runtime: Runtime, ctx: ToolContext, messages: list[Message],
                quiet: bool, opening: int) -> AgentOutcome:
    settings = runtime.settings
    try:
        # a chat stays open while hosts are removed and added: the tools reach them as the
        # store has them now, never a removed one, nor a re-added one at its old address
        ctx.hosts_are(await runtime.hosts_now())
        async with llm_session(settings, Priority.INTERACTIVE) as llm:
            llm.on_queued = None if quiet else _queued_note()
            agent = Agent(llm, REGISTRY, ctx, settings.agent, on_event=None if quiet else _show)
            return await agent.run(messages, opening)
    finally:
        # SSH connections belong to this turn's event loop
        await runtime.close()


def _queued_note() -> Callable[[int, int], None] | None:
    """What says, once a question, that it waits for the LLM behind others' requests (the
    daemon's investigations), where a person watches the terminal: it waited in silence up
    to queue.wait_timeout (300 s), and nothing said that Ctrl-C lets it go."""
    if sys.stderr is None or not sys.stderr.isatty():
        return None
    said = False

    def tell(ahead: int, answering: int) -> None:
        nonlocal said
        if said:
            return
        said = True
        more = f", and {ahead} more are queued ahead of it" if ahead else ""
        err.print(f"note: the question waits for the LLM, which is answering {answering} "
                  f"other request(s){more}; Ctrl-C withdraws it", markup=False,
                  highlight=False, soft_wrap=True)

    return tell


def _debug(settings: Settings) -> None:
    """The backend as ``llm status`` says it, then the queue (which may fail: the caller
    says so)."""
    run_llm_status(settings, as_json=False)
    queue = open_queue(settings)
    try:
        stats, workers = queue.stats(), queue.live_workers()
    finally:
        queue.close()
    out.print(f"queue: {stats.depth} pending, {stats.in_flight} in flight, {workers} worker(s)")


def _history_file(settings: Settings) -> Path | None:
    """Each person's own (``$XDG_STATE_HOME``, else ``~/.local/state``), never the state
    directory: the daemon's user owns that, and a chat run with sudo would read what it
    planted there and write through a link it made. None where there is no such place: a
    chat root runs on the daemon's state runs as the daemon's account (``as_state_owner``),
    whose home is that shared state directory and to which root's home is closed; and a
    user with no home (HOME unset and no account, a container's uid)."""
    if switched():
        return None
    base = Path(os.environ.get("XDG_STATE_HOME") or "")
    if not base.is_absolute():  # unset, or relative, which the XDG spec says to ignore
        try:
            base = Path.home() / ".local" / "state"
        except RuntimeError:  # no HOME and no account to read one from
            return None
        if not base.is_absolute():  # HOME="": the directory the chat was started in
            return None
    return base / "ai-sysadmin" / f"{settings.ai_name}-chat-history"


def _own_file(path: Path) -> bool:
    """``path`` is absent, or a plain file of this user's: a history is read and written
    only there (readline follows links)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()


def action_conversation(runtime: Runtime, action: Action, message: str | None) -> None:
    """``approve discuss``: a conversation about one action and its incident, looking at the
    action's host unless told otherwise."""
    tools = runtime.tool_context(action.host, action.incident_id)
    tools.advisory = True
    # what the model proposed (a refused proposal keeps its raw parameters) and the policy's
    # reason (it may quote a host's stderr) are data, not the operator's words
    recorded = redact(f"parameters: {json.dumps(action.params)}\n"
                      f"the policy decided: {action.reason}")
    gone = ""
    if action.host not in tools.transports:
        # removed since: every tool call about it said "unknown host ''", nobody said why
        gone = f"host {action.host} is no longer managed here: no tool reaches it"
        err.print(f"note: {masked(gone)}", markup=False, highlight=False, soft_wrap=True)
        gone = f" Note: {gone}."
    about = (f"We are discussing action {action.id}: {action.kind} on host {action.host}.{gone} "
             f"The policy gave it risk {action.risk}; its state is {action.state}. What it "
             f"recorded follows.\n{fenced(recorded, f'action-data-{secrets.token_hex(4)}')}")
    if action.incident_id:
        about += (f" It was proposed for incident #{action.incident_id}; call "
                  "incident_evidence to see it.")
    # kept however long the discussion grows: without it, "so should I approve it?" was
    # answered about no action in particular
    messages = [_opening(runtime, tools), Message("user", about),
                Message("assistant", "Understood. What would you like to know about it?")]
    news = _ActionNews(runtime, action)
    if message is not None:
        try:
            outcome = _run_turn(runtime, tools, [*messages, _asked(message, runtime.settings)],
                                quiet=False, opening=len(messages))
        except LLMError as exc:  # the server and where to look, as `ask` says them
            raise AiSysadminError(_llm_failure(runtime.settings, exc)) from None
        answered = _answer(outcome, runtime.settings)
        if (changed := news.since()) is not None:  # while the model answered
            about = "; the answer above is about it as it was" if answered else ""
            err.print(f"note: meanwhile {changed}{about}", markup=False, highlight=False,
                      soft_wrap=True)
        if not answered:
            raise typer.Exit(2)
        return
    _repl(runtime, tools, messages, f"discussing action {action.id}", news=news)


class _ActionNews:
    """What became of the action discussed since the model was last told of it: an
    ``approve`` or ``reject`` from another terminal, the daemon's expiry, a run that ended.
    The model answers on the action as it is (it would urge the person to approve a fix
    that ran already), and the person is told too.

    The model counts as told only once a turn that carried the news is in the conversation
    (:meth:`heard`): a turn that failed (the server's error, a Ctrl-C) left its question out,
    and with it the news, which the next question carries again."""

    def __init__(self, runtime: Runtime, action: Action) -> None:
        self.runtime = runtime
        self.action_id = action.id
        #: what the conversation's opening says of the action: a /clear goes back to it
        self.opened = self._stage(action)
        #: the action as the model was last told of it, and as the person was
        self.told = self.shown = self.opened
        #: the action as the question under way tells the model of it
        self._sending = self.opened

    @staticmethod
    def _stage(action: Action) -> tuple[Any, ...]:
        return (action.state, action.decided_by, action.decided_at, action.finished_at)

    def _changed(self) -> tuple[tuple[Any, ...], str] | None:
        """The action's stage now and its state in words, where it changed since the model
        was told; else None. Masked as ``approve show`` masks it: who decided it and when are
        people's names and times, but a reject's reason is what they typed (a password, an
        escape pasted with it), and both the person and the model are told it."""
        from ..executor.executor import decided_by
        from ..store import ActionStore

        if self.runtime.store is None:
            return None
        now = ActionStore(self.runtime.store.db).get(self.action_id)
        if self._stage(now) == self.told:
            return None
        said = masked(decided_by(now) or "")
        return self._stage(now), f"action {now.id} is {now.state}" + (f": {said}" if said else "")

    def since(self) -> str | None:
        """The action's state now, in words, where it changed since last told; else None.
        Said to the person after a turn that the model answered as it was."""
        if (changed := self._changed()) is None:
            return None
        self.told = self.shown = changed[0]
        return changed[1]

    def for_turn(self) -> str | None:
        """Said to the person before the answer (once), and to the model with the question
        (until a turn carried it: :meth:`heard`)."""
        changed = self._changed()
        if changed is None:
            self._sending = self.told
            return None
        self._sending, said = changed
        if self._sending != self.shown:
            self.shown = self._sending
            out.print(f"note: since the last answer {said}", markup=False, highlight=False,
                      soft_wrap=True)
        return (f"[Since your last answer, {said}. Answer about it as it is now; this "
                "conversation approves and runs nothing.]")

    def heard(self) -> None:
        """The question of :meth:`for_turn` is in the conversation: the model read what it
        told."""
        self.told = self._sending

    def cleared(self) -> None:
        """The conversation is back to its opening (``/clear``), which tells the action as it
        was then."""
        self.told = self._sending = self.opened


def _asked(words: str, settings: Settings) -> Message:
    """A person's question as the conversation holds it: masked, as what the model reads of
    the host is. The model needs no password to diagnose, and the conversation is stored
    with each request in the queue (kept for days) and shown again by /history.

    A question longer than half of ``agent.max_context_chars`` (a pasted log) is cut there,
    the person and the model told so: the question being answered is never dropped to fit
    the context, and whole it left the outputs of the model's tools no room."""
    text = redact(words)
    most = settings.agent.max_context_chars // 2
    if len(text) <= most:
        return Message("user", text)
    kept = cut_at_line(text, most)  # at a line's end: a secret cut in two is not masked
    err.print(f"note: the question is {len(text)} characters, more than half of "
              f"agent.max_context_chars ({settings.agent.max_context_chars}): the model "
              f"reads its first {len(kept)}", markup=False, highlight=False, soft_wrap=True)
    return Message("user", f"{kept}\n[the question was cut here, to {len(kept)} of its "
                           f"{len(text)} characters, to fit the context]")


def _history(settings: Settings) -> Callable[[], None]:
    """Line editing and a persistent history, where the platform has readline; what keeps
    the lines typed, when the chat ends."""
    try:
        import readline
    except ImportError:  # pragma: no cover - every Linux Python has it
        return lambda: None
    history = _history_file(settings)
    readline.set_history_length(HISTORY_LINES)  # the file's, when written: not the session's
    if history is None:
        if sys.stdin.isatty():  # a person who finds no earlier lines is told why
            err.print("note: no line history is kept: " + (
                "this chat runs as the state directory's owner, whose home every operator "
                "shares" if switched() else "this user has no home directory"),
                markup=False, highlight=False, soft_wrap=True)
        return lambda: None
    with contextlib.suppress(OSError):
        history.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _own_file(history):
            readline.read_history_file(history)
            if _masked(readline, 0):  # a password an older version kept in clear
                readline.write_history_file(history)
    start = readline.get_current_history_length()
    return lambda: _save_history(readline, history, start)


def _warn_if_down(settings: Settings) -> None:
    """Say at the start, not after the first question, that the LLM cannot answer: the one
    the queue's workers serve, by their word, where they say; else this machine's."""
    word = ready_or_not(workers_word(settings)[0])
    if word is not None:
        if not word.ready:
            err.print(strip_control(
                f"the {word.what} that the queue's workers serve is not ready: "
                f"{masked(word.detail) or 'no answer'}. Questions fail until it is; "
                "`ai-sysadmin llm status` checks it."), markup=False, highlight=False)
        return
    st = asyncio.run(probe(settings.llm))
    if st.reachable and st.model_present:
        return
    why = masked(st.detail) or ("model " + st.model + " missing" if st.reachable
                                       else "no answer")
    err.print(f"the LLM at {st.url} is not ready: {why}. Questions fail until it is; "
              "`ai-sysadmin llm status` checks it.", markup=False, highlight=False)


def _repl(runtime: Runtime, tools: ToolContext, opening: list[Message], title: str,
          news: _ActionNews | None = None) -> None:
    """``news``: what the model must hear before the next question (what became of the
    action discussed), said with it in one message: chat templates that want the roles to
    alternate refuse two questions in a row."""
    if sys.stderr is None:
        # started with descriptor 2 closed (`chat 2>&-`): the prompt is written there
        # (input() failed, "lost sys.stderr", and the chat ended with exit 1, silently), and
        # so are the errors and notes; said where it can be, as a closed stdout is
        out.print("error: standard error is closed: the conversation's prompts, errors and "
                  "notes are written there; give it one (2>/dev/null to discard them)",
                  markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    keep_history = _history(runtime.settings)
    try:
        _talk(runtime, tools, opening, title, news)
    finally:
        # however it ended: /exit, Ctrl-D, a script's Ctrl-C, or a stop, which ends the
        # process by its signal, past what atexit runs
        keep_history()


def _talk(runtime: Runtime, tools: ToolContext, opening: list[Message], title: str,
          news: _ActionNews | None) -> None:
    """The conversation itself: questions and /commands, until /exit or the input's end."""
    settings = runtime.settings
    messages = list(opening)
    out.print(f"[bold]{esc(settings.ai_name)}[/bold] · {esc(title)} (autonomy "
              f"{settings.autonomy_level}); /exit to leave, /debug for the backend and queue",
              markup=True)
    _warn_if_down(settings)
    # questions piped in (a script): one that got no answer makes the exit code 2
    piped, unanswered = not sys.stdin.isatty(), 0
    # a prompt no one types at would begin the answer's line ("hal> the answer")
    prompt = "" if piped else f"{settings.ai_name}> "
    _keep_bytes()
    while True:
        line = _read_line(prompt, piped)
        if not line:
            continue
        if (byte := _not_utf8(line)) is not None:
            # sent, it failed as the request was written, and was blamed on the LLM
            err.print(f"error: that line is not UTF-8 (byte {byte:#04x}): not asked; "
                      "the conversation goes on", markup=False, highlight=False)
            unanswered += 1
            continue
        if line in ("/exit", "/quit"):
            if piped and unanswered:
                raise typer.Exit(2)
            return
        if _a_command(line):
            messages = _slash(line, settings, messages, opening, piped, tools)
            if news is not None and len(messages) == len(opening):
                news.cleared()
            continue
        messages, answered = _question(runtime, tools, messages, len(opening), line, piped,
                                       news)
        unanswered += answered is False


def _question(runtime: Runtime, tools: ToolContext, messages: list[Message], opening: int,
              line: str, piped: bool, news: _ActionNews | None
              ) -> tuple[list[Message], bool | None]:
    """One question of the chat: the conversation it leaves, and whether it was answered
    (None: withdrawn with Ctrl-C, which is no failure)."""
    settings = runtime.settings
    told = news.for_turn() if news is not None else None
    # a turn left out of the conversation takes what it proposed with it
    before = tools.mark()
    try:
        outcome = _run_turn(runtime, tools, [*messages, _asked(
            line if told is None else f"{told}\n\n{line}", settings)], quiet=False,
            opening=opening)
    except KeyboardInterrupt:
        tools.back_to(before)
        if _ends_chat(piped):
            raise
        # a question taking long (a slow model, the daemon's step ahead of it) is let go;
        # what was said before it stays
        err.print("interrupted: that question was withdrawn; the conversation goes on",
                  markup=False, highlight=False)
        return messages, None
    except LLMError as exc:
        tools.back_to(before)
        err.print(f"error: {_llm_failure(settings, exc)}", markup=False, highlight=False)
        return messages, False
    except AiSysadminError as exc:  # a host or the store failed: the conversation goes on
        tools.back_to(before)
        err.print(f"error: {masked(str(exc))}", markup=False, highlight=False)
        return messages, False
    if news is not None:  # the question, and the news it carried, is in the conversation
        news.heard()
    return outcome.messages, _answer(outcome, settings)


def _ends_chat(piped: bool) -> bool:
    """Whether the KeyboardInterrupt being handled ends the chat: a script's run is over
    (questions piped in), and a stop (``kill``, the terminal closed) ends a chat as it ends
    every command. Else it is a person's Ctrl-C at the terminal: it lets go of what they
    waited on, and the conversation goes on."""
    return piped or stop_came() is not None


def _keep_bytes() -> None:
    """Read lines that are not UTF-8 as they came, their bytes kept as lone surrogates (as
    Python hands over such an argument), for :func:`_not_utf8` to refuse: under a strict
    locale the read itself failed, and the chat with it."""
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(errors="surrogateescape")


def _not_utf8(line: str) -> int | None:
    """The first byte of ``line`` that is not UTF-8 (read by :func:`_keep_bytes`); None
    when it is all UTF-8."""
    # surrogateescape reads each byte it cannot decode as U+DC80..U+DCFF, and only those
    return next((ord(c) - 0xDC00 for c in line if 0xDC80 <= ord(c) <= 0xDCFF), None)


def _read_line(prompt: str, piped: bool) -> str:
    """The next line typed (``/exit`` at the end of the input); "" for none, where Ctrl-C
    at a terminal gives a new prompt, as a shell does, not the conversation's end."""
    try:
        return input(prompt).strip()
    except EOFError:
        if not piped:
            with contextlib.suppress(OSError):  # the end of a terminal that hung up
                out.print()  # the prompt's line ends
        return "/exit"
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):  # a terminal that hung up takes no more
            out.print()  # the prompt's line ends
        if _ends_chat(piped):
            raise  # `main` says "interrupted" or "stopped by ..."
        err.print("(/exit or Ctrl-D leaves)", style="dim")
        return ""


#: the chat's /commands
COMMANDS = ("/exit", "/quit", "/clear", "/history", "/debug")
#: what a /command looks like, known or not: one word, no path
_COMMAND_LIKE = re.compile(r"/[A-Za-z][\w-]*")


def _a_command(line: str) -> bool:
    """Whether ``line`` is a /command (one of :data:`COMMANDS`, or a mistyped one: a word
    alone), not a question that starts with a path ("/var/log is 95% full, what can I
    delete?"), which was refused as an unknown command."""
    first = line.split(maxsplit=1)[0]
    return first in COMMANDS or (first == line and bool(_COMMAND_LIKE.fullmatch(line)))


def _slash(line: str, settings: Settings, messages: list[Message],
           opening: list[Message], piped: bool, tools: ToolContext) -> list[Message]:
    """A chat /command; returns the conversation it leaves."""
    if line == "/clear":
        tools.cleared()
        out.print("conversation cleared")
        return list(opening)
    if line == "/history":
        asked = [m.content for m in messages[len(opening):] if m.role == "user"]
        for number, text in enumerate(asked, 1):
            # a password pasted into a question is the person's to send, not to see again
            out.print(f"{number:>3}  {masked(text)}", markup=False)
        if not asked:
            out.print("nothing asked yet in this conversation")
    elif line == "/debug":
        try:
            _debug(settings)
        except AiSysadminError as exc:  # as for a question: said, and the conversation goes on
            why = _llm_failure(settings, exc) if isinstance(exc, LLMError) else masked(str(exc))
            err.print(f"error: {why}", markup=False, highlight=False)
        except KeyboardInterrupt:
            if _ends_chat(piped):
                raise
            # a server slow to answer (loading a model) is let go of, as a question is
            err.print("interrupted", markup=False, highlight=False)
    elif (word := line.split(maxsplit=1)[0]) in COMMANDS:
        out.print(f"{word} takes nothing after it", markup=False, highlight=False)
    else:
        out.print(f"unknown command {word}; commands: {' '.join(COMMANDS)}", markup=False,
                  highlight=False)
    return messages


#: how a backend's error names its server ("Ollama at http://...")
_NAMES_A_SERVER = re.compile(r"\bat https?://")


def _llm_failure(settings: Settings, exc: LLMError) -> str:
    """One line: which server (its password or token masked), what went wrong, how to look
    closer."""
    # what the server answered may be quoted in it (a proxy quotes the key it was sent)
    said, shown = masked(str(exc)), mask_url(settings.llm.url)
    if isinstance(exc, QueueError):  # the queue failed, not the LLM
        return f"{said} (`ai-sysadmin queue` shows it)"
    if isinstance(exc, QueueTimeout):  # the queue's word on its wait, with where to look
        return said
    if isinstance(exc, LLMToolsUnsupported):
        # it says what to change; `llm status` finds the server up and the model there
        return said
    if shown in said or _NAMES_A_SERVER.search(said):
        # a worker's own server (another machine's llm.url) is the one it names
        return f"{said} (`ai-sysadmin llm status` checks it)"
    if isinstance(exc, LLMBadResponse):
        # the server answered, with no answer (a tool call written as text): `llm status`
        # checks that it answers and has the model, which it does
        return f"the LLM at {shown}: {said}"
    return f"no answer from the LLM at {shown}: {said} (`ai-sysadmin llm status` checks it)"


#: the most lines the chat's history file keeps
HISTORY_LINES = 1000


def _masked(readline: Any, start: int) -> bool:
    """Mask the history's lines from ``start`` (0-based) on; whether one held a secret."""
    changed = False
    for index in range(start, readline.get_current_history_length()):
        line = readline.get_history_item(index + 1)  # 1-based, where replacing is 0-based
        if line is not None and (shown := redact(line)) != line:
            readline.replace_history_item(index, shown)
            changed = True
    return changed


def _save_history(readline: Any, path: Path, start: int = 0) -> None:
    """The lines typed since the history's ``start`` line, masked (a password pasted into a
    question is not kept on disk), added to the end of the file, which keeps its last
    :data:`HISTORY_LINES`. Added, not written whole: of two chats at once, the last to end
    wrote the other's lines over."""
    _masked(readline, start)
    added = readline.get_current_history_length() - start
    if added <= 0:
        return
    with contextlib.suppress(OSError):
        if _own_file(path):
            # readline appends only to a file that is there; never through a link
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
                             0o600))
            readline.append_history_file(added, path)  # cut to set_history_length's lines
            path.chmod(0o600)


def run_ask(app_state: AppState, question: str, as_json: bool) -> None:
    settings = app_state.settings
    runtime = app_state.runtime()
    tools = runtime.tool_context()
    messages = [_opening(runtime, tools), _asked(question, settings)]
    try:
        outcome = _run_turn(runtime, tools, messages, quiet=as_json)
    except LLMError as exc:
        if not as_json:
            raise AiSysadminError(_llm_failure(settings, exc)) from None
        print_json({"name": settings.ai_name, "error": _llm_failure(settings, exc),
                    "llm_url": mask_url(settings.llm.url)})
        raise typer.Exit(2) from None
    unanswered = _unanswered(outcome, settings)
    if as_json:
        calls = [{"tool": c.name, "arguments": c.arguments}
                 for m in outcome.messages for c in m.tool_calls]
        print_json({"name": settings.ai_name, "answer": outcome.answer,
                    "stop_reason": outcome.stop_reason, "tool_calls": calls,
                    "proposals": outcome.proposals,
                    **({"error": unanswered} if unanswered else {})})
    elif unanswered is None:
        _print_answer(outcome)
    else:
        err.print(f"error: {unanswered}", markup=False, highlight=False, soft_wrap=True)
    if unanswered:
        raise typer.Exit(2)


def _answer(outcome: AgentOutcome, settings: Settings) -> bool:
    """Print the model's answer, or the error line of a turn that has none; whether it had."""
    if (why := _unanswered(outcome, settings)) is not None:
        err.print(f"error: {why}", markup=False, highlight=False, soft_wrap=True)
        return False
    _print_answer(outcome)
    return True


def _print_answer(outcome: AgentOutcome) -> None:
    # the model's words (which may quote a host's, or a secret it was told): masked as --json
    # masks them; a window title or a cleared screen in them is not the terminal's to obey.
    # The answer comes whole (no backend streams), so a secret is never split across two
    # prints. Plain text on a terminal too, as a pipe gets it: rendered as Markdown, what
    # looked like HTML went ("Invalid user <admin>" showed as "Invalid user "), a link
    # showed its words and hid where it led, a link definition or a backslash vanished
    out.print(masked(outcome.answer).rstrip(), soft_wrap=True)
    if outcome.stop_reason == "cut":
        err.print("(the answer stops at the model's token limit: llm.max_tokens)",
                  markup=False, highlight=False)
    elif outcome.stop_reason == "long":
        err.print("(the answer was longer than agent.max_context_chars: cut there)",
                  markup=False, highlight=False)


def _unanswered(outcome: AgentOutcome, settings: Settings) -> str | None:
    """Why a turn that ran out of tool calls has no answer; None for an answer. What the
    model wrote beside its last calls ("Let me check the disk usage first.") is no answer:
    shown as one, it read as the whole of what the model found."""
    if outcome.stop_reason != "budget":
        return None
    # this question's tool results, each's first line "tool NAME status=STATUS ..."
    # (agent/loop.py); a call past the budget is refused for that alone, which is said
    asked = max(n for n, m in enumerate(outcome.messages) if m.role == "user")
    heads = [m.content.split("\n", 2) for m in outcome.messages[asked + 1:] if m.role == "tool"]
    failed = [h for h in heads if h[0].partition(" status=")[2].split(" ")[0] != "ok"
              and h[1:2] != [BUDGET_SPENT]]
    first = f", the first: {' '.join(failed[0][:2])[:200]}" if failed else ""
    how = (f"; {len(failed)} of its calls failed{first}" if failed
           else "; a larger one lets it look further")
    return masked("the model gave no answer: it ran out of tool calls (agent.max_tool_calls "
                  f"= {settings.agent.max_tool_calls}){how}")


def run_chat(app_state: AppState) -> None:
    runtime = app_state.runtime()
    tools = runtime.tool_context()
    _repl(runtime, tools, [_opening(runtime, tools)], "chat")


def run_llm_status(settings: Settings, as_json: bool) -> int:
    """Print the backend's status, and what the queue's workers say of the LLM they serve;
    the exit code: 0 ready, 1 not. Where workers say, their word decides: they answer the
    questions and investigations. A queue that cannot be read answers nothing, whatever the
    server says: every question and investigation goes through it (it said ready, exit 0,
    while `ask` failed)."""
    workers, unread = workers_word(settings)
    word = ready_or_not(workers)
    try:
        st = asyncio.run(probe(settings.llm))
    except ConfigError as exc:
        if word is None:
            raise  # this machine's settings are all there is to go by: a config error
        # the workers answer with theirs: this machine's key is only its own view
        st = BackendStatus(settings.llm.backend, masked_url(settings.llm.url.rstrip("/")),
                           settings.llm.model, False, False, f"not asked: {exc}")
    here = st.reachable and st.model_present
    ready = unread is None and (bool(word.ready) if word is not None else here)
    if as_json:
        print_json({"backend": st.backend, "url": st.url, "model": st.model,
                    "reachable": st.reachable, "model_present": st.model_present,
                    "detail": st.detail, "models": list(st.models), "answers": ready,
                    "workers": [{"name": name, **asdict(served)}
                                for name, served in sorted(workers.items())],
                    "queue_error": unread})
    else:
        verdict = "[green]ready[/green]" if here else "[red]not ready[/red]"
        # where the workers' word decides, this line is only this machine's view
        mine = " (this machine's llm settings)" if word is not None else ""
        out.print(f"{esc(settings.ai_name)} · LLM {esc(st.backend)} at {esc(st.url)}{mine}: "
                  f"{verdict}", markup=True)
        # a server that did not answer said nothing of the model
        model = ("present" if st.model_present else "missing") if st.reachable else "unknown"
        out.print(f"reachable: {st.reachable} · model {st.model}: {model}")
        # the server's words (an error may quote the key it was sent) and its models' names
        if st.detail:
            out.print(masked(st.detail), markup=False)
        if st.models:
            out.print(strip_control("models: " + ", ".join(st.models[:20])), markup=False)
        print_workers(workers, unread)
        if unread is not None:
            out.print("questions and investigations: [red]not answered now[/red]: the queue "
                      "they go through cannot be reached", markup=True)
        elif word is not None:  # their word decides, whatever this machine's server says
            out.print("questions and investigations: " + (
                "[green]answered[/green], by a worker whose LLM is ready" if ready else
                "[red]not answered now[/red]: no worker's LLM is ready"), markup=True)
    return 0 if ready else 1
