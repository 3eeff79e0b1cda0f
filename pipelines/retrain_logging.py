"""A retrain decision in MLflow: one run with both models' metrics, the decision, and the
challenger's model, registered as a new version. The alias is moved separately, last."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from features.spec import WindowSpec
from pipelines.champion import MANIFEST_ARTIFACT, Champion
from pipelines.comparison import Decision
from pipelines.evaluate import Evaluation
from pipelines.featurize import FeatureTable
from pipelines.model_logging import ensure_registered, log_model_with_evaluation
from pipelines.registry import connect, ensure_experiment
from pipelines.settings import Settings


@dataclass
class Challenger:
    """The new model and how it was judged."""

    spec: WindowSpec
    trees: int
    random_state: int
    forest: Any
    table: FeatureTable
    cv: Evaluation
    oof: np.ndarray

    def recipe(self) -> dict[str, Any]:
        return {
            "window_s": self.spec.window_s,
            "hop_s": self.spec.hop_s,
            "channels": ",".join(self.spec.channels),
            "trees": self.trees,
            "random_state": self.random_state,
        }


def decision_params(challenger: Challenger, champion: Champion | None, margin: float, basis: str) -> dict[str, Any]:
    spec = challenger.spec
    params: dict[str, Any] = {
        **challenger.recipe(),
        "rate_hz": spec.rate_hz,
        "feature_set_version": spec.feature_set_version,
        "n_windows": len(challenger.table.labels),
        "n_features": challenger.table.features.shape[1],
        "n_subjects": len(np.unique(challenger.table.groups)),
        "cv_scheme": challenger.cv.scheme,
        "margin": margin,
        "comparison": basis,
    }
    params.update({f"champion_{k}": v for k, v in (champion.recipe() if champion else {}).items()})
    return params


def decision_metrics(challenger: Challenger, champion_cv: Evaluation | None, decision: Decision) -> dict[str, float]:
    """``cv_*`` are the challenger's (as in a train run), ``champion_cv_*`` the champion's on the same folds."""
    metrics = challenger.cv.metrics("cv") | (champion_cv.metrics("champion_cv") if champion_cv else {})
    if decision.delta is not None:
        metrics["delta_macro_f1"] = decision.delta
    metrics["promoted"] = float(decision.promoted)
    return metrics


def log_retrain_run(
    settings: Settings,
    challenger: Challenger,
    champion: Champion | None,
    champion_cv: Evaluation | None,
    decision: Decision,
    context: dict[str, Any],
) -> dict[str, str]:
    """Log the decision run and register the challenger as a new version (no alias yet)."""
    import mlflow

    client = connect(settings)
    experiment_id = ensure_experiment(client, settings)
    metrics = decision_metrics(challenger, champion_cv, decision)
    tags = {
        "posture.kind": "retrain",
        "posture.decision": decision.outcome,
        "posture.reason": decision.reason,
        "posture.alias": decision.alias,
        "posture.champion_version": champion.version if champion else "",
        "posture.dataset": context["dataset"],
        "posture.batch": context["batch"],
    }
    table = challenger.table
    with (
        mlflow.start_run(experiment_id=experiment_id, run_name=f"retrain {context['batch']}", tags=tags) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        mlflow.log_params(decision_params(challenger, champion, context["margin"], context["comparison"]))
        mlflow.log_metrics(metrics)
        mlflow.log_dict(context["manifest"], MANIFEST_ARTIFACT)
        mlflow.log_dict({"new_files": context["new_files"], **tags}, "decision.json")
        if champion_cv:
            mlflow.log_dict(champion_cv.to_dict(), "evaluation/champion_cv.json")
        info = log_model_with_evaluation(
            Path(tmp),
            challenger.spec,
            challenger.forest,
            table.features,
            table,
            challenger.oof,
            challenger.cv,
            context["dataset"],
        )
        ensure_registered(client, settings.model_name)
        version = client.create_model_version(
            settings.model_name,
            info.model_uri,
            run_id=run.info.run_id,
            tags={**{k: str(v) for k, v in challenger.cv.metrics("cv").items()}, "posture.decision": decision.outcome},
        )
        mlflow.set_tag("posture.version", str(version.version))
    return {"run_id": run.info.run_id, "version": str(version.version)}
