"""``posture models``: list, show and promote registered model versions."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from posture_cli.console import console, load_settings, print_json, user_errors

models_app = typer.Typer(help="Registered model versions: list, show, promote.", no_args_is_help=True)


@models_app.command("list")
@user_errors
def list_models(
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri", help="MLflow tracking URI.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Versions of the registered model, newest first, with aliases and metrics."""
    from rich.table import Table

    from pipelines.registry import connect, list_versions

    settings = load_settings(mlflow_tracking_uri=tracking_uri)
    rows = list_versions(connect(settings), settings.model_name)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print(f"no versions of {settings.model_name} yet: run `posture train`")
        return
    table = Table(title=f"{settings.model_name} in {settings.mlflow_tracking_uri}")
    for column in ("version", "aliases", "cv accuracy", "cv macro-F1", "created"):
        table.add_column(column)
    for row in rows:
        metrics = row["metrics"]
        table.add_row(
            row["version"],
            ", ".join(row["aliases"]),
            f"{metrics.get('cv_accuracy', float('nan')):.3f}",
            f"{metrics.get('cv_macro_f1', float('nan')):.3f}",
            row["created"][:19],
        )
    console.print(table)


@models_app.command("show")
@user_errors
def show_model(
    reference: Annotated[str, typer.Argument(help="A version number, an alias, or a model URI.")] = "champion",
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri", help="MLflow tracking URI.")] = None,
) -> None:
    """One version: its aliases, metrics and preprocessing spec."""
    from pipelines.registry import load_model, resolve_model_uri

    settings = load_settings(mlflow_tracking_uri=tracking_uri)
    model = load_model(resolve_model_uri(reference, settings), settings)
    print_json(
        {
            "uri": model.uri,
            "name": model.name,
            "version": model.version,
            "alias": model.alias,
            "spec": model.spec.to_dict(),
            "onnx": model.onnx_path is not None,
        }
    )


@models_app.command("promote")
@user_errors
def promote_model(
    version: Annotated[str, typer.Argument(help="The version to point the alias at.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias to set.")] = "champion",
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri", help="MLflow tracking URI.")] = None,
) -> None:
    """Point an alias (default champion) at a version; servers following it reload."""
    from pipelines.registry import connect, remember_served_alias, set_alias

    settings = load_settings(mlflow_tracking_uri=tracking_uri)
    set_alias(connect(settings), settings.model_name, alias, version)
    remember_served_alias(settings)
    console.print(f"{settings.model_name}@{alias} -> version {version}")
