"""MLflow look-ups, model logging and loading. Imports no Prefect: the server uses it too.

A posture model version is an MLflow sklearn model (the fitted forest, skops format)
with extra files: ``spec.json`` (the preprocessing spec it was trained with),
``offline_metrics.json`` (its CV figures and the dataset they came from) and, when export
succeeded, ``model.onnx`` (the same forest for ONNX Runtime).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.errors import PostureError
from features.spec import WindowSpec
from pipelines.inference import build_engine
from pipelines.model_cache import Resolution, ResolutionCache
from pipelines.settings import Settings, quiet_offline_environment

if TYPE_CHECKING:
    from mlflow import MlflowClient

SPEC_FILE = "spec.json"
OFFLINE_METRICS_FILE = "offline_metrics.json"
ONNX_FILE = "model.onnx"
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
# Inference needs only these; MLflow's own inference of requirements is slow and noisy.
MODEL_PIP_REQUIREMENTS = ["scikit-learn", "numpy", "skops"]
SELECTION_METRIC = "cv_macro_f1"


class ModelNotFoundError(PostureError):
    """A model URI, version or alias that the registry does not know."""


@dataclass
class LoadedModel:
    """A model ready for inference, with where it came from.

    The sklearn estimator is loaded on first use: the ONNX path needs neither sklearn
    nor skops, whose import alone costs ~1.5 s of a `posture predict` run.
    """

    local_dir: Path  # the model's MLflow folder (MLmodel, model.skops, extra_files/)
    spec: WindowSpec
    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    onnx_path: Path | None = None
    offline_metrics: dict[str, float] = field(default_factory=dict)  # cv_* figures; empty for older versions
    offline_dataset: str = ""  # the dataset those figures were measured on
    loaded_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @cached_property
    def estimator(self) -> Any:
        """The fitted sklearn classifier over ``extract_features`` columns."""
        import mlflow.sklearn

        return mlflow.sklearn.load_model(self.local_dir.as_uri())

    @cached_property
    def engine(self) -> Any:
        """ONNX Runtime when the model carries an export, else the sklearn estimator."""
        return build_engine(self)


def connect(settings: Settings) -> "MlflowClient":
    """Point MLflow at the settings' tracking store and return a client."""
    quiet_offline_environment()
    import mlflow

    uri = settings.mlflow_tracking_uri
    assert uri is not None
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    configured = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # MLflow also writes MLFLOW_TRACKING_URI into the environment, where the next
    # Settings() would mistake it for the user's configuration; put back what was there.
    if configured is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = configured
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(client: "MlflowClient", settings: Settings) -> str:
    """The experiment id, created with an explicit artifact location (not ./mlruns)."""
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return experiment.experiment_id
    assert settings.mlflow_artifacts_dir is not None
    settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(settings.experiment, artifact_location=settings.mlflow_artifacts_dir.as_uri())


def resolve_model_uri(reference: str | None, settings: Settings) -> str:
    """``None`` -> the served alias; ``"3"`` -> version 3; ``"champion"`` -> that alias; URIs pass."""
    if not reference:
        return f"models:/{settings.model_name}@{settings.model_alias}"
    if "://" in reference or reference.startswith("models:/") or reference.startswith("runs:/"):
        return reference
    if reference.isdigit():
        return f"models:/{settings.model_name}/{reference}"
    if re.fullmatch(r"[A-Za-z_][\w-]*", reference):
        return f"models:/{settings.model_name}@{reference}"
    return reference  # a local path to a model folder


def describe_uri(client: "MlflowClient", uri: str) -> tuple[str | None, str | None, str | None]:
    """(name, version, alias) that a ``models:/`` URI points at; raises when unknown."""
    name, alias, found = _model_version(client, uri)
    return name, str(found.version) if found is not None else None, alias


def _model_version(client: "MlflowClient", uri: str) -> tuple[str | None, str | None, Any]:
    """(name, alias, the MLflow ``ModelVersion``) of a ``models:/`` URI; Nones for other URIs."""
    match = re.fullmatch(r"models:/([^/@]+)(?:@([\w-]+)|/(\d+))", uri)
    if not match:
        return None, None, None
    name, alias, version = match.groups()
    from mlflow.exceptions import MlflowException

    try:
        if alias:
            return name, alias, client.get_model_version_by_alias(name, alias)
        return name, None, client.get_model_version(name, version)
    except MlflowException as err:
        raise ModelNotFoundError(
            f"No model at {uri} in {client.tracking_uri}.",
            "train one with `posture train`, or list versions with `posture models list`.",
        ) from err


