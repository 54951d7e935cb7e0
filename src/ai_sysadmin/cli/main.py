"""The Typer app and the entry point that turns library errors into one line and exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .. import __version__
from ..errors import AiSysadminError
from . import admin, approve, check, converse, drill, issues, notify, queue_cmd, systems
from .context import AppState, err
from .dispatch import dispatch
from .setup import setup

app = typer.Typer(
    name="ai-sysadmin",
    help="A careful autonomous system administrator. Run `check` for a health check now.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Config file (env AI_SYSADMIN_CONFIG).", show_default=False
        ),
    ] = None,
) -> None:
    ctx.obj = AppState(config_path=config)


@app.command()
def version() -> None:
    """Print the version."""
    sys.stdout.write(f"ai-sysadmin {__version__}\n")


app.command("check")(check.check)
app.command("run")(admin.run)
app.command("logs")(admin.logs)
app.command("drill")(drill.drill)
app.command("ask")(converse.ask)
app.command("chat")(converse.chat)
app.command("worker")(queue_cmd.worker)
app.command("setup")(setup)
app.add_typer(queue_cmd.app, name="queue")
llm_app = typer.Typer(help="The LLM server.")
llm_app.command("status")(converse.llm_status)
app.add_typer(llm_app, name="llm")
app.add_typer(issues.app, name="issues")
app.add_typer(approve.app, name="approve")
app.add_typer(systems.app, name="systems")
app.add_typer(approve.policy_app, name="policy")
app.add_typer(admin.config_app, name="config")
app.add_typer(admin.commands_app, name="commands")
app.add_typer(notify.app, name="notify")


def main(argv: list[str] | None = None, argv0: str | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 findings, 2 error)."""
    prog, args = dispatch(argv0 or sys.argv[0], list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=args, prog_name=prog)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except AiSysadminError as exc:
        message = escape(str(exc))
        err.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
        return 2
    return 0


def entrypoint() -> None:
    sys.exit(main())
