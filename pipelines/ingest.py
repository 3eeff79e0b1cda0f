"""The ``ingest`` Prefect flow: recordings on disk -> one canonical Parquet dataset + manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from features.errors import DataError, PostureError
from pipelines.dataset import build_manifest, recordings_to_frame, write_dataset
from pipelines.progress import report
from pipelines.read_options import ReadOptions
from pipelines.recording import Recording


class IngestRequest(BaseModel):
    """Where recordings are, how to read them, and where the dataset goes.

    ``read_options.max_gap_s`` also bounds the gaps resampling interpolates over.
    """

    paths: list[str] = Field(default_factory=list)
    dataset_dir: str
    rate_hz: float = 50.0
    read_options: ReadOptions = Field(default_factory=ReadOptions)
    sample: bool = False


Failure = tuple[str, str, tuple[str, ...]]  # a PostureError's problem (naming the path), fix and options


@task(cache_policy=NO_CACHE)
def read_and_resample_task(path: str, request: IngestRequest) -> tuple[list[Recording], Failure | None]:
    """One file or folder -> validated recordings at the dataset rate, or why it failed.

    A user error is returned, not raised: one bad file must not fail the whole run. The stage
    report names the path only: the reason is said once, in the summary or the final error.
    """
    from pipelines.readers import read_recordings, resample_recording

    report("read", path)
    try:
        options = request.read_options
        recordings = read_recordings(Path(path), options)
        segments = [seg for rec in recordings for seg in resample_recording(rec, request.rate_hz, options.max_gap_s)]
        if not any(len(segment.frame) > 1 for segment in segments):  # a 1-row file made a dataset of 0 s
            raise DataError(
                f"{path}: no two samples within {options.max_gap_s:g} s of each other: nothing to resample.",
                "record at least a few seconds (a window is 2 s by default); "
                "if the time column is not in seconds, declare its units.",
                options=("time_units",),
            )
        return segments, None
    except PostureError as err:
        report("failed", path)
        return [], (err.problem if path in err.problem else f"{path}: {err.problem}", err.fix, err.options)


@task(cache_policy=NO_CACHE)
def sample_task(rate_hz: float) -> list[Recording]:
    """The built-in synthetic recordings, one per (subject, posture) plus mixed ones."""
    from pipelines.synthetic import generate_sample_dataset

    report("generate", "synthetic sample recordings")
    frame = generate_sample_dataset(rate_hz=rate_hz)
    return [
        Recording(name=str(name), frame=part.drop(columns="recording").reset_index(drop=True), source="synthetic")
        for name, part in frame.groupby("recording", sort=True)
    ]


@task(cache_policy=NO_CACHE)
def write_task(recordings: list[Recording], request: IngestRequest, failures: dict[str, str]) -> dict[str, Any]:
    report("write", request.dataset_dir)
    frame = recordings_to_frame(recordings)
    extra = {"name": Path(request.dataset_dir).name, "synthetic": request.sample, "rejected_files": failures}
    manifest = build_manifest(frame, recordings, request.rate_hz, extra)
    write_dataset(Path(request.dataset_dir), frame, manifest)
    return manifest


@flow(name="ingest", log_prints=False)
def ingest_flow(request: IngestRequest) -> dict[str, Any]:
    """Read every path (a bad file is reported and skipped), resample, write the dataset."""
    recordings: list[Recording] = []
    failures: dict[str, Failure] = {}
    if request.sample:
        recordings.extend(sample_task(request.rate_hz))
    for path in request.paths:
        read, failure = read_and_resample_task(path, request)
        recordings.extend(read)
        if failure:
            failures[path] = failure
    if not recordings:
        raise nothing_read(list(failures.values()))
    return write_task(recordings, request, {path: str(PostureError(*failure)) for path, failure in failures.items()})


def nothing_read(failures: list[Failure]) -> PostureError:
    """One error for a run that read nothing: each path and problem once, each distinct fix once."""
    problems = [problem for problem, _, _ in failures]
    fixes = list(dict.fromkeys(fix for _, fix, _ in failures if fix))
    options = tuple(dict.fromkeys(option for _, _, named in failures for option in named))
    if not failures:
        return PostureError(
            "No recording found in the paths given.", "pass recordings in a format `posture ingest --help` lists."
        )
    if len(failures) == 1:
        return PostureError(problems[0], fixes[0] if fixes else "", options)
    return PostureError(f"No recording could be read: {'; '.join(problems)}", " / ".join(fixes), options)
