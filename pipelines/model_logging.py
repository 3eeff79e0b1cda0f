"""Log a training run to MLflow, register the model version, and promote only when better."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from features.feature_sets import feature_names_for
from features.spec import WindowSpec
from pipelines.drift_reference import write_reference_profile
from pipelines.evaluate import Evaluation
from pipelines.registry import (
    MODEL_PIP_REQUIREMENTS,
    OFFLINE_METRICS_FILE,
    ONNX_FILE,
    SELECTION_METRIC,
    SKOPS_TRUSTED_TYPES,
    SPEC_FILE,
    alias_metric,
    connect,
    ensure_experiment,
    remember_served_alias,
)
from pipelines.settings import Settings
from pipelines.train_request import TrainRequest
from pipelines.windowing import WindowedDataset

if TYPE_CHECKING:
    from pipelines.featurize import FeatureTable

PREDICTIONS_ARTIFACT = "evaluation/window_predictions.parquet"


def confusion_figure(evaluation: Evaluation) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 * len(evaluation.classes) + 2, 1.1 * len(evaluation.classes) + 1.5))
    ax.imshow(evaluation.confusion, cmap="Blues")
    ax.set_xticks(range(len(evaluation.classes)), evaluation.classes, rotation=45, ha="right")
    ax.set_yticks(range(len(evaluation.classes)), evaluation.classes)
    for (row, col), count in np.ndenumerate(evaluation.confusion):
        ax.text(col, row, str(count), ha="center", va="center")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(evaluation.scheme)
    fig.tight_layout()
    return fig


def window_predictions_frame(windowed: WindowedDataset | FeatureTable, oof: np.ndarray, fitted: np.ndarray) -> Any:
    """Per training window: where it is, its label, the out-of-fold and the fitted model's prediction."""
    import pandas as pd

    return pd.DataFrame(
        {
            "recording": windowed.recordings.astype(str),
            "subject": windowed.groups.astype(str),
            "start": windowed.starts_s,
            "label": windowed.labels,
            "cv_prediction": oof,
            "prediction": fitted,
        }
    )


def model_files(
    folder: Path, spec: WindowSpec, forest: Any, n_features: int, cv: Evaluation, dataset: str
) -> list[str]:
    """The files a version carries beside the forest: its spec, its CV figures, its ONNX export.

    The CV figures travel with the model so that the server, the one writer of the store's
    ``model_metrics``, records them when it starts serving the version.
    """
    from pipelines.onnx_export import export_forest

    spec_path = folder / SPEC_FILE
    spec_path.write_text(json.dumps(spec.to_dict(), indent=2))
    metrics_path = folder / OFFLINE_METRICS_FILE
    metrics_path.write_text(json.dumps({"dataset": dataset, "metrics": cv.metrics("cv")}, indent=2))
    return [str(spec_path), str(metrics_path), str(export_forest(forest, n_features, folder / ONNX_FILE))]


def log_model_with_evaluation(
    folder: Path,
    spec: WindowSpec,
    forest: Any,
    features: np.ndarray,
    windowed: WindowedDataset | FeatureTable,
    oof_predictions: np.ndarray,
    cv: Evaluation,
    dataset: str,
) -> Any:
    """In the active MLflow run: what every trained forest carries, then the forest itself.

    The feature names, the CV report and its confusion matrix, each training window's
    out-of-fold and fitted prediction, and the model in MLflow's sklearn flavour with its
    spec, CV figures and ONNX export (written to ``folder`` first). Returns ``log_model``'s ModelInfo.
    """
    import mlflow
    import mlflow.sklearn

    mlflow.log_dict({"feature_names": feature_names_for(spec)}, "features/feature_names.json")
    mlflow.log_dict({"per_subject": cv.per_subject}, "evaluation/per_subject.json")
    mlflow.log_dict(cv.to_dict(), "evaluation/cv.json")
    mlflow.log_figure(confusion_figure(cv), "evaluation/confusion_matrix.png")
    predictions_path = folder / Path(PREDICTIONS_ARTIFACT).name
    fitted = forest.predict(features)
    window_predictions_frame(windowed, oof_predictions, fitted).to_parquet(predictions_path, index=False)
    mlflow.log_artifact(str(predictions_path), str(Path(PREDICTIONS_ARTIFACT).parent))
    profile = write_reference_profile(folder, spec, forest, features, windowed.labels, cv)  # drift's reference
    return mlflow.sklearn.log_model(
        forest,
        name="model",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pip_requirements=MODEL_PIP_REQUIREMENTS,
        extra_files=[*model_files(folder, spec, forest, features.shape[1], cv, dataset), profile],
        metadata={"posture_spec": spec.to_dict()},
    )


def ensure_registered(client: Any, name: str) -> None:
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)


def promote(client: Any, name: str, version: str, score: float) -> tuple[str, float | None]:
    """``champion`` when ``score`` beats the current champion's (or none exists), else ``challenger``."""
    current = alias_metric(client, name, "champion")
    alias = "champion" if current is None or score > current else "challenger"
    client.set_registered_model_alias(name, alias, version)
    return alias, current


def log_training_run(
    *,
    request: TrainRequest,
    spec: WindowSpec,
    forest: Any,
    features: np.ndarray,
    windowed: WindowedDataset,
    oof_predictions: np.ndarray,
    cv: Evaluation,
    test: Evaluation | None,
    manifest: dict[str, Any],
) -> dict[str, Any]:
    settings = Settings(
        mlflow_tracking_uri=request.tracking_uri or None,
        mlflow_artifacts_dir=Path(request.artifacts_dir) if request.artifacts_dir else None,
        experiment=request.experiment,
        model_name=request.model_name,
    )
    client = connect(settings)
    experiment_id = ensure_experiment(client, settings)
    import mlflow

    metrics = cv.metrics("cv") | (test.metrics("test") if test else {})
    with mlflow.start_run(experiment_id=experiment_id) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params(
            {
                **request.model_dump(exclude={"tracking_uri", "artifacts_dir"}),
                "n_windows": len(windowed.labels),
                "n_features": features.shape[1],
                "channels": ",".join(spec.channels),
                "rate_hz": spec.rate_hz,
                "feature_set_version": spec.feature_set_version,
                "cv_scheme": cv.scheme,
            }
        )
        mlflow.log_metrics(metrics)
        mlflow.log_dict(manifest, "dataset/manifest.json")
        if test:
            mlflow.log_dict(test.to_dict(), "evaluation/test.json")
        dataset = Path(request.dataset_dir).name
        info = log_model_with_evaluation(Path(tmp), spec, forest, features, windowed, oof_predictions, cv, dataset)
        ensure_registered(client, request.model_name)
        version = str(
            client.create_model_version(
                request.model_name,
                info.model_uri,
                run_id=run.info.run_id,
                tags={k: str(v) for k, v in metrics.items()},
            ).version
        )
        alias, previous = promote(client, request.model_name, version, cv.macro_f1)
        mlflow.set_tags({"posture.version": version, "posture.alias": alias})
    remember_served_alias(settings)  # after the run's last write, or the look-up is void
    return {
        "run_id": run.info.run_id,
        "model_name": request.model_name,
        "version": version,
        "alias": alias,
        "previous_champion_" + SELECTION_METRIC: previous,
        "model_uri": f"models:/{request.model_name}/{version}",
        "tracking_uri": settings.mlflow_tracking_uri,
    }
