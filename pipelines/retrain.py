"""The ``retrain`` Prefect flow: new labelled data -> grown dataset -> challenger vs champion.

1. Scan the incoming folder. Nothing there (and a champion exists): do nothing, say so.
2. Read and validate the new files with the ingest readers, strictly: one bad file, or a
   label the model line does not know, stops the run before anything is written.
3. Append them to the dataset (files stay in incoming; the manifest keeps their SHA-256).
4. Featurize the grown dataset for the challenger's recipe and the champion's (a subflow whose
   tasks a Dask task runner can spread), compare both on the same subject-wise folds
   (``pipelines.comparison``), fit the challenger on everything.
5. Record the decision (MLflow run + new version carrying its CV figures), then move the
   alias: ``champion`` only when the challenger wins by more than ``margin``, else
   ``challenger``. Last, file the incoming files under processed/.
Any failure before step 5's alias leaves the alias where it was and the files in incoming.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field, model_validator

from features.errors import DataError, PostureError
from features.feature_sets import DEFAULT_FEATURE_SET, IMU_STATS_1
from features.spec import WindowSpec
from pipelines.champion import Champion, champion_version, find_champion
from pipelines.comparison import Decision, assign_subject_folds, cross_validate, decide, folds_for
from pipelines.dataset import MANIFEST_FILE
from pipelines.evaluate import Evaluation, transitions_for
from pipelines.featurize import FeatureTable, featurize_flow, task_runner
from pipelines.incoming import (
    IncomingFiles,
    check_new_recordings,
    dataset_lock,
    grow_dataset,
    move_to_processed,
    scan_incoming,
    select_new,
)
from pipelines.progress import report
from pipelines.recording import Recording
from pipelines.retrain_logging import Challenger
from pipelines.settings import Settings
from pipelines.train import choose_channels, fit_forest, make_forest

log = logging.getLogger("posture.retrain")

DEFAULT_MARGIN = 0.005
# RetrainRequest field -> Settings field; None leaves the setting to POSTURE_* variables.
_SETTINGS_FIELDS = {
    "home": "home",
    "data_dir": "data_dir",
    "tracking_uri": "mlflow_tracking_uri",
    "artifacts_dir": "mlflow_artifacts_dir",
    "experiment": "experiment",
    "model_name": "model_name",
    "dataset": "default_dataset",
    "window_s": "window_s",
    "hop_s": "hop_s",
    "trees": "trees",
    "cv_folds": "cv_folds",
    "random_state": "random_state",
}


class RetrainRequest(BaseModel):
    """What one retrain may override. Every unset value comes from the settings (``POSTURE_*``)
    of the process that runs the flow, so a deployment needs no paths in its parameters."""

    dataset: str | None = None
    incoming_dir: str | None = None  # default <data_dir>/incoming
    processed_dir: str | None = None  # default <data_dir>/processed
    margin: float = Field(DEFAULT_MARGIN, ge=0.0, description="Macro-F1 the challenger must win by.")
    window_s: float | None = None
    hop_s: float | None = None
    channels: str = "auto"
    trees: int | None = Field(None, ge=1)
    cv_folds: int | None = Field(None, ge=2)
    random_state: int | None = None
    runner: Literal["local", "dask"] = Field("local", description="Task runner for feature extraction.")
    dask_address: str | None = Field(None, description="Dask scheduler for runner dask; none: a local cluster.")
    home: str | None = None
    data_dir: str | None = None
    tracking_uri: str | None = None
    artifacts_dir: str | None = None
    experiment: str | None = None
    model_name: str | None = None

    @model_validator(mode="after")
    def _address_needs_dask(self) -> "RetrainRequest":
        if self.dask_address and self.runner != "dask":
            raise ValueError("dask_address needs runner 'dask'")
        return self

    def settings(self) -> Settings:
        values = {target: getattr(self, name) for name, target in _SETTINGS_FIELDS.items()}
        return Settings(**{k: v for k, v in values.items() if v is not None})

    def folders(self, settings: Settings) -> tuple[Path, Path, Path]:
        """(dataset, incoming, processed) folders."""
        assert settings.data_dir is not None
        incoming = Path(self.incoming_dir) if self.incoming_dir else settings.data_dir / "incoming"
        processed = Path(self.processed_dir) if self.processed_dir else settings.data_dir / "processed"
        return settings.dataset_dir(settings.default_dataset), incoming.resolve(), processed.resolve()


@task(cache_policy=NO_CACHE)
def champion_task(settings: Settings) -> Champion | None:
    report("champion", settings.model_name)
    return find_champion(settings)


@task(cache_policy=NO_CACHE)
def scan_task(incoming: Path, manifest: dict[str, Any] | None) -> IncomingFiles:
    report("scan", str(incoming))
    return scan_incoming(incoming, manifest)


def read_manifest(dataset_dir: Path) -> dict[str, Any] | None:
    path = dataset_dir / MANIFEST_FILE
    return json.loads(path.read_text()) if path.is_file() else None


@task(cache_policy=NO_CACHE)
def read_incoming_task(folder: Path, rate_hz: float, max_gap_s: float) -> list[Recording]:
    """The incoming folder through the ingest readers and checks; unlike ingest, one bad file stops the run."""
    from pipelines.readers import ReadOptions, read_recordings, resample_recording

    report("read", str(folder))
    try:
        recordings = read_recordings(folder, ReadOptions(max_gap_s=max_gap_s))
        return [seg for rec in recordings for seg in resample_recording(rec, rate_hz, max_gap_s)]
    except PostureError as err:
        raise DataError(
            f"New data failed validation: {err.problem}",
            f"fix or remove that file in {folder}; nothing was added and no alias moved.",
        ) from err


def add_new_data(
    incoming: IncomingFiles, dataset_dir: Path, settings: Settings, champion: Champion | None
) -> dict[str, Any]:
    """Read the incoming folder strictly, check what is new, append it to the dataset."""
    old = read_manifest(dataset_dir)
    rate_hz = float(old["rate_hz"]) if old else settings.rate_hz
    recordings = read_incoming_task(incoming.folder, rate_hz, settings.max_gap_s)
    return grow_task(select_new(recordings, incoming), incoming, dataset_dir, rate_hz, old, champion)


@task(cache_policy=NO_CACHE)
def grow_task(
    new: list[Recording],
    incoming: IncomingFiles,
    dataset_dir: Path,
    rate_hz: float,
    old: dict[str, Any] | None,
    champion: Champion | None,
) -> dict[str, Any]:
    classes = list(champion.spec.classes) if champion else (old["labels"] if old else None)
    check_new_recordings(new, old["channels"] if old else None, classes)
    report("write", f"{len(new)} new recordings -> {dataset_dir}")
    return grow_dataset(dataset_dir, new, incoming, rate_hz)


def check_label_set(manifest: dict[str, Any], champion: Champion | None) -> list[str]:
    labels = sorted(map(str, manifest["labels"]))
    if champion and labels != sorted(champion.spec.classes):
        raise DataError(
            f"The dataset's labels ({', '.join(labels)}) differ from the champion's ({', '.join(champion.spec.classes)}).",
            "a changed label set is a new model: run `posture train` on it and promote it by hand.",
        )
    if len(labels) < 2:
        raise DataError(
            f"Training needs at least two labels; the dataset has {labels}.", "add recordings of other labels."
        )
    return labels


def _spec(
    manifest: dict[str, Any],
    window_s: float,
    hop_s: float,
    channels: tuple[str, ...],
    classes: list[str],
    feature_set: str = DEFAULT_FEATURE_SET,
) -> WindowSpec:
    return WindowSpec(
        rate_hz=float(manifest["rate_hz"]),
        window_s=window_s,
        hop_s=hop_s,
        channels=channels,
        feature_set_version=feature_set,
        classes=tuple(classes),
    )


@task(cache_policy=NO_CACHE)
def compare_task(
    tables: dict[str, FeatureTable], settings: Settings, champion: Champion | None, classes: list[str]
) -> tuple[tuple[Evaluation, np.ndarray], Evaluation | None, str]:
    """Out-of-fold predictions of both recipes on shared subject folds; the champion's
    recipe learns only from recordings the champion was trained on."""
    challenger = tables["challenger"]
    report("compare", "challenger and champion on the same subject folds")
    assignment = assign_subject_folds(np.concatenate([t.groups for t in tables.values()]), settings.cv_folds)
    scheme = f"GroupKFold({len(set(assignment.values()))}) by subject, the same folds for both models"
    ours = cross_validate(
        challenger,
        folds_for(challenger.groups, assignment),
        lambda: make_forest(settings.trees, settings.random_state),
        classes,
        scheme,
    )
    if champion is None:
        return ours, None, "no champion"
    theirs_table = tables["champion"]
    known = champion.recordings or frozenset()
    mask = np.isin(theirs_table.recordings.astype(str), list(known))
    basis = "champion recipe refit on the data it was trained on"
    if not mask.any():
        mask, basis = None, "champion recipe refit on all data (its training data is unknown)"
    folds = folds_for(theirs_table.groups, assignment, mask)
    theirs = cross_validate(
        theirs_table, folds, lambda: make_forest(champion.trees, champion.random_state), classes, scheme
    )
    return ours, theirs[0], basis


@task(cache_policy=NO_CACHE)
def fit_task(table: FeatureTable, trees: int, random_state: int) -> Any:
    report("fit", f"{trees} trees on {len(table.labels)} windows")
    return fit_forest(table.features, table.labels, trees, random_state)


@task(cache_policy=NO_CACHE)
def publish_task(
    settings: Settings,
    challenger: Challenger,
    champion: Champion | None,
    champion_cv: Evaluation | None,
    decision: Decision,
    context: dict[str, Any],
) -> dict[str, Any]:
    """Record the decision in MLflow, and only then move the alias."""
    from pipelines.registry import connect, remember_served_alias
    from pipelines.retrain_logging import log_retrain_run

    report("register", decision.outcome)
    logged = log_retrain_run(settings, challenger, champion, champion_cv, decision, context)
    connect(settings).set_registered_model_alias(settings.model_name, decision.alias, logged["version"])
    remember_served_alias(settings)
    return logged


@task(cache_policy=NO_CACHE)
def file_away_task(incoming: IncomingFiles, processed: Path, manifest: dict[str, Any]) -> list[str]:
    """Move the files into processed/; after the alias moved, a failure here is only reported."""
    report("file", str(processed))
    try:
        return move_to_processed(incoming, processed, manifest.get("ingested_files", {}))
    except OSError as err:
        log.warning("could not move the incoming files to %s: %s; the next retrain files them", processed, err)
        return []


def _no_new_data(incoming: Path, version: str, settings: Settings) -> dict[str, Any]:
    message = f"no new data in {incoming}; champion {settings.model_name} v{version} unchanged"
    log.info(message)
    return {"status": "no new data", "message": message, "incoming": str(incoming), "champion_version": version}


def _recipes(
    request: RetrainRequest, settings: Settings, manifest: dict[str, Any], champion: Champion | None, classes: list[str]
) -> dict[str, WindowSpec]:
    """The challenger's spec from the request/settings; the champion's from its own spec, at the dataset's rate."""
    channels = choose_channels(list(manifest["channels"]), request.channels)
    specs = {"challenger": _spec(manifest, settings.window_s, settings.hop_s, channels, classes)}
    if champion:
        specs["champion"] = _spec(
            manifest,
            champion.spec.window_s,
            champion.spec.hop_s,
            champion.spec.channels,
            classes,
            champion.spec.feature_set_version or IMU_STATS_1,
        )
    return specs


