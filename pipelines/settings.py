"""The pipelines' settings: ``POSTURE_*`` environment variables, CLI flags override.

Where data and models live, and how models are trained. The server's own settings extend
these in ``serving/settings.py`` (``ServerSettings``). Nothing is read at import time;
call ``Settings()`` (or ``posture_cli.console.load_settings``) where needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def find_home(start: Path | None = None) -> Path:
    """The posture checkout that holds ``start`` (default: cwd), else ``start`` itself."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and 'name = "posture"' in pyproject.read_text(errors="ignore"):
            return folder
    return start


class Settings(BaseSettings):
    """Where data and models live, and how models are trained."""

    model_config = SettingsConfigDict(env_prefix="POSTURE_", extra="ignore", populate_by_name=True)

    home: Path = Field(default_factory=find_home, description="Root for data/ and mlflow/.")
    data_dir: Path | None = Field(None, description="Datasets; default <home>/data.")
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("POSTURE_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
        description="Default sqlite:///<home>/mlflow/mlflow.db.",
    )
    mlflow_artifacts_dir: Path | None = Field(None, description="Default <home>/mlflow/artifacts.")
    experiment: str = Field("posture", description="MLflow experiment of training runs.")
    model_name: str = Field("posture", description="Registered model name.")
    model_alias: str = Field("champion", description="Registry alias that serving and predict follow.")
    default_dataset: str = Field("sample", description="Dataset `posture train` uses when none is given.")
    rate_hz: float = Field(50.0, description="Sampling rate a new model resamples to (Hz).")
    window_s: float = Field(2.0, description="Window length of a new model (s).")
    hop_s: float = Field(1.0, description="Hop between windows of a new model (s).")
    max_gap_s: float = Field(0.5, description="A pause longer than this starts a new segment: no window spans it (s).")
    trees: int = Field(100, description="Trees of the Random Forest.")
    cv: str = Field("auto", description="Cross-validation of `posture train`: auto, loso or group-kfold:N.")
    cv_folds: int = Field(5, description="Subject folds of `posture retrain`'s comparison.")
    random_state: int = Field(0, description="Seed of training and cross-validation.")

    database_url: str | None = Field(
        None,
        description="The prediction store (retrain records model metrics there); default sqlite:///<data_dir>/predictions.db.",
    )

    @model_validator(mode="after")
    def _fill_paths(self) -> "Settings":
        self.home = self.home.expanduser().resolve()
        if self.data_dir is None:
            self.data_dir = self.home / "data"
        if self.mlflow_artifacts_dir is None:
            self.mlflow_artifacts_dir = self.home / "mlflow" / "artifacts"
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.data_dir / 'predictions.db'}"
        if self.mlflow_tracking_uri is None:
            self.mlflow_tracking_uri = f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"
        return self

    def dataset_dir(self, name: str) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "datasets" / name


def quiet_offline_environment() -> None:
    """Keep MLflow and Prefect from phoning home; nothing of ours reaches the internet."""
    for key, value in {
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        "GIT_PYTHON_REFRESH": "quiet",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }.items():
        os.environ.setdefault(key, value)
