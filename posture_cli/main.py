"""The ``posture`` entry point. Heavy libraries are imported inside commands, not here."""

from __future__ import annotations

import typer

from posture_cli.db_cmd import db_app
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
app.add_typer(keys_app, name="keys")


def main() -> None:
    app()