def _featurize(runner: Any, dataset_dir: Path, specs: dict[str, WindowSpec]) -> dict[str, FeatureTable]:
    """One subflow on the chosen task runner; a spec both recipes share is featurized once."""
    unique = list(dict.fromkeys(specs.values()))
    tables = featurize_flow.with_options(task_runner=runner)(str(dataset_dir), unique)
    return {name: tables[unique.index(spec)] for name, spec in specs.items()}


@flow(name="retrain", log_prints=False)
def retrain_flow(request: RetrainRequest = RetrainRequest()) -> dict[str, Any]:
    """Retrain on new labelled data in the incoming folder; promote only a clear winner."""
    settings = request.settings()
    dataset_dir, incoming_dir, processed_dir = request.folders(settings)
    runner = task_runner(request.runner, request.dask_address)  # refuses a missing prefect-dask before any work
    with dataset_lock(dataset_dir):
        manifest = read_manifest(dataset_dir)
        incoming = scan_task(incoming_dir, manifest)
        current = None if incoming.units else champion_version(settings)
        if current is not None:
            return _no_new_data(incoming_dir, current, settings)
        champion = champion_task(settings)
        if incoming.new:
            manifest = add_new_data(incoming, dataset_dir, settings, champion)
        if manifest is None:
            raise PostureError(
                f"No dataset at {dataset_dir} and no recordings in {incoming_dir}.",
                f"put labelled recordings in {incoming_dir} (SUBJECT/LABEL/file.csv), or run `posture ingest`.",
            )
        return _decide_and_publish(request, settings, runner, dataset_dir, manifest, champion, incoming, processed_dir)