def load_model(uri: str, settings: Settings) -> LoadedModel:
    """Load a posture model (forest + spec) from any MLflow model URI or local folder.

    A ``models:/`` URI on a SQLite store that has not changed since the last look-up is
    served from ``pipelines.model_cache`` without importing MLflow.
    """
    assert settings.mlflow_tracking_uri is not None
    cache = ResolutionCache(settings.mlflow_tracking_uri)
    known = cache.lookup(uri)
    if known is not None:
        return model_from_folder(Path(known.local_dir), uri, known.name, known.version, known.alias)
    stamp = cache.stamp() if cache.enabled else []  # taken first: a write during the look-up voids it
    client = connect(settings)
    name, alias, found = _model_version(client, uri)
    version = str(found.version) if found is not None else None
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    # Pin the version we resolved, so an alias moving mid-load cannot mix two versions.
    pinned = f"models:/{name}/{version}" if version else uri
    cacheable = cache.enabled and name is not None and version is not None
    try:
        if cacheable:
            local = cache.model_copy(
                name,
                version,
                found.source,
                lambda folder: Path(mlflow.artifacts.download_artifacts(pinned, dst_path=str(folder))),
            )
        else:
            local = Path(mlflow.artifacts.download_artifacts(pinned))
    except (MlflowException, OSError) as err:
        raise ModelNotFoundError(
            f"Could not load the model at {uri}: {err}", "check the URI with `posture models list`."
        ) from err
    model = model_from_folder(local, uri, name, version, alias)
    if cacheable:
        cache.record(uri, Resolution(name, version, alias, str(local), stamp))
    return model


def remember_served_alias(settings: Settings) -> None:
    """Resolve the alias `posture predict` uses by default now, after a registry write.

    Called where MLflow is loaded anyway (train, retrain, promote), so that the next
    `posture predict` finds the look-up in ``pipelines.model_cache`` and skips MLflow.
    """
    try:
        load_model(resolve_model_uri(None, settings), settings)
    except ModelNotFoundError:
        pass  # no such alias yet: predict will say so itself


def model_from_folder(local: Path, uri: str, name: str | None, version: str | None, alias: str | None) -> LoadedModel:
    """A ``LoadedModel`` over a downloaded MLflow model folder; checks it is a posture model."""
    spec_path = local / "extra_files" / SPEC_FILE
    if not spec_path.is_file():
        raise ModelNotFoundError(
            f"The model at {uri} carries no {SPEC_FILE}, so it was not trained by posture.",
            "train a model with `posture train`.",
        )
    spec = WindowSpec.from_dict(json.loads(spec_path.read_text()))
    onnx_path = local / "extra_files" / ONNX_FILE
    metrics_path = local / "extra_files" / OFFLINE_METRICS_FILE
    offline = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {"dataset": "", "metrics": {}}
    return LoadedModel(
        local_dir=local,
        spec=spec,
        uri=uri,
        name=name,
        version=version,
        alias=alias,
        onnx_path=onnx_path if onnx_path.is_file() else None,
        offline_metrics={name: float(value) for name, value in offline["metrics"].items()},
        offline_dataset=str(offline["dataset"]),
    )


def alias_metric(client: "MlflowClient", name: str, alias: str, metric: str = SELECTION_METRIC) -> float | None:
    """The selection metric recorded on the version an alias points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    value = version.tags.get(metric)
    return float(value) if value is not None else None


def set_alias(client: "MlflowClient", name: str, alias: str, version: str) -> None:
    try:
        client.get_model_version(name, version)
    except Exception as err:  # MlflowException; imported lazily
        raise ModelNotFoundError(
            f"Model {name} has no version {version}.", "see `posture models list` for the versions."
        ) from err
    client.set_registered_model_alias(name, alias, version)


def list_versions(client: "MlflowClient", name: str) -> list[dict[str, Any]]:
    """Every version of a registered model, newest first, with aliases and metrics."""
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        return []
    # Search results leave ``aliases`` empty; the registered model holds alias -> version.
    aliases = client.get_registered_model(name).aliases
    rows = []
    for v in sorted(versions, key=lambda mv: int(mv.version), reverse=True):
        rows.append(
            {
                "version": str(v.version),
                "aliases": sorted(a for a, target in aliases.items() if str(target) == str(v.version)),
                "created": datetime.fromtimestamp(v.creation_timestamp / 1000, timezone.utc).isoformat(),
                "run_id": v.run_id,
                "source": v.source,
                "metrics": {k: float(val) for k, val in v.tags.items() if k.startswith(("cv_", "test_"))},
                "tags": dict(v.tags),
            }
        )
    return rows
