"""Feature extraction: our engine (numpy + a numba kernel) against tsfresh and seglearn, speed and accuracy.

    python bench/bench_features.py            # about 1-2 minutes on 2 cores
    python bench/bench_features.py --batches  # table 3 only, ~20 s

Bench-only peers (not project dependencies): ``pip install tsfresh seglearn``.

1. Speed: windows/s of each extractor on the SAME 2,000 windows of 100 x 6 (BasicMotions
   cases tiled with a little noise), single process; tsfresh Efficient on a subset of
   40 since it is ~100x slower. Building tsfresh's long DataFrame is not timed.
2. Accuracy: RandomForestClassifier(n_estimators=100, random_state=0) on each feature set.
   - sktime's BasicMotions (4 activities, 6 channels, 10 Hz, 100 samples per case):
     fit on the official train split, accuracy on the test split.
   - the built-in synthetic dataset (pipelines.synthetic), when present: GroupKFold by
     subject over 2 s windows, 1 s hop; tsfresh Efficient is left out (too slow).
3. Served cost: µs per window of ``featurize`` with the default feature set on the 3-user UCI
   HAPT subset (tests/data/hapt: 100 x 6 float32 windows with their stream contexts), in
   batches of 1, 16, 64 and 256 (the server's micro-batches), best of 7 rounds of consecutive
   batches. No peer: this is the figure the server pays per window.
A peer that fails to import is reported as such and skipped.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from features.contract import ACC_CHANNELS, ALL_CHANNELS  # noqa: E402
from features.extract import FEATURE_SET_VERSION, extract_features  # noqa: E402

SPEED_WINDOWS = 2000
SERVED_BATCHES = (1, 16, 64, 256)
HAPT_SUBSET = Path(__file__).resolve().parents[1] / "tests" / "data" / "hapt" / "hapt-rawdata-3-users.zip"
EFFICIENT_WINDOWS = 40
BASIC_MOTIONS_RATE_HZ = 10.0
console = Console(width=140)

Extractor = Callable[[np.ndarray, float], np.ndarray]  # (n, samples, 6) windows, rate -> (n, k)


def ours(windows: np.ndarray, rate_hz: float) -> np.ndarray:
    return extract_features(windows, ALL_CHANNELS, rate_hz)


def ours_acc_only(windows: np.ndarray, rate_hz: float) -> np.ndarray:
    return extract_features(windows[:, :, :3], ACC_CHANNELS, rate_hz)


def seglearn_extractor() -> Extractor | str:
    try:
        from seglearn.transform import FeatureRep
    except Exception as err:  # noqa: BLE001 - any import failure means "not available"
        return f"seglearn unavailable: {type(err).__name__}: {err}"

    def extract(windows: np.ndarray, rate_hz: float) -> np.ndarray:
        return FeatureRep().fit_transform(np.ascontiguousarray(windows, dtype=float))

    return extract


def tsfresh_extractor(kind: str) -> Extractor | str:
    try:
        import pandas as pd
        from tsfresh import extract_features as tsfresh_extract
        from tsfresh.feature_extraction import EfficientFCParameters, MinimalFCParameters
        from tsfresh.utilities.dataframe_functions import impute
    except Exception as err:  # noqa: BLE001
        return f"tsfresh unavailable: {type(err).__name__}: {err}"
    parameters = MinimalFCParameters() if kind == "minimal" else EfficientFCParameters()

    def to_long(windows: np.ndarray) -> pd.DataFrame:
        n, samples, _ = windows.shape
        frame = pd.DataFrame(windows.reshape(n * samples, -1), columns=list(ALL_CHANNELS))
        frame.insert(0, "id", np.repeat(np.arange(n), samples))
        frame.insert(1, "time", np.tile(np.arange(samples), n))
        return frame

    def extract(windows: np.ndarray, rate_hz: float) -> np.ndarray:
        frame = to_long(windows)
        started = time.perf_counter()
        table = tsfresh_extract(
            frame,
            column_id="id",
            column_sort="time",
            default_fc_parameters=parameters,
            n_jobs=0,
            disable_progressbar=True,
        )
        extract.seconds = time.perf_counter() - started  # the call alone, without to_long
        return impute(table).to_numpy(dtype=float)

    return extract


def timed(extractor: Extractor, windows: np.ndarray, rate_hz: float, repeats: int) -> tuple[float, np.ndarray]:
    """Best-of-``repeats`` windows/s (tsfresh: its own call only) and the features."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        features = extractor(windows, rate_hz)
        best = min(best, getattr(extractor, "seconds", time.perf_counter() - started))
    return len(windows) / best, features


def load_basic_motions() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sktime.datasets import load_basic_motions as load

    x_train, y_train = load(split="train", return_type="numpy3D")  # (n, 6 channels, 100)
    x_test, y_test = load(split="test", return_type="numpy3D")
    return x_train.transpose(0, 2, 1), np.asarray(y_train), x_test.transpose(0, 2, 1), np.asarray(y_test)


def synthetic_windows() -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    try:
        from features.spec import WindowSpec
        from pipelines.synthetic import generate_sample_dataset
        from pipelines.windowing import window_dataset
    except Exception as err:  # noqa: BLE001
        return f"synthetic dataset unavailable: {type(err).__name__}: {err}"
    frame = generate_sample_dataset(n_subjects=6, seconds_per_posture=30.0, rate_hz=50.0, seed=0)
    data = window_dataset(frame, WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=1.0))
    return data.windows.astype(float), data.labels, data.groups


