"""What the current champion is: its version, its training recipe, and the data it saw.

The retrain comparison refits the champion's recipe (window spec from its ``spec.json``,
forest size and seed from its run's parameters) instead of scoring the champion model
itself, which has seen every old subject and would be judged on its own training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from features.spec import WindowSpec
from pipelines.registry import connect, load_model
from pipelines.settings import Settings

MANIFEST_ARTIFACT = "dataset/manifest.json"


@dataclass(frozen=True)
class Champion:
    version: str
    spec: WindowSpec
    trees: int
    random_state: int
    recordings: frozenset[str] | None  # recordings it was trained on; None when unknown

    def recipe(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "window_s": self.spec.window_s,
            "hop_s": self.spec.hop_s,
            "channels": ",".join(self.spec.channels),
            "trees": self.trees,
            "random_state": self.random_state,
        }


def _trained_on(run_id: str) -> frozenset[str] | None:
    """Recordings named in the dataset manifest the champion's run logged, if it logged one."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        manifest = mlflow.artifacts.load_dict(f"runs:/{run_id}/{MANIFEST_ARTIFACT}")
    except (MlflowException, OSError):
        return None
    recordings = manifest.get("recordings")
    return frozenset(map(str, recordings)) if recordings else None


def champion_version(settings: Settings) -> str | None:
    """The version the ``champion`` alias points at (a cheap look-up), or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(connect(settings).get_model_version_by_alias(settings.model_name, "champion").version)
    except MlflowException:
        return None


def find_champion(settings: Settings) -> Champion | None:
    """The version behind the ``champion`` alias, or None when there is none."""
    from mlflow.exceptions import MlflowException

    client = connect(settings)
    try:
        version = client.get_model_version_by_alias(settings.model_name, "champion")
    except MlflowException:
        return None
    model = load_model(f"models:/{settings.model_name}/{version.version}", settings)
    params = client.get_run(version.run_id).data.params if version.run_id else {}
    return Champion(
        version=str(version.version),
        spec=model.spec,
        trees=int(params.get("trees", settings.trees)),
        random_state=int(params.get("random_state", settings.random_state)),
        recordings=_trained_on(version.run_id) if version.run_id else None,
    )
