"""``posture train``: the train flow, then a metrics table and where the model is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from posture_cli.console import console, load_settings, print_json, user_errors
from posture_cli.stages import show_stages


@user_errors
def train(
    dataset: Annotated[
        Optional[str], typer.Option("--dataset", "-d", help="Dataset name under the data dir (default: sample).")
    ] = None,
    test_dataset: Annotated[
        Optional[str], typer.Option("--test-dataset", help="A held-out dataset to score the fitted model on.")
    ] = None,
    window: Annotated[Optional[float], typer.Option("--window", help="Window length in seconds (default 2).")] = None,
    hop: Annotated[Optional[float], typer.Option("--hop", help="Hop between windows in seconds (default 1).")] = None,
    channels: Annotated[str, typer.Option("--channels", help="auto, all (accelerometer+gyroscope) or acc.")] = "auto",
    trees: Annotated[Optional[int], typer.Option("--trees", help="Trees in the Random Forest (default 100).")] = None,
    cv: Annotated[
        Optional[str],
        typer.Option(
            "--cv",
            help="Cross-validation by subject: loso, group-kfold:N, or auto (LOSO up to 30 subjects, else group-kfold:10).",
        ),
    ] = None,
    feature_set: Annotated[
        Optional[str],
        typer.Option(
            "--feature-set",
            help="Feature-set version (default imu-stats-4; imu-stats-1 to imu-stats-3 reproduce older models).",
        ),
    ] = None,
    rotated_copies: Annotated[
        Optional[int],
        typer.Option(
            "--rotated-copies",
            min=0,
            help="Training copies of each recording with the phone turned up to 15 degrees (default 2; 0 = none).",
        ),
    ] = None,
    no_register: Annotated[
        bool, typer.Option("--no-register", help="Evaluate only; log and register nothing.")
    ] = False,
    data_dir: Annotated[
        Optional[Path], typer.Option("--data-dir", help="Where datasets are (POSTURE_DATA_DIR).")
    ] = None,
    tracking_uri: Annotated[
        Optional[str], typer.Option("--tracking-uri", help="MLflow tracking URI (MLFLOW_TRACKING_URI).")
    ] = None,
    model_name: Annotated[
        Optional[str], typer.Option("--model-name", help="Registered model name (default posture).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train a Random Forest, evaluate it by subject, log it to MLflow and register a version.

    The new version becomes 'champion' only when its cross-validated macro-F1 beats the
    current champion's; otherwise it is 'challenger'.
    """
    from pipelines.orchestration import run_flow, start_prefect_api

    start_prefect_api()  # overlaps the API's start with the imports and work below
    import sklearn.ensemble  # noqa: F401

    import mlflow  # noqa: F401  (the flow needs both; importing them now overlaps the API's start)
    from features.feature_sets import DEFAULT_FEATURE_SET, FEATURE_SETS
    from pipelines.evaluate import CvScheme
    from pipelines.train import train_flow
    from pipelines.train_request import TrainRequest

    if channels not in ("auto", "all", "acc"):
        raise typer.BadParameter("--channels must be auto, all or acc")
    if feature_set is not None and feature_set not in FEATURE_SETS:
        raise typer.BadParameter(f"--feature-set must be one of {', '.join(FEATURE_SETS)}")
    settings = load_settings(
        data_dir=data_dir,
        window_s=window,
        hop_s=hop,
        trees=trees,
        cv=cv,
        mlflow_tracking_uri=tracking_uri,
        model_name=model_name,
    )
    request = TrainRequest(
        dataset_dir=str(settings.dataset_dir(dataset or settings.default_dataset)),
        test_dataset_dir=str(settings.dataset_dir(test_dataset)) if test_dataset else None,
        window_s=settings.window_s,
        hop_s=settings.hop_s,
        channels=channels,
        trees=settings.trees,
        cv=CvScheme.parse(settings.cv).text,
        feature_set=feature_set or DEFAULT_FEATURE_SET,
        **({} if rotated_copies is None else {"rotated_copies": rotated_copies}),
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
    print_subjects(cv)
    console.print(
        f"cross-validated accuracy [bold]{cv['accuracy']:.3f}[/], macro-F1 [bold]{cv['macro_f1']:.3f}[/]"
        + _smoothed(cv)
    )
    if result.get("test"):
        test = result["test"]
        print_subjects(test)
        console.print(
            f"{test['scheme']}: accuracy [bold]{test['accuracy']:.3f}[/], macro-F1 [bold]{test['macro_f1']:.3f}[/]"
            + _smoothed(test)
        )
    if "version" in result:
        console.print(
            f"registered [bold]{result['model_name']}[/] version [bold]{result['version']}[/] "
            f"as [bold]{result['alias']}[/]: {result['model_uri']} in {result['tracking_uri']}"
        )


def _smoothed(evaluation: dict[str, Any]) -> str:
    smoothed = evaluation.get("smoothed") or {}
    return f"; smoothed (forward filter) [bold]{smoothed['accuracy']:.3f}[/]" if smoothed else ""


def print_subjects(evaluation: dict[str, Any], shown: int = 10) -> None:
    """Per-subject window accuracy, worst first: who the model fails is the first thing to fix."""
    from rich.table import Table

    rows = evaluation.get("per_subject") or []
    if len(rows) < 2:
        return
    console.print(f"accuracy per subject, worst first ({min(shown, len(rows))} of {len(rows)}):")
    table = Table()
    for column in ("subject", "windows", "accuracy"):
        table.add_column(column, justify="left" if column == "subject" else "right")
    for row in rows[:shown]:
        table.add_row(row["subject"], str(row["windows"]), f"{row['accuracy']:.3f}")
    console.print(table)
