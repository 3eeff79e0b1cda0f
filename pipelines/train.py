"""The ``train`` Prefect flow: windows -> features -> subject-wise CV -> fit -> MLflow version.

Tasks take and return in-memory arrays; caching is off because hashing arrays costs
more than the work and a training run is never reused from cache.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from features.augment import MAX_TILT_DEG
from features.contract import ACC_CHANNELS, ALL_CHANNELS
from features.errors import DataError
from features.feature_sets import featurize
from features.smoothing import ForwardFilter
from features.spec import WindowSpec
from pipelines.augmentation import rotated_copies, with_copies
from pipelines.dataset import load_dataset
from pipelines.evaluate import (
    CvScheme,
    Evaluation,
    filtered,
    labels_of,
    out_of_fold_probabilities,
    score,
    smoothed_predictions,
    transitions_for,
)
from pipelines.model_logging import log_training_run
from pipelines.progress import report
from pipelines.train_request import TrainRequest
from pipelines.windowing import WindowedDataset, window_dataset


def choose_channels(available: list[str], wanted: str) -> tuple[str, ...]:
    if wanted == "acc" or (wanted == "auto" and not set(ALL_CHANNELS) <= set(available)):
        if not set(ACC_CHANNELS) <= set(available):
            raise DataError(
                "The dataset lacks accelerometer channels ax, ay, az.",
                "ingest the data again with its columns mapped to them.",
            )
        return ACC_CHANNELS
    if not set(ALL_CHANNELS) <= set(available):
        raise DataError(
            f"Training on all channels needs ax..gz but the dataset has {', '.join(available)}.",
            "train on the accelerometer alone (channels acc).",
            options=("channels",),
        )
    return ALL_CHANNELS


def make_forest(trees: int, random_state: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    # min_samples_leaf 5: leave-one-subject-out on UCI HAPT, 0.940 with 1, 0.941 with 5 and with 20;
    # smaller trees also predict faster and export a smaller ONNX graph.
    return RandomForestClassifier(
        n_estimators=trees,
        random_state=random_state,
        n_jobs=-1,
        class_weight="balanced_subsample",
        min_samples_leaf=5,
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
    report("featurize", f"{len(windowed.labels)} windows, {spec.feature_set_version}")
    return featurize(windowed.windows, spec, windowed.contexts)


@task(cache_policy=NO_CACHE)
def augment_task(windowed: WindowedDataset, spec: WindowSpec, request: TrainRequest) -> list[np.ndarray]:
    if request.rotated_copies:
        report("augment", f"{request.rotated_copies} copies turned up to {MAX_TILT_DEG:g} degrees")
    return rotated_copies(windowed, spec, request.rotated_copies, request.random_state)


@task(cache_policy=NO_CACHE)
def cross_validate_task(
    features: np.ndarray,
    copies: list[np.ndarray],
    windowed: WindowedDataset,
    request: TrainRequest,
    classes: list[str],
) -> tuple[Evaluation, np.ndarray]:
    """Out-of-fold scores by subject, strict and after the forward filter."""
    w = windowed
    folds, scheme = CvScheme.parse(request.cv).make_folds(w.labels, w.groups)
    report("cross-validate", f"{scheme}, {len(folds)} fits")
    probabilities = out_of_fold_probabilities(
        lambda: make_forest(request.trees, request.random_state), features, w.labels, folds, classes, copies
    )
    predicted = labels_of(probabilities, classes)
    smoothed = smoothed_predictions(probabilities, w.labels, w.recordings, w.starts_s, folds, classes)
    evaluation = score(w.labels, predicted, classes, scheme, w.groups, smoothed, probabilities.max(axis=1))
    return evaluation, predicted


@task(cache_policy=NO_CACHE)
def fit_task(features: np.ndarray, copies: list[np.ndarray], labels: np.ndarray, request: TrainRequest) -> Any:
    report("fit", f"{request.trees} trees")
    return fit_forest(*with_copies(features, labels, copies), request.trees, request.random_state)


@task(cache_policy=NO_CACHE)
def evaluate_task(forest: Any, test_dataset_dir: str, spec: WindowSpec) -> Evaluation:
    """Score the fitted model on a held-out dataset (e.g. an official test split)."""
    report("evaluate", test_dataset_dir)
    frame, _ = load_dataset(Path(test_dataset_dir))
    w = window_dataset(frame, spec)
    classes = list(spec.classes)
    probabilities = np.zeros((len(w.labels), len(classes)))
    columns = [classes.index(c) for c in forest.classes_]
    probabilities[:, columns] = forest.predict_proba(featurize(w.windows, spec, w.contexts))
    smoothed = filtered(probabilities, w.recordings, w.starts_s, ForwardFilter.for_spec(spec))
    return score(
        w.labels,
        labels_of(probabilities, classes),
        classes,
        f"held-out dataset {Path(test_dataset_dir).name}",
        w.groups,
        labels_of(smoothed, classes),
    )


@flow(name="train", log_prints=False)
def train_flow(request: TrainRequest) -> dict[str, Any]:
    """Train, evaluate by subject, log to MLflow, register, and promote only when better."""
    frame, manifest = load_task(request.dataset_dir)
    channels = choose_channels(list(manifest["channels"]), request.channels)
    spec = WindowSpec(
        rate_hz=float(manifest["rate_hz"]), window_s=request.window_s, hop_s=request.hop_s, channels=channels
    )
    windowed = window_task(frame, spec)
    classes = sorted(np.unique(windowed.labels).tolist())
    if len(classes) < 2:
        raise DataError(f"Training needs at least two labels; the dataset has {classes}.", "ingest more labels.")
    transitions = transitions_for(windowed.labels, windowed.recordings, windowed.starts_s, classes)
    spec = replace(
        spec,
        feature_set_version=request.feature_set,
        classes=tuple(classes),
        transitions=tuple(map(tuple, transitions.tolist())),
    )
    features = featurize_task(windowed, spec)
    copies = augment_task(windowed, spec, request)
    cv, oof_predictions = cross_validate_task(features, copies, windowed, request, classes)
    forest = fit_task(features, copies, windowed.labels, request)
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
