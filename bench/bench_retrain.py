"""What a nightly `posture retrain` costs, and Prefect's share of it.

    python bench/bench_retrain.py            # about 3 minutes on 2 cores

A throwaway home gets the built-in sample dataset (8 subjects, 100-tree champion). Each
"night" one new subject's recordings arrive in incoming/ and one retrain runs:
1. in-process on a running Prefect API (as `run_flow` does: heartbeats off), per stage;
2. the same flow body with Prefect taken out (every task called as its plain function,
   the featurize subflow as a loop), on the next night; 1 and 2 alternate twice, so the
   growing dataset favours neither;
3. `posture retrain` as a user runs it, with a running Prefect server (PREFECT_API_URL) and
   with the temporary API it starts itself.
Prefect's share = (1 - 2) / 1 in-process; for the CLI the API start it could not hide is added.
Wall times swing with other load on a shared machine, so CPU seconds are reported beside them:
this process (all threads) plus the temporary API server's process, or for a CLI run, the CLI
and the API server it started (as children of this process).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-retrain-prefect-"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from pipelines.orchestration import run_flow, start_prefect_api  # noqa: E402

start_prefect_api()

from prefect import Task  # noqa: E402

import pipelines.retrain as retrain  # noqa: E402
from pipelines.dataset import build_manifest, write_dataset  # noqa: E402
from pipelines.featurize import FeatureTable, featurize_batch_task, make_batches  # noqa: E402
from pipelines.progress import listening  # noqa: E402
from pipelines.recording import Recording  # noqa: E402
from pipelines.synthetic import generate_sample_dataset  # noqa: E402
from tests.pipelines.incoming_data import write_subject  # noqa: E402


def sample_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="bench-retrain-")) / "home"
    frame = generate_sample_dataset()
    recordings = [
        Recording(str(n), part.drop(columns="recording"), "synthetic") for n, part in frame.groupby("recording")
    ]
    write_dataset(home / "data/datasets/sample", frame, build_manifest(frame, recordings, 50.0, {"name": "sample"}))
    return home


def plain_featurize(request: Any, dataset_dir: Path, specs: dict[str, Any]) -> dict[str, FeatureTable]:
    import pandas as pd

    sizes = pd.read_parquet(dataset_dir / "recordings.parquet", columns=["recording"])["recording"].value_counts()
    batches = make_batches(sizes.to_dict(), 2 * (os.cpu_count() or 1))
    tables = {
        spec: FeatureTable.concat([featurize_batch_task.fn(str(dataset_dir), b, spec) for b in batches])
        for spec in dict.fromkeys(specs.values())
    }
    return {name: tables[spec] for name, spec in specs.items()}


@contextmanager
def without_prefect() -> Iterator[None]:
    """Every task in the retrain module as its plain function; the subflow as a loop."""
    swapped = {name: obj for name, obj in vars(retrain).items() if isinstance(obj, Task)}
    swapped["_featurize"] = retrain._featurize
    for name, obj in swapped.items():
        setattr(retrain, name, plain_featurize if name == "_featurize" else obj.fn)
    try:
        yield
    finally:
        for name, obj in swapped.items():
            setattr(retrain, name, obj)


def cpu_seconds() -> float:
    """CPU time of this process, its waited-for children, and the temporary API server."""
    import psutil

    from pipelines import orchestration

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    server = orchestration._api_process
    if server is not None and server.poll() is None:
        times = psutil.Process(server.pid).cpu_times()
        total += times.user + times.system
    return total


def night(home: Path, subject: int, prefect: bool) -> tuple[float, float, dict[str, float]]:
    write_subject(home / "data/incoming", f"s{subject:02d}", seed=subject, seconds=60.0)
    stages: dict[str, float] = {}
    last: list[Any] = [time.perf_counter(), ""]

    def on_stage(stage: str, _detail: str) -> None:
        now = time.perf_counter()
        if last[1]:
            stages[last[1]] = stages.get(last[1], 0.0) + now - last[0]
        last[:] = [now, stage]

    request = retrain.RetrainRequest(home=str(home))
    started, cpu = time.perf_counter(), cpu_seconds()
    with listening(on_stage):
        if prefect:
            run_flow(retrain.retrain_flow, request=request)
        else:
            with without_prefect():
                retrain.retrain_flow.fn(request)
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    stages[last[1]] = stages.get(last[1], 0.0) + time.perf_counter() - last[0]
    return wall, cpu, stages


def seconds_of(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of a command (with its children, e.g. the API server it starts)."""
    started, cpu = time.perf_counter(), cpu_seconds()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return time.perf_counter() - started, cpu_seconds() - cpu


def main() -> None:
    home = sample_home()
    run_flow(retrain.retrain_flow, request=retrain.RetrainRequest(home=str(home)))  # the first champion
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for subject, prefect in zip(range(9, 13), (True, False, False, True)):
        wall, cpu, stages = night(home, subject, prefect)
        runs[prefect].append((wall, cpu))
        print(
            f"night s{subject:02d} {'with Prefect   ' if prefect else 'without Prefect'} {wall:6.2f} s, cpu {cpu:6.2f} s  "
            + "  ".join(f"{k} {v:.2f}" for k, v in stages.items())
        )
    (wall_p, cpu_p), (wall_n, cpu_n) = [tuple(map(statistics.mean, zip(*runs[k]))) for k in (True, False)]
    print(
        f"retrain in-process, mean of 2: wall {wall_p:.2f} s with Prefect, {wall_n:.2f} s without; "
        f"cpu {cpu_p:.2f} s with, {cpu_n:.2f} s without: Prefect {cpu_p - cpu_n:+.2f} cpu-s "
        f"= {100 * (cpu_p - cpu_n) / cpu_p:.1f}% of the CPU"
    )

    command = [sys.executable, "-m", "posture_cli", "retrain", "--json"]
    env = os.environ | {"POSTURE_HOME": str(home)}
    write_subject(home / "data/incoming", "s13", seed=13, seconds=60.0)
    with_api = seconds_of(command, env)
    write_subject(home / "data/incoming", "s14", seed=14, seconds=60.0)
    own_api = seconds_of(command, {k: v for k, v in env.items() if k != "PREFECT_API_URL"})
    print(
        f"`posture retrain`: wall {with_api[0]:.2f} s / cpu {with_api[1]:.2f} s with a running Prefect server; "
        f"wall {own_api[0]:.2f} s / cpu {own_api[1]:.2f} s starting its own temporary API"
    )
    api_cpu = max(0.0, own_api[1] - with_api[1])
    print(
        f"Prefect's share of `posture retrain` CPU: {100 * max(cpu_p - cpu_n, 0) / with_api[1]:.0f}% with a server; "
        f"{100 * (max(cpu_p - cpu_n, 0) + api_cpu) / own_api[1]:.0f}% with its own temporary API "
        f"(its start {api_cpu:.2f} cpu-s)"
    )


if __name__ == "__main__":
    main()