def _decide_and_publish(
    request: RetrainRequest,
    settings: Settings,
    runner: Any,
    dataset_dir: Path,
    manifest: dict[str, Any],
    champion: Champion | None,
    incoming: IncomingFiles,
    processed_dir: Path,
) -> dict[str, Any]:
    classes = check_label_set(manifest, champion)
    specs = _recipes(request, settings, manifest, champion, classes)
    tables = _featurize(runner, dataset_dir, specs)
    (cv, oof), champion_cv, basis = compare_task(tables, settings, champion, classes)
    decision = decide(cv.macro_f1, champion_cv.macro_f1 if champion_cv else None, request.margin)
    forest = fit_task(tables["challenger"], settings.trees, settings.random_state)
    table = tables["challenger"]
    transitions = transitions_for(table.labels, table.recordings, table.starts_s, classes)
    spec = replace(specs["challenger"], transitions=tuple(map(tuple, transitions.tolist())))
    challenger = Challenger(spec, settings.trees, settings.random_state, forest, table, cv, oof)
    context = {
        "dataset": settings.default_dataset,
        "batch": incoming.batch,
        "margin": request.margin,
        "comparison": basis,
        "manifest": manifest,
        "new_files": incoming.new,
    }
    published = publish_task(settings, challenger, champion, champion_cv, decision, context)
    moved = file_away_task(incoming, processed_dir, manifest)
    return _summary(settings, decision, challenger, champion, champion_cv, context) | published | {"moved": moved}


def _summary(
    settings: Settings,
    decision: Decision,
    challenger: Challenger,
    champion: Champion | None,
    champion_cv: Evaluation | None,
    context: dict[str, Any],
) -> dict[str, Any]:
    return {
        "status": decision.outcome,
        "reason": decision.reason,
        "alias": decision.alias,
        "margin": context["margin"],
        "delta_macro_f1": decision.delta,
        "model_name": settings.model_name,
        "dataset": context["dataset"],
        "previous_champion_version": champion.version if champion else None,
        "n_windows": int(len(challenger.table.labels)),
        "n_subjects": int(len(np.unique(challenger.table.groups))),
        "comparison": context["comparison"],
        "new_files": context["new_files"],
        "challenger": {**challenger.cv.to_dict(), "recipe": challenger.recipe()},
        "champion": {**champion_cv.to_dict(), "recipe": champion.recipe()} if champion and champion_cv else None,
        "tracking_uri": settings.mlflow_tracking_uri,
    }
