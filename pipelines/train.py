"""The ``train`` Prefect flow: windows -> features -> subject-wise CV -> fit -> MLflow version.

Tasks take and return in-memory arrays; caching is off because hashing arrays costs
more than the work and a training run is never reused from cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from features.contract import ACC_CHANNELS, ALL_CHANNELS
from features.errors import DataError
from features.extract import FEATURE_SET_VERSION, extract_features
from features.spec import WindowSpec
from pipelines.dataset import load_dataset
from pipelines.evaluate import Evaluation, make_folds, out_of_fold_predictions, score
from pipelines.progress import report
from pipelines.windowing import WindowedDataset, window_dataset


class TrainRequest(BaseModel):
    """Everything a training run needs; JSON-serialisable so Prefect can record it."""

    dataset_dir: str
    test_dataset_dir: str | None = None
    window_s: float = 2.0
    hop_s: float = 1.0
    channels: str = "auto"  # auto | all | acc
    trees: int = 100
    cv_folds: int = 5
    random_state: int = 0
    register_model: bool = True
    experiment: str = "posture"
    model_name: str = "posture"
    tracking_uri: str = ""
    artifacts_dir: str = ""


def choose_channels(available: list[str], wanted: str) -> tuple[str, ...]:
    if wanted == "acc" or (wanted == "auto" and not set(ALL_CHANNELS) <= set(available)):
        if not set(ACC_CHANNELS) <= set(available):
            raise DataError("The dataset lacks accelerometer channels ax, ay, az.", "ingest data with --map for them.")
        return ACC_CHANNELS
    if not set(ALL_CHANNELS) <= set(available):
        raise DataError(
            f"--channels all needs ax..gz but the dataset has {', '.join(available)}.",
            "pass --channels acc to train on the accelerometer alone.",
        )
    return ALL_CHANNELS


def make_forest(trees: int, random_state: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=trees, random_state=random_state, n_jobs=-1, class_weight="balanced_subsample"
    )


def fit_forest(features: np.ndarray, labels: np.ndarray, trees: int, random_state: int) -> Any:
    """The forest fitted on all windows, set up for serving."""
    forest = make_forest(trees, random_state).fit(features, labels)
    forest.set_params(n_jobs=1)  # per-request inference: parallel overhead dwarfs the work
    return forest


@task(cache_policy=NO_CACHE)
def load_task(dataset_dir: str) -> tuple[Any, dict[str, Any]]:
    report("load", dataset_dir)
    return load_dataset(Path(dataset_dir))


@task(cache_policy=NO_CACHE)
def window_task(frame: Any, spec: WindowSpec) -> WindowedDataset:
    report("window")
    return window_dataset(frame, spec)


@task(cache_policy=NO_CACHE)
def featurize_task(windowed: WindowedDataset, spec: WindowSpec) -> np.ndarray:
    report("featurize", f"{len(windowed.labels)} windows")
    return extract_features(windowed.windows, spec.channels, spec.rate_hz)


@task(cache_policy=NO_CACHE)
def cross_validate_task(
    features: np.ndarray, windowed: WindowedDataset, request: TrainRequest, classes: list[str]
) -> tuple[Evaluation, np.ndarray]:
    folds, scheme = make_folds(windowed.labels, windowed.groups, request.cv_folds)
    report("cross-validate", scheme)
    predicted = out_of_fold_predictions(
        lambda: make_forest(request.trees, request.random_state), features, windowed.labels, folds
    )
    return score(windowed.labels, predicted, classes, scheme), predicted


@task(cache_policy=NO_CACHE)
def fit_task(features: np.ndarray, labels: np.ndarray, request: TrainRequest) -> Any:
    report("fit", f"{request.trees} trees")
    return fit_forest(features, labels, request.trees, request.random_state)


@task(cache_policy=NO_CACHE)
def evaluate_task(forest: Any, test_dataset_dir: str, spec: WindowSpec) -> Evaluation:
    """Score the fitted model on a held-out dataset (e.g. an official test split)."""
    report("evaluate", test_dataset_dir)
    frame, _ = load_dataset(Path(test_dataset_dir))
    windowed = window_dataset(frame, spec)
    predicted = forest.predict(extract_features(windowed.windows, spec.channels, spec.rate_hz))
    return score(windowed.labels, predicted, list(spec.classes), f"held-out dataset {Path(test_dataset_dir).name}")


@flow(name="train", log_prints=False)
def train_flow(request: TrainRequest) -> dict[str, Any]:
    """Train, evaluate by subject, log to MLflow, register, and promote only when better."""
    from pipelines.model_logging import log_training_run

    frame, manifest = load_task(request.dataset_dir)
    channels = choose_channels(list(manifest["channels"]), request.channels)
    spec = WindowSpec(rate_hz=float(manifest["rate_hz"]), window_s=request.window_s, hop_s=request.hop_s, channels=channels)
    windowed = window_task(frame, spec)
    classes = sorted(np.unique(windowed.labels).tolist())
    if len(classes) < 2:
        raise DataError(f"Training needs at least two labels; the dataset has {classes}.", "ingest more labels.")
    spec = WindowSpec(**{**spec.to_dict(), "channels": channels, "feature_set_version": FEATURE_SET_VERSION, "classes": tuple(classes)})
    features = featurize_task(windowed, spec)
    cv, oof_predictions = cross_validate_task(features, windowed, request, classes)
    forest = fit_task(features, windowed.labels, request)
    test = evaluate_task(forest, request.test_dataset_dir, spec) if request.test_dataset_dir else None
    result: dict[str, Any] = {
        "dataset": manifest.get("name", Path(request.dataset_dir).name),
        "n_windows": int(len(windowed.labels)),
        "n_subjects": int(len(np.unique(windowed.groups))),
        "spec": spec.to_dict(),
        "cv": cv.to_dict(),
        "test": test.to_dict() if test else None,
    }
    if request.register_model:
        report("register")
        result.update(
            log_training_run(
                request=request,
                spec=spec,
                forest=forest,
                features=features,
                windowed=windowed,
                oof_predictions=oof_predictions,
                cv=cv,
                test=test,
                manifest=manifest,
            )
        )
    return result
