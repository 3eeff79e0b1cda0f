"""The server's settings: the pipelines' ``Settings`` (where models live) and what only
``posture serve`` and the prediction store use. Same ``POSTURE_*`` variables; the README's
settings table is generated from both classes (``scripts/settings_table.py``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from pipelines.settings import Settings


class ServerSettings(Settings):
    """How the server, its prediction store and its edge (Redis, keys, limits) behave."""

    host: str = Field(
        "127.0.0.1", description="Address `posture serve` binds; off loopback, API keys are required by default."
    )
    port: int = Field(8000, description="Port of `posture serve`.")
    workers: int = Field(1, description="Server processes (uvicorn workers).")
    database_read_url: str | None = Field(None, description="Read replica for read-only queries.")
    auto_migrate: bool = Field(
        True, description="Bring the store's schema up to date at start; false: refuse and name the command."
    )
    anon_key: str = Field("posture-dev-anon-key", description="HMAC key for device ids and addresses.")
    spool_dir: Path | None = Field(None, description="Where rows wait while the database is down.")
    log_batch_size: int = Field(500, description="Prediction rows per database write at most.")
    log_flush_interval_s: float = Field(0.25, description="Rows wait at most this long before a write (s).")
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
    batch_tick_ms: float = Field(4.0, description="Under load a micro-batch waits this long for more windows (ms).")
    max_batch_windows: int = Field(256, description="Windows per micro-batch at most (~15 ms of the event loop).")
    live_accuracy_interval_s: float = Field(
        60.0, gt=0, description="How often /metrics' live accuracy is read from the store (s)."
    )
    reload_interval_s: float = Field(
        10.0, description="How often the server checks the registry for a new champion (s)."
    )
    # drift monitoring (README, "Drift monitoring"): a rolling window per model version
    drift_enabled: bool = Field(
        True, description="Track drift of the served versions; false: no window, no scoring, no alarm."
    )
    drift_window: int = Field(2000, ge=50, description="Predictions in each model version's rolling drift window.")
    drift_step: int = Field(500, gt=0, description="New predictions between two drift scorings of a full window.")
    drift_check_interval_s: float = Field(5.0, gt=0, description="How often the drift scorer looks for a due step (s).")
    drift_psi_threshold: float = Field(
        1.2,
        gt=0,
        description="PSI of a tracked feature above which it has drifted (new wearers of the sample: <= 0.9).",
    )
    drift_prediction_threshold: float = Field(
        0.4, gt=0, description="Jensen-Shannon distance of predicted labels from the class prior that counts as drift."
    )
    drift_confidence_threshold: float = Field(
        0.1, gt=0, description="Drop in mean confidence below the out-of-fold one that counts as drift."
    )
    drift_sustain_s: float = Field(
        300.0, ge=0, description="A score must stay above its threshold this long to raise the drift alarm (s)."
    )
    drift_retrain_deployment: str = Field(
        "retrain/retrain", description="Prefect deployment (flow/name) a drift alarm runs, with PREFECT_API_URL set."
    )
    drift_retrain_interval_s: float = Field(
        86400.0, ge=0, description="Drift alarms start a retrain run at most once per this interval (s)."
    )
    max_frame_bytes: int = Field(65536, description="Largest stream frame; bigger ones close the session (1009).")
    max_samples_per_frame: int = Field(1000, description="Rows one stream frame may carry.")
    max_upsampling: float = Field(
        10.0,
        ge=1.0,
        description="Lowest input rate accepted: the model's rate / this. It also caps the "
        "samples one frame, request or push makes on the model's grid: max_samples_per_frame x this.",
    )
    rate_limit_per_s: float = Field(
        200.0, description="Frames and requests a second per connection and per address; 0 turns limiting off."
    )
    rate_limit_burst: int = Field(400, description="Tokens a client may save up for a burst.")
    heartbeat_interval_s: float = Field(20.0, description="WebSocket ping interval (s).")
    log_file: Path | None = Field(None, description="Also write the server's JSON logs to this file.")
    redis_url: str | None = Field(
        None, description="Redis shared by all instances: rate limits, resumable sessions, alias cache."
    )
    api_keys_required: bool | None = Field(None, description="Default: on unless bound to loopback.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed besides the server's own."
    )
    # deployment: Redis, API keys, backups (docs/deployment.md)
    redis_prefix: str = Field("posture", description="Prefix of every Redis key (one per deployment).")
    redis_timeout_s: float = Field(0.25, description="Redis socket timeout; past it the in-process fallback answers.")
    session_ttl_s: float = Field(300.0, description="How long a stream session can be resumed after its last window.")
    rate_limit_key_per_s: float = Field(2000.0, description="Requests + frames a second per API key, all instances.")
    rate_limit_key_burst: int = Field(4000, description="Tokens an API key may save up for a burst.")
    api_key_cache_s: float = Field(
        5.0, description="Key checks are cached this long: revocation takes effect within it."
    )
    model_cache_ttl_s: float = Field(5.0, description="Registry alias look-ups shared through Redis for this long.")
    backup_key: str | None = Field(None, description="Passphrase of `posture db backup --encrypt`.")
    backup_dir: Path | None = Field(None, description="Where backups go; default <data_dir>/backups.")
    backup_keep: int = Field(7, description="Backups kept per database; older ones are deleted.")
    # recording labelled sessions into the incoming folder (README, "Recording labelled data")
    recording_enabled: bool = Field(
        False, description="Stream sessions may ask to be recorded; off: a record request gets an error."
    )
    recording_dir: Path | None = Field(
        None, description="Where recorded sessions land as Parquet; default <data_dir>/incoming (what retrain reads)."
    )
    recording_max_samples: int = Field(
        30000, gt=0, description="Samples one recording file holds at most (on the model's grid); then a new file."
    )

    @model_validator(mode="after")
    def _fill_server_paths(self) -> "ServerSettings":
        assert self.data_dir is not None
        if self.spool_dir is None:
            self.spool_dir = self.data_dir / "spool"
        if self.backup_dir is None:
            self.backup_dir = self.data_dir / "backups"
        if self.recording_dir is None:
            self.recording_dir = self.data_dir / "incoming"
        return self
