"""The ``posture`` entry point. Heavy libraries are imported inside commands, not here."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # Typer's own (vendored) Click

from posture_cli.console import error_console
from posture_cli.db_cmd import db_app
from posture_cli.drift_cmd import drift_app
from posture_cli.ingest_cmd import ingest
from posture_cli.keys_cmd import keys_app
from posture_cli.models_cmd import models_app
from posture_cli.predict_cmd import predict
from posture_cli.retrain_cmd import retrain, schedule
from posture_cli.serve_cmd import serve
from posture_cli.stream_cmd import stream
from posture_cli.train_cmd import train

app = typer.Typer(
    name="posture",
    help="Posture/activity classification from IMU data: ingest, train, predict, serve, stream.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command()(ingest)
app.command()(train)
app.command()(predict)
app.command()(retrain)
app.command()(schedule)
app.command()(serve)
app.command()(stream)
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
app.add_typer(drift_app, name="drift")
app.add_typer(keys_app, name="keys")


def main() -> None:
    """``posture``: a usage error (an unknown option, a bad value) is one red line naming the
    fix, like every user error, instead of a boxed usage text; the rest as Typer renders it."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError:
        app()  # the help, rendered and exited as usual
    except UsageError as err:
        command = err.ctx.command_path if err.ctx else "posture"
        problem = escape(err.format_message().rstrip("."))
        message = f"[bold red]error:[/] {problem}. Fix: see `{command} --help`."
        error_console.print(message, highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except typer.TyperException as err:  # the other Click errors (e.g. a file option it cannot open)
        error_console.print(f"[bold red]error:[/] {escape(err.format_message())}", highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except typer.Abort:  # end of input at a prompt
        error_console.print("[yellow]aborted[/]")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
