"""The one settings object: ``POSTURE_*`` environment variables, CLI flags override.

Nothing is read at import time; call ``Settings()`` (or ``load_settings``) where needed.
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
    """Where data and models live, and how the server behaves."""

    model_config = SettingsConfigDict(env_prefix="POSTURE_", extra="ignore", populate_by_name=True)

    home: Path = Field(default_factory=find_home, description="Root for data/ and mlflow/.")
    data_dir: Path | None = Field(None, description="Datasets; default <home>/data.")
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("POSTURE_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
        description="Default sqlite:///<home>/mlflow/mlflow.db.",
    )
    mlflow_artifacts_dir: Path | None = Field(None, description="Default <home>/mlflow/artifacts.")
    experiment: str = "posture"
    model_name: str = "posture"
    model_alias: str = "champion"
    default_dataset: str = "sample"
    rate_hz: float = 50.0
    window_s: float = 2.0
    hop_s: float = 1.0
    max_gap_s: float = 0.5
    trees: int = 100
    cv: str = Field("auto", description="Cross-validation of `posture train`: auto, loso or group-kfold:N.")
    cv_folds: int = Field(5, description="Subject folds of `posture retrain`'s comparison.")
    random_state: int = 0

    # serving
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    database_url: str | None = Field(None, description="Default sqlite:///<data_dir>/predictions.db.")
    database_read_url: str | None = Field(None, description="Read replica for read-only queries.")
    auto_migrate: bool = True
    anon_key: str = Field("posture-dev-anon-key", description="HMAC key for device ids and addresses.")
    spool_dir: Path | None = Field(None, description="Where rows wait while the database is down.")
    log_batch_size: int = 500
    log_flush_interval_s: float = 0.25
    # Bounds on every prediction-store call (docs/deployment.md, "Prediction store"): past them
    # the database counts as down and rows go to the spool.
    database_connect_timeout_s: float = Field(
        2.0,
        gt=0,
        description="Connect timeout of the store's PostgreSQL connections (libpq counts whole seconds, 2 at least).",
    )
    database_statement_timeout_s: float = Field(
        1.5, gt=0, description="PostgreSQL statement_timeout of the store's writes (a batch takes ~10 ms)."
    )
    database_lock_timeout_s: float = Field(
        1.0,
        gt=0,
        description="PostgreSQL lock_timeout: a table locked this long (VACUUM FULL, ALTER TABLE) is an outage.",
    )
    store_call_timeout_s: float = Field(
        2.0,
        gt=0,
        description="Wall-clock bound of one store transaction or ping; past it the connection is cut (a hung network).",
    )
    batch_tick_ms: float = 4.0
    max_batch_windows: int = Field(256, description="Windows per micro-batch at most (~15 ms of the event loop).")
    reload_interval_s: float = 10.0
    max_frame_bytes: int = 65536
    max_samples_per_frame: int = 1000
    max_upsampling: float = Field(
        10.0,
        ge=1.0,
        description="Lowest input rate accepted: the model's rate / this. It also caps the "
        "samples one frame, request or push makes on the model's grid: max_samples_per_frame x this.",
    )
    rate_limit_per_s: float = 200.0
    rate_limit_burst: int = 400
    heartbeat_interval_s: float = 20.0
    log_file: Path | None = None
    redis_url: str | None = None
    api_keys_required: bool | None = Field(None, description="Default: on unless bound to loopback.")
    cors_origins: list[str] = Field(default_factory=list)
    # deployment: Redis, API keys, backups (docs/deployment.md)
    redis_prefix: str = Field("posture", description="Prefix of every Redis key (one per deployment).")
    redis_timeout_s: float = Field(0.25, description="Redis socket timeout; past it the in-process fallback answers.")
    session_ttl_s: float = Field(300.0, description="How long a stream session can be resumed after its last window.")
    rate_limit_key_per_s: float = Field(2000.0, description="Requests + frames a second per API key, all instances.")
    rate_limit_key_burst: int = 4000
    api_key_cache_s: float = Field(
        5.0, description="Key checks are cached this long: revocation takes effect within it."
    )
    model_cache_ttl_s: float = Field(5.0, description="Registry alias look-ups shared through Redis for this long.")
    backup_key: str | None = Field(None, description="Passphrase of `posture db backup --encrypt`.")
    backup_dir: Path | None = Field(None, description="Where backups go; default <data_dir>/backups.")
    backup_keep: int = Field(7, description="Backups kept per database; older ones are deleted.")

    @model_validator(mode="after")
    def _fill_paths(self) -> "Settings":
        self.home = self.home.expanduser().resolve()
        if self.data_dir is None:
            self.data_dir = self.home / "data"
        if self.mlflow_artifacts_dir is None:
            self.mlflow_artifacts_dir = self.home / "mlflow" / "artifacts"
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.data_dir / 'predictions.db'}"
        if self.spool_dir is None:
            self.spool_dir = self.data_dir / "spool"
        if self.backup_dir is None:
            self.backup_dir = self.data_dir / "backups"
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
