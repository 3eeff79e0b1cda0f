"""What a training run is asked to do: the ``train`` flow's one argument, and what MLflow logs of it."""

from __future__ import annotations

from pydantic import BaseModel

from features.augment import COPIES
from features.feature_sets import DEFAULT_FEATURE_SET


class TrainRequest(BaseModel):
    """Everything a training run needs; JSON-serialisable so Prefect can record it."""

    dataset_dir: str
    test_dataset_dir: str | None = None
    window_s: float = 2.0
    hop_s: float = 1.0
    channels: str = "auto"  # auto | all | acc
    trees: int = 100
    cv: str = "auto"  # auto | loso | group-kfold:N (pipelines.evaluate.CvScheme)
    feature_set: str = DEFAULT_FEATURE_SET  # features.feature_sets.FEATURE_SETS
    rotated_copies: int = COPIES  # training copies of each recording, phone turned (features.augment)
    random_state: int = 0
    register_model: bool = True
    experiment: str = "posture"
    model_name: str = "posture"
    tracking_uri: str = ""
    artifacts_dir: str = ""