def forest():
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=-1)


def holdout_accuracy(extractor: Extractor, data: tuple) -> float:
    x_train, y_train, x_test, y_test = data
    features = extractor(np.concatenate([x_train, x_test]), BASIC_MOTIONS_RATE_HZ)
    model = forest().fit(features[: len(x_train)], y_train)
    return float((model.predict(features[len(x_train) :]) == y_test).mean())


def group_cv_accuracy(extractor: Extractor, data: tuple) -> tuple[float, float]:
    from sklearn.model_selection import GroupKFold, cross_val_score

    windows, labels, groups = data
    scores = cross_val_score(forest(), extractor(windows, 50.0), labels, groups=groups, cv=GroupKFold(n_splits=3))
    return float(scores.mean()), float(scores.std())


def hapt_windows(spec) -> tuple[np.ndarray, np.ndarray]:
    """Every window of the HAPT subset's recordings, cut by ``spec``, and their stream contexts."""
    from features.feature_sets import window_contexts
    from features.windows import windows_for_spec
    from pipelines.read_options import ReadOptions
    from pipelines.readers.hapt import read_hapt

    windows, contexts = [], []
    for recording in read_hapt(HAPT_SUBSET, ReadOptions()):
        cut = windows_for_spec(recording.frame[list(spec.channels)].to_numpy(np.float32), spec)
        windows.append(cut)
        contexts.append(window_contexts(cut, spec))
    return np.concatenate(windows), np.concatenate(contexts)


def served_cost() -> None:
    """Table 3: µs per window of ``featurize`` by batch size."""
    from features.feature_sets import DEFAULT_FEATURE_SET, featurize
    from features.spec import WindowSpec

    spec = WindowSpec(feature_set_version=DEFAULT_FEATURE_SET)
    windows, contexts = hapt_windows(spec)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    console.print(
        f"featurize ({DEFAULT_FEATURE_SET}): {len(windows)} HAPT windows of 100 x 6, one process; load {load}"
    )
    table = Table(title="served cost by batch size")
    for column in ("batch", "µs per window", "windows/s"):
        table.add_column(column, justify="right")
    for size in SERVED_BATCHES:
        starts = [(i * size) % (len(windows) - size) for i in range(max(8, 2000 // size))]
        featurize(windows[:size], spec, contexts[:size])  # compiled kernels loaded, buffers made
        best = float("inf")
        for _ in range(7):
            began = time.perf_counter()
            for start in starts:
                featurize(windows[start : start + size], spec, contexts[start : start + size])
            best = min(best, (time.perf_counter() - began) / (len(starts) * size))
        table.add_row(str(size), f"{best * 1e6:.1f}", f"{1 / best:,.0f}")
    console.print(table)


def main() -> None:
    if "--batches" in sys.argv[1:]:
        served_cost()
        return
    started = time.perf_counter()
    basic = load_basic_motions()
    cases = np.concatenate([basic[0], basic[2]])
    rng = np.random.default_rng(0)
    speed_windows = cases[np.arange(SPEED_WINDOWS) % len(cases)] + rng.normal(0, 0.01, (SPEED_WINDOWS, 100, 6))
    synthetic = synthetic_windows()
    if isinstance(synthetic, str):
        console.print(f"[yellow]{synthetic}: skipping the group-CV column[/yellow]")
    else:
        console.print(f"synthetic: {len(synthetic[0])} windows of 2 s at 50 Hz, {len(set(synthetic[2]))} subjects")

    peers: list[tuple[str, Extractor | str, int, bool]] = [  # name, extractor, speed windows, on synthetic
        (f"posture ({FEATURE_SET_VERSION})", ours, SPEED_WINDOWS, True),
        ("posture, accelerometer only", ours_acc_only, SPEED_WINDOWS, True),
        ("seglearn FeatureRep", seglearn_extractor(), SPEED_WINDOWS, True),
        ("tsfresh Minimal", tsfresh_extractor("minimal"), SPEED_WINDOWS, True),
        ("tsfresh Efficient", tsfresh_extractor("efficient"), EFFICIENT_WINDOWS, False),
    ]
    rows = []
    for name, extractor, n_speed, on_synthetic in peers:
        if isinstance(extractor, str):
            console.print(f"[yellow]{name}: {extractor}[/yellow]")
            continue
        with console.status(f"{name} ..."):
            rate, features = timed(extractor, speed_windows[:n_speed], BASIC_MOTIONS_RATE_HZ, 3 if n_speed > 100 else 1)
            accuracy = holdout_accuracy(extractor, basic)
            cv = group_cv_accuracy(extractor, synthetic) if on_synthetic and not isinstance(synthetic, str) else None
        rows.append((name, features.shape[1], n_speed, rate, accuracy, cv))

    ours_rate = rows[0][3]
    table = Table(title=f"Feature extraction on 100 x 6 windows ({os.cpu_count()} cores, single process)")
    columns = (
        "feature set",
        "features",
        "timed on",
        "windows/s",
        "posture 6-ch is x faster",
        "BasicMotions test acc",
        "synthetic group-CV acc",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "feature set" else "right")
    for name, n_features, n_speed, rate, accuracy, cv in rows:
        table.add_row(
            name,
            str(n_features),
            str(n_speed),
            f"{rate:,.0f}",
            f"{ours_rate / rate:,.1f}",
            f"{accuracy:.3f}",
            "skipped" if cv is None else f"{cv[0]:.3f} ± {cv[1]:.3f}",
        )
    console.print(table)
    served_cost()
    console.print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
