"""The set-up that bench/ws_load.py and bench/mqtt_load.py share: a throwaway folder, a home
with the sample dataset and a trained champion, and the sample recordings for the clients."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_serve_http import load_average, prepare_home, recording_samples


@dataclass(frozen=True)
class BenchHome:
    tmp: Path  # removed at the end: the server's data dir, the broker's files
    home: Path  # POSTURE_HOME with the champion (kept when --home named it)
    recordings: Path  # .npz of every sample recording's (n, 6) float32 samples, for the client processes


@contextmanager
def bench_home(prefix: str, home: Path | None) -> Iterator[BenchHome]:
    """Print the load average, set up (or reuse) the home, and clean the throwaway folder up."""
    print(f"load average at start: {load_average()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        chosen = home.resolve() if home else tmp / "home"
        prepare_home(chosen)
        recordings = tmp / "recordings.npz"
        np.savez(recordings, *recording_samples(chosen))
        yield BenchHome(tmp, chosen, recordings)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
