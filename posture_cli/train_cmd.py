"""``posture train``: the train flow, then a metrics table and where the model is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from posture_cli.console import console, load_settings, print_json, user_errors
from posture_cli.stages import show_stages


@user_errors
def train(
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d", help="Dataset name under the data dir (default: sample).")] = None,
    test_dataset: Annotated[Optional[str], typer.Option("--test-dataset", help="A held-out dataset to score the fitted model on.")] = None,
    window: Annotated[Optional[float], typer.Option("--window", help="Window length in seconds (default 2).")] = None,
    hop: Annotated[Optional[float], typer.Option("--hop", help="Hop between windows in seconds (default 1).")] = None,
    channels: Annotated[str, typer.Option("--channels", help="auto, all (accelerometer+gyroscope) or acc.")] = "auto",
    trees: Annotated[Optional[int], typer.Option("--trees", help="Trees in the Random Forest (default 100).")] = None,
    folds: Annotated[Optional[int], typer.Option("--folds", help="Cross-validation folds, by subject (default 5).")] = None,
    no_register: Annotated[bool, typer.Option("--no-register", help="Evaluate only; log and register nothing.")] = False,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Where datasets are (POSTURE_DATA_DIR).")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri", help="MLflow tracking URI (MLFLOW_TRACKING_URI).")] = None,
    model_name: Annotated[Optional[str], typer.Option("--model-name", help="Registered model name (default posture).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train a Random Forest, evaluate it by subject, log it to MLflow and register a version.

    The new version becomes 'champion' only when its cross-validated macro-F1 beats the
    current champion's; otherwise it is 'challenger'.
    """
    from pipelines.orchestration import run_flow, start_prefect_api

    start_prefect_api()  # overlaps the API's start with the imports and work below
    import mlflow  # noqa: F401  (the flow needs both; importing them now overlaps the API's start)
    import sklearn.ensemble  # noqa: F401

    from pipelines.train import TrainRequest, train_flow

    if channels not in ("auto", "all", "acc"):
        raise typer.BadParameter("--channels must be auto, all or acc")
    settings = load_settings(
        data_dir=data_dir, window_s=window, hop_s=hop, trees=trees, cv_folds=folds,
        mlflow_tracking_uri=tracking_uri, model_name=model_name,
    )
    request = TrainRequest(
        dataset_dir=str(settings.dataset_dir(dataset or settings.default_dataset)),
        test_dataset_dir=str(settings.dataset_dir(test_dataset)) if test_dataset else None,
        window_s=settings.window_s,
        hop_s=settings.hop_s,
        channels=channels,
        trees=settings.trees,
        cv_folds=settings.cv_folds,
        random_state=settings.random_state,
        register_model=not no_register,
        experiment=settings.experiment,
        model_name=settings.model_name,
        tracking_uri=settings.mlflow_tracking_uri,
        artifacts_dir=str(settings.mlflow_artifacts_dir),
    )
    with show_stages("train", enabled=not as_json):
        result = run_flow(train_flow, request=request)
    if as_json:
        print_json(result)
    else:
        print_result(result)


def print_result(result: dict[str, Any]) -> None:
    from rich.table import Table

    cv = result["cv"]
    table = Table(title=f"{cv['scheme']}: {result['n_windows']} windows, {result['n_subjects']} subjects")
    table.add_column("true \\ predicted")
    for label in cv["classes"]:
        table.add_column(label, justify="right")
    table.add_column("recall", justify="right")
    for label, row in zip(cv["classes"], cv["confusion"]):
        table.add_row(label, *map(str, row), f"{cv['per_class_recall'][label]:.3f}")
    console.print(table)
    console.print(f"cross-validated accuracy [bold]{cv['accuracy']:.3f}[/], macro-F1 [bold]{cv['macro_f1']:.3f}[/]")
    if result.get("test"):
        test = result["test"]
        console.print(f"{test['scheme']}: accuracy [bold]{test['accuracy']:.3f}[/], macro-F1 [bold]{test['macro_f1']:.3f}[/]")
    if "version" in result:
        console.print(
            f"registered [bold]{result['model_name']}[/] version [bold]{result['version']}[/] "
            f"as [bold]{result['alias']}[/]: {result['model_uri']} in {result['tracking_uri']}"
        )
