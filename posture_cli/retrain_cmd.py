"""``posture retrain`` (the retrain flow once, now) and ``posture schedule`` (serve it on a schedule)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from posture_cli.console import console, error_console, print_json, user_errors
from posture_cli.stages import show_stages

IncomingOption = Annotated[
    Optional[Path], typer.Option("--incoming", help="Folder of new labelled recordings (default <data dir>/incoming).")
]
DatasetOption = Annotated[Optional[str], typer.Option("--dataset", "-d", help="Dataset to grow (default: sample).")]
MarginOption = Annotated[
    Optional[float],
    typer.Option("--margin", min=0.0, help="Macro-F1 the challenger must win by to become champion (0.005)."),
]
RunnerOption = Annotated[str, typer.Option("--runner", help="Feature extraction: local (in-process) or dask.")]
DaskOption = Annotated[
    Optional[str],
    typer.Option("--dask-address", help="Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a local cluster)."),
]


@user_errors
def retrain(
    incoming: IncomingOption = None,
    processed: Annotated[
        Optional[Path], typer.Option("--processed", help="Where used files go (default <data dir>/processed).")
    ] = None,
    dataset: DatasetOption = None,
    margin: MarginOption = None,
    window: Annotated[
        Optional[float], typer.Option("--window", help="Challenger's window in seconds (default 2).")
    ] = None,
    hop: Annotated[Optional[float], typer.Option("--hop", help="Challenger's hop in seconds (default 1).")] = None,
    channels: Annotated[str, typer.Option("--channels", help="Challenger's channels: auto, all or acc.")] = "auto",
    trees: Annotated[Optional[int], typer.Option("--trees", min=1, help="Challenger's trees (default 100).")] = None,
    folds: Annotated[
        Optional[int], typer.Option("--folds", min=2, help="Subject-wise folds shared by both models (5).")
    ] = None,
    runner: RunnerOption = "local",
    dask_address: DaskOption = None,
    data_dir: Annotated[
        Optional[Path], typer.Option("--data-dir", help="Where datasets are (POSTURE_DATA_DIR).")
    ] = None,
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri", help="MLflow tracking URI.")] = None,
    model_name: Annotated[
        Optional[str], typer.Option("--model-name", help="Registered model name (default posture).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Retrain now on the new labelled recordings in the incoming folder.

    The new data is appended to the dataset; a challenger is trained, compared with the champion
    on the same subject-wise folds, and becomes 'champion' only if its macro-F1 is higher by
    more than --margin (else 'challenger'). No new data: nothing happens.
    """
    from pipelines.orchestration import run_flow, start_prefect_api

    _check_runner(runner, dask_address)
    if channels not in ("auto", "all", "acc"):
        raise typer.BadParameter("--channels must be auto, all or acc")
    start_prefect_api()  # overlaps the API's start with the imports below
    import mlflow  # noqa: F401  (imported now, while the API starts)
    import sklearn.ensemble  # noqa: F401

    from pipelines.retrain import DEFAULT_MARGIN, RetrainRequest, retrain_flow

    request = RetrainRequest(
        dataset=dataset,
        incoming_dir=_path(incoming),
        processed_dir=_path(processed),
        margin=DEFAULT_MARGIN if margin is None else margin,
        window_s=window,
        hop_s=hop,
        channels=channels,
        trees=trees,
        cv_folds=folds,
        runner=runner,
        dask_address=dask_address,
        data_dir=_path(data_dir),
        tracking_uri=tracking_uri,
        model_name=model_name,
    )
    with show_stages("retrain", enabled=not as_json):
        result = run_flow(retrain_flow, request=request)
    if as_json:
        print_json(result)
    else:
        print_decision(result)


def _check_runner(runner: str, dask_address: str | None) -> None:
    if runner not in ("local", "dask"):
        raise typer.BadParameter("--runner must be local or dask")
    if dask_address and runner != "dask":
        raise typer.BadParameter("--dask-address needs --runner dask")


def _path(path: Path | None) -> str | None:
    return str(path.expanduser().resolve()) if path else None


def print_decision(result: dict[str, Any]) -> None:
    from rich.table import Table

    if result["status"] == "no new data":
        console.print(result["message"])
        return
    table = Table(title=f"{result['n_windows']} windows, {result['n_subjects']} subjects; {result['comparison']}")
    for column in ("model", "recipe", "macro-F1", "accuracy"):
        table.add_column(column)
    rows = [("challenger", result["challenger"])] + ([("champion", result["champion"])] if result["champion"] else [])
    for name, scores in rows:
        recipe = scores["recipe"]
        version = f" v{recipe['version']}" if "version" in recipe else ""
        described = f"{recipe['trees']} trees, {recipe['window_s']:g} s / {recipe['hop_s']:g} s, {recipe['channels']}"
        table.add_row(name + version, described, f"{scores['macro_f1']:.4f}", f"{scores['accuracy']:.4f}")
    console.print(table)
    console.print(f"[bold]{result['status']}[/]: {result['reason']}", highlight=False)
    console.print(
        f"registered {result['model_name']} version [bold]{result['version']}[/] as [bold]{result['alias']}[/]"
    )


@user_errors
def schedule(
    cron: Annotated[Optional[str], typer.Option("--cron", help='Cron schedule (default "0 3 * * *", nightly).')] = None,
    interval: Annotated[Optional[float], typer.Option("--interval", help="Every N seconds instead of cron.")] = None,
    tz: Annotated[str, typer.Option("--timezone", help="Time zone of the cron schedule (IANA name).")] = "UTC",
    incoming: IncomingOption = None,
    dataset: DatasetOption = None,
    margin: MarginOption = None,
    runner: RunnerOption = "local",
    dask_address: DaskOption = None,
) -> None:
    """Serve the retrain deployment from this process on a schedule, until Ctrl-C.

    Without PREFECT_API_URL a local Prefect server (with its scheduler) runs beside it and stops
    with it. One run at a time: a run due while another is running is cancelled.
    """
    from pipelines.scheduling import (
        make_schedule,
        next_runs,
        retrain_deployment,
        serve_forever,
        start_scheduler_api,
        wait_for_scheduler_api,
    )

    if cron and interval is not None:
        raise typer.BadParameter("pass --cron or --interval, not both")
    _check_runner(runner, dask_address)
    api = start_scheduler_api()  # first: Prefect reads its API URL when imported; it starts meanwhile
    plan = make_schedule(cron, interval, tz)
    parameters = {
        key: value
        for key, value in {
            "dataset": dataset,
            "incoming_dir": _path(incoming),
            "margin": margin,
            "runner": runner,
            "dask_address": dask_address,
        }.items()
        if value is not None
    }
    deployment = retrain_deployment(plan, {"request": parameters})
    wait_for_scheduler_api()
    every = f"every {interval:g} s" if interval is not None else f"cron {plan.cron!r} ({tz})"
    console.print(f"serving retrain/{deployment.name} {every}; Prefect API {api}", highlight=False)
    for when in next_runs(plan):
        console.print(f"next run: {when.isoformat()}", highlight=False)
    console.print("Ctrl-C to stop", style="dim")
    serve_forever(deployment)
    error_console.print("stopped; the schedule is paused until the next `posture schedule`", style="dim")
