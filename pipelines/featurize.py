"""Feature extraction over many recordings as Prefect tasks that a task runner can spread.

``featurize_flow`` cuts a dataset's recordings into batches of about equal size and maps one
task over them. With the default runner the tasks run in threads of this process; with
prefect-dask's ``DaskTaskRunner`` they run on a Dask cluster. Each task reads only its own
recordings from the dataset's Parquet file, so a remote worker needs the dataset's path
(shared storage), not a copy of the data in the task's arguments, and sends back features
rather than raw windows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE

from features.errors import PostureError
from features.feature_sets import feature_names_for, featurize
from features.spec import WindowSpec
from pipelines.dataset import TABLE_FILE
from pipelines.progress import report
from pipelines.windowing import window_dataset

RUNNERS = ("local", "dask")


@dataclass
class FeatureTable:
    """Features of labelled windows, with where each window comes from (no raw samples)."""

    features: np.ndarray  # (n_windows, n_features) float
    labels: np.ndarray  # (n_windows,) str
    groups: np.ndarray  # (n_windows,) subject (recording when no subject)
    recordings: np.ndarray  # (n_windows,) recording name
    starts_s: np.ndarray  # (n_windows,) window start from the recording's start

    @classmethod
    def concat(cls, parts: list["FeatureTable"]) -> "FeatureTable":
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in cls.__dataclass_fields__))

    @classmethod
    def empty(cls, spec: WindowSpec) -> "FeatureTable":
        blank = np.empty(0, dtype=object)
        n_features = len(feature_names_for(spec))
        return cls(np.empty((0, n_features)), blank, blank, blank, np.empty(0))


def make_batches(sizes: dict[str, int], n_batches: int) -> list[list[str]]:
    """Recordings in name order, cut into ``n_batches`` runs of about equal sample count.

    Contiguous runs keep the windows in the order ``window_dataset`` gives for the whole dataset.
    """
    names = sorted(sizes)
    n_batches = max(1, min(n_batches, len(names)))
    cumulative = np.cumsum([sizes[name] for name in names])
    cuts = np.searchsorted(cumulative, cumulative[-1] * np.arange(1, n_batches) / n_batches, side="right")
    return [list(batch) for batch in np.split(np.array(names, dtype=object), cuts) if len(batch)]


@task(cache_policy=NO_CACHE)
def featurize_batch_task(dataset_dir: str, recordings: list[str], spec: WindowSpec) -> FeatureTable:
    """Windows and features of some recordings; recordings shorter than a window give none."""
    import pandas as pd

    frame = pd.read_parquet(Path(dataset_dir) / TABLE_FILE, filters=[("recording", "in", list(recordings))])
    if frame["label"].isna().all() or not (frame.groupby("recording").size() >= spec.window_samples).any():
        return FeatureTable.empty(spec)
    windowed = window_dataset(frame, spec)
    features = featurize(windowed.windows, spec, windowed.contexts)
    return FeatureTable(features, windowed.labels, windowed.groups, windowed.recordings, windowed.starts_s)


def _parallelism() -> int:
    """Worker threads of the flow's task runner: the Dask cluster's, else this machine's cores."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    client = getattr(context.task_runner, "client", None) if context else None
    if client is not None and hasattr(client, "nthreads"):
        return max(1, sum(client.nthreads().values()))
    return os.cpu_count() or 1


@flow(name="featurize", log_prints=False)
def featurize_flow(dataset_dir: str, specs: list[WindowSpec]) -> list[FeatureTable]:
    """One feature table per spec, in the dataset's window order; empty specs raise."""
    import pandas as pd

    sizes = pd.read_parquet(Path(dataset_dir) / TABLE_FILE, columns=["recording"])["recording"].value_counts()
    batches = make_batches(sizes.to_dict(), 2 * _parallelism())
    tables = []
    for spec in specs:
        report("featurize", f"{len(sizes)} recordings in {len(batches)} tasks, {spec.window_s:g} s windows")
        parts = featurize_batch_task.map(unmapped(dataset_dir), batches, unmapped(spec)).result()
        table = FeatureTable.concat(parts)
        if not len(table.labels):
            raise PostureError(
                f"No labelled recording is longer than one window ({spec.window_s} s).",
                "use a shorter window, or add longer labelled recordings.",
                options=("window_s",),
            )
        tables.append(table)
    return tables


def task_runner(runner: str, dask_address: str | None = None) -> Any:
    """The Prefect task runner for ``--runner``: threads here, or a Dask cluster."""
    from prefect.task_runners import ThreadPoolTaskRunner

    if runner not in RUNNERS:
        raise PostureError(f"Unknown runner {runner!r}.", f"choose one of: {', '.join(RUNNERS)}.", options=("runner",))
    if runner == "local":
        if dask_address:
            raise PostureError(
                "A Dask scheduler address was given to the local runner.", "use the dask runner.", options=("runner",)
            )
        return ThreadPoolTaskRunner()
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as err:
        raise PostureError(
            "The dask runner needs prefect-dask, which is not installed.", "pip install 'posture[dask]'."
        ) from err
    if dask_address:
        return DaskTaskRunner(address=dask_address)
    # A temporary cluster on this machine; no dashboard (it needs bokeh and a free port).
    return DaskTaskRunner(cluster_kwargs={"dashboard_address": None})
