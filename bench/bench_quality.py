"""Classification quality and speed: posture against MiniRocket, tsfresh and seglearn (issue 14).

    .venv/bin/python bench/bench_quality.py                 # LOSO on HAPT + BasicMotions
    .venv/bin/python bench/bench_quality.py --quick         # 5-fold GroupKFold by subject
    .venv/bin/python bench/bench_quality.py --methods posture-default,seglearn --json out.json

Bench-only peers (not project dependencies): ``pip install -e '.[bench]'`` (aeon, tsfresh,
seglearn). A peer that fails to import is reported and skipped.

Datasets, each cut into the same windows for every method:
- UCI HAPT, the 21 users in ``../shared/datasets/hapt`` (``--hapt``): 2 s windows (100
  samples at 50 Hz), 1 s hop, per experiment; a window is kept when >= 80% of its samples
  carry one of the six activity labels (transitions and unlabelled samples count against
  it): 9,947 windows of (100, 6) ax, ay, az (m/s^2), gx, gy, gz (rad/s). Scored by
  leave-one-subject-out (21 folds), or 5-fold GroupKFold by subject with ``--quick``.
- BasicMotions (sktime's copy; 4 classes, 10 Hz, 100 samples): its own train/test split.
  Saturated: a smoke test only.

Methods (``--methods``, comma-separated keys):
- ``minirocket``: aeon's MiniRocket transform + StandardScaler(with_mean=False) +
  RidgeClassifierCV(alphas=logspace(-3, 3, 10)), as aeon's MiniRocketClassifier builds it.
  Its biases depend on the data, so it is FIT PER FOLD on the training windows only.
  ``--minirocket-kernels`` (default 10,000, aeon's) sets its size: the ridge costs ~n^3 in
  the number of training windows, ~6 min per HAPT fold on 2 cores at 10,000 kernels.
- ``tsfresh``: tsfresh MinimalFCParameters per channel + RF100; ``tsfresh-efficient`` (opt-in
  with ``--with-tsfresh-efficient``: ~3 windows/s, about an hour on HAPT).
- ``seglearn``: seglearn FeatureRep (its default features) + RF100.
- ``imu-stats``: posture ``imu-stats-1`` + ``pipelines.train.make_forest(100, 0)``.
- ``posture-default``: the default pipeline as ``posture train`` runs it (see the block below:
  its feature set, its forest trained with the rotated copies on HAPT), and its forward filter.
RF100 = RandomForestClassifier(100 trees, random_state=0, class_weight="balanced_subsample").
Feature methods featurize every window once (a window's features do not depend on others);
only the models are fitted per fold.

Figures per dataset and method: window accuracy and macro-F1 over the out-of-fold
predictions, per-subject accuracy (min / median / max, worst 3) on HAPT; throughput in
windows/s of one featurization of all windows, single thread, after a small warm-up (for
MiniRocket: its transform, fitted on all windows first; for tsfresh: its own call, not the
long DataFrame built for it); and the seconds of fitting + predicting across the whole CV
(models with n_jobs=2; MiniRocket's per-fold fit and transforms included). Then ratios:
posture default's accuracy minus each peer's (points) and its windows/s over each peer's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from features.contract import ALL_CHANNELS  # noqa: E402
from features.stream_context import unknown_contexts  # noqa: E402

N_JOBS = 2
DEFAULT_HAPT = REPO.parent / "shared" / "datasets" / "hapt"  # the 21 training users


# --- posture default: the default pipeline, exactly as `posture train` runs it --------------
# Its feature set (which needs each window's stream context, the upright and the last still
# posture that posture's windowing computes over the whole recording, causally), its forest, and its forward filter with transitions
# learned on each fold's training windows (pipelines.evaluate.smoothed_predictions).


def posture_default_features(windows: np.ndarray, contexts: np.ndarray, rate_hz: float) -> np.ndarray:
    from features.feature_sets import DEFAULT_FEATURE_SET, featurize
    from features.spec import WindowSpec

    return featurize(windows, WindowSpec(rate_hz=rate_hz, feature_set_version=DEFAULT_FEATURE_SET), contexts)


def posture_default_forest() -> Any:
    from pipelines.train import make_forest

    return make_forest(100, 0).set_params(n_jobs=N_JOBS)


def posture_copies(data: "Dataset") -> list[np.ndarray]:
    """Features of the rotated training copies `posture train` adds (pipelines.augmentation)."""
    from features.augment import COPIES
    from features.feature_sets import DEFAULT_FEATURE_SET
    from features.spec import WindowSpec
    from pipelines.augmentation import rotated_copies
    from pipelines.windowing import WindowedDataset

    assert data.recordings is not None and data.starts is not None and data.contexts is not None
    spec = WindowSpec(rate_hz=data.rate_hz, feature_set_version=DEFAULT_FEATURE_SET)
    windowed = WindowedDataset(data.windows, data.labels, data.subjects, data.recordings, data.starts, data.contexts)
    return rotated_copies(windowed, spec, COPIES, 0)


def posture_smoothed(proba: np.ndarray, data: "Dataset") -> np.ndarray:
    """Labels (all rows, in row order) after the forward filter over each held-out recording."""
    from pipelines.evaluate import smoothed_predictions

    assert data.recordings is not None and data.starts is not None
    return smoothed_predictions(proba, data.labels, data.recordings, data.starts, data.folds, list(data.classes))


# --- data ---------------------------------------------------------------------------------


@dataclass
class Dataset:
    """Windows (n, samples, 6) with labels, and the folds that score them."""

    name: str
    windows: np.ndarray
    labels: np.ndarray
    rate_hz: float
    folds: list[tuple[np.ndarray, np.ndarray]]  # (train rows, test rows)
    scheme: str
    subjects: np.ndarray | None = None
    recordings: np.ndarray | None = None
    starts: np.ndarray | None = None
    contexts: np.ndarray | None = None  # (n, 6) per window, from posture's windowing; None: all unknown
    classes: np.ndarray = field(init=False)
    scored: np.ndarray = field(init=False)  # rows in some test fold, in fold order

    def __post_init__(self) -> None:
        self.classes = np.unique(self.labels)
        self.scored = np.concatenate([test for _, test in self.folds])


def load_hapt_windows(root: Path) -> tuple[np.ndarray, ...]:
    """HAPT through posture's own reader and windowing, as `posture ingest` + `posture train` see it.

    Returns windows float32 (n, 100, 6), labels, subjects, recordings, starts (s) and the
    context row each window saw (features.stream_context, computed over the whole recording).
    """
    from features.spec import WindowSpec
    from pipelines.dataset import recordings_to_frame
    from pipelines.readers import read_recordings
    from pipelines.windowing import window_dataset

    recordings = read_recordings(root)
    samples = sum(len(r.frame) for r in recordings)
    if root.resolve() == DEFAULT_HAPT.resolve() and (len(recordings), samples) != (42, 797_484):
        raise SystemExit(
            f"the shared HAPT copy reads as {len(recordings)} recordings, {samples} samples; "
            "its README says 42 and 797,484"
        )
    frame = recordings_to_frame(recordings)  # 50 Hz already: ingest's resampling is a no-op
    w = window_dataset(frame, WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=1.0, channels=tuple(ALL_CHANNELS)))
    return w.windows, w.labels.astype(str), w.groups.astype(str), w.recordings.astype(str), w.starts_s, w.contexts


def hapt_dataset(root: Path, quick: bool) -> Dataset:
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    windows, labels, subjects, recordings, starts, contexts = load_hapt_windows(root)
    splitter = GroupKFold(n_splits=5) if quick else LeaveOneGroupOut()
    folds = list(splitter.split(windows, labels, groups=subjects))
    scheme = "5-fold GroupKFold by subject" if quick else f"leave-one-subject-out ({len(folds)} folds)"
    return Dataset("HAPT", windows, labels, 50.0, folds, scheme, subjects, recordings, starts, contexts)


def basic_motions_dataset() -> Dataset:
    from sktime.datasets import load_basic_motions

    x_train, y_train = load_basic_motions(split="train", return_type="numpy3D")  # (n, 6, 100)
    x_test, y_test = load_basic_motions(split="test", return_type="numpy3D")
    windows = np.concatenate([x_train, x_test]).transpose(0, 2, 1).astype(np.float32)
    rows = np.arange(len(windows))
    folds = [(rows[: len(x_train)], rows[len(x_train) :])]
    labels = np.concatenate([y_train, y_test]).astype(str)
    return Dataset("BasicMotions", windows, labels, 10.0, folds, "official train/test split")


# --- methods ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureMethod:
    """Featurize all windows once (``prepare`` untimed, ``extract`` timed), then a model per fold."""

    key: str
    title: str
    extract: Callable[[Any, tuple[str, ...], float, np.ndarray], np.ndarray]  # prepared, channels, rate, contexts
    make_model: Callable[[], Any]
    prepare: Callable[[np.ndarray], Any] = lambda windows: windows


def rf100() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=N_JOBS, class_weight="balanced_subsample")


def tsfresh_method(efficient: bool) -> FeatureMethod:
    import pandas as pd
    import tsfresh
    from tsfresh.feature_extraction import EfficientFCParameters, MinimalFCParameters
    from tsfresh.utilities.dataframe_functions import impute

    logging.getLogger("tsfresh").setLevel(logging.ERROR)  # "matrix_profile unavailable" at import
    parameters = EfficientFCParameters() if efficient else MinimalFCParameters()

    def to_long(windows: np.ndarray) -> pd.DataFrame:
        n, samples, _ = windows.shape
        frame = pd.DataFrame(windows.reshape(n * samples, -1).astype(np.float64), columns=list(ALL_CHANNELS))
        frame.insert(0, "id", np.repeat(np.arange(n), samples))
        frame.insert(1, "time", np.tile(np.arange(samples), n))
        return frame

    def extract(frame: pd.DataFrame, channels: tuple[str, ...], rate_hz: float, contexts: np.ndarray) -> np.ndarray:
        table = tsfresh.extract_features(
            frame,
            column_id="id",
            column_sort="time",
            default_fc_parameters=parameters,
            n_jobs=0,
            disable_progressbar=True,
        )
        return impute(table).to_numpy(dtype=np.float64)

    kind = "Efficient" if efficient else "Minimal"
    key = "tsfresh-efficient" if efficient else "tsfresh"
    return FeatureMethod(key, f"tsfresh {tsfresh.__version__} {kind} + RF100", extract, rf100, to_long)


def seglearn_method() -> FeatureMethod:
    import seglearn
    from seglearn.transform import FeatureRep

    def extract(windows: np.ndarray, channels: tuple[str, ...], rate_hz: float, contexts: np.ndarray) -> np.ndarray:
        return FeatureRep().fit_transform(windows)

    def prepare(windows: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(windows, dtype=np.float64)

    return FeatureMethod("seglearn", f"seglearn {seglearn.__version__} FeatureRep + RF100", extract, rf100, prepare)


def imu_stats_method() -> FeatureMethod:
    from features.extract import FEATURE_SET_VERSION, extract_features
    from pipelines.train import make_forest

    def forest() -> Any:
        return make_forest(100, 0).set_params(n_jobs=N_JOBS)

    def extract(windows: np.ndarray, channels: tuple[str, ...], rate_hz: float, contexts: np.ndarray) -> np.ndarray:
        return extract_features(windows, channels, rate_hz)

    return FeatureMethod("imu-stats", f"posture {FEATURE_SET_VERSION} + make_forest", extract, forest)


def posture_default_method() -> FeatureMethod:
    from features.feature_sets import DEFAULT_FEATURE_SET

    def extract(windows: np.ndarray, channels: tuple[str, ...], rate_hz: float, contexts: np.ndarray) -> np.ndarray:
        return posture_default_features(windows, contexts, rate_hz)

    return FeatureMethod(
        "posture-default", f"posture default ({DEFAULT_FEATURE_SET} + make_forest)", extract, posture_default_forest
    )


@dataclass
class MethodResult:
    key: str
    title: str
    n_features: int
    featurize_s: float
    windows_per_s: float
    cv_s: float  # fitting + predicting across all folds
    accuracy: float
    macro_f1: float
    per_subject: dict[str, float] | None = None


def score(data: Dataset, predicted: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-subject accuracy of ``predicted`` (for ``data.scored`` rows)."""
    from sklearn.metrics import f1_score

    truth = data.labels[data.scored]
    figures: dict[str, Any] = {
        "accuracy": float(np.mean(predicted == truth)),
        "macro_f1": float(f1_score(truth, predicted, average="macro")),
    }
    if data.subjects is not None:
        subjects = data.subjects[data.scored]
        figures["per_subject"] = {
            s: float(np.mean(predicted[subjects == s] == truth[subjects == s])) for s in np.unique(subjects)
        }
    return figures


def timed_featurize(method: FeatureMethod, data: Dataset) -> tuple[np.ndarray, float]:
    channels = tuple(ALL_CHANNELS)
    contexts = data.contexts if data.contexts is not None else unknown_contexts(len(data.windows))
    method.extract(method.prepare(data.windows[:8]), channels, data.rate_hz, contexts[:8])  # warm-up: JIT, caches
    prepared = method.prepare(data.windows)
    started = time.perf_counter()
    features = method.extract(prepared, channels, data.rate_hz, contexts)
    return features, time.perf_counter() - started


def cross_val_proba(
    features: np.ndarray, data: Dataset, make_model: Callable[[], Any], copies: list[np.ndarray] | None = None
) -> tuple[np.ndarray, float]:
    """Out-of-fold class probabilities (all rows in row order, columns ``data.classes``); each
    fold also trains on its rows of ``copies`` (features of rotated copies), when given."""
    proba = np.zeros((len(data.labels), len(data.classes)))
    started = time.perf_counter()
    for train, test in data.folds:
        x = np.vstack([features[train], *(c[train] for c in copies or [])])
        model = make_model().fit(x, np.concatenate([data.labels[train]] * (1 + len(copies or []))))
        proba[np.ix_(test, np.searchsorted(data.classes, model.classes_))] = model.predict_proba(features[test])
    return proba, time.perf_counter() - started


def run_feature_method(method: FeatureMethod, data: Dataset) -> list[MethodResult]:
    features, seconds = timed_featurize(method, data)
    started = time.perf_counter()
    augmented = method.key == "posture-default" and data.contexts is not None  # HAPT: as `posture train` does
    copies = posture_copies(data) if augmented else None
    copies_s = time.perf_counter() - started
    proba, cv_s = cross_val_proba(features, data, method.make_model, copies)
    cv_s += copies_s
    common = {"n_features": features.shape[1], "featurize_s": seconds, "windows_per_s": len(features) / seconds}
    strict = data.classes[proba.argmax(1)][data.scored]
    results = [MethodResult(method.key, method.title, cv_s=cv_s, **common, **score(data, strict))]
    if method.key == "posture-default" and data.recordings is not None and data.starts is not None:
        started = time.perf_counter()
        predicted = posture_smoothed(proba, data)[data.scored]
        cv_s += time.perf_counter() - started
        title = "posture default + forward filter"
        results.append(MethodResult("posture-default-smoothed", title, cv_s=cv_s, **common, **score(data, predicted)))
    return results


def run_minirocket(data: Dataset, kernels: int) -> list[MethodResult]:
    import aeon
    from aeon.transformations.collection.convolution_based import MiniRocket
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.preprocessing import StandardScaler

    x = np.ascontiguousarray(data.windows.transpose(0, 2, 1))  # aeon: (n, channels, timepoints)
    MiniRocket(n_kernels=kernels, random_state=0).fit(x[:8]).transform(x[:8])  # warm-up: numba
    transform = MiniRocket(n_kernels=kernels, n_jobs=1, random_state=0).fit(x)
    started = time.perf_counter()
    n_features = transform.transform(x).shape[1]
    seconds = time.perf_counter() - started

    predicted = np.empty(len(data.labels), dtype=data.labels.dtype)
    started = time.perf_counter()
    for train, test in data.folds:
        transform = MiniRocket(n_kernels=kernels, n_jobs=N_JOBS, random_state=0).fit(x[train])
        scaler = StandardScaler(with_mean=False)
        ridge = RidgeClassifierCV(alphas=np.logspace(-3, 3, 10))
        ridge.fit(scaler.fit_transform(transform.transform(x[train])), data.labels[train])
        predicted[test] = ridge.predict(scaler.transform(transform.transform(x[test])))
    cv_s = time.perf_counter() - started
    title = f"MiniRocket (aeon {aeon.__version__}, n_kernels={kernels:,}) + ridge"
    figures = score(data, predicted[data.scored])
    return [MethodResult("minirocket", title, n_features, seconds, len(x) / seconds, cv_s, **figures)]


METHOD_KEYS = ("minirocket", "tsfresh", "seglearn", "imu-stats", "posture-default", "tsfresh-efficient")
FEATURE_METHODS: dict[str, Callable[[], FeatureMethod]] = {
    "tsfresh": lambda: tsfresh_method(efficient=False),
    "tsfresh-efficient": lambda: tsfresh_method(efficient=True),
    "seglearn": seglearn_method,
    "imu-stats": imu_stats_method,
    "posture-default": posture_default_method,
}


def run_method(key: str, data: Dataset, args: argparse.Namespace) -> list[MethodResult]:
    if key == "minirocket":
        return run_minirocket(data, args.minirocket_kernels)
    return run_feature_method(FEATURE_METHODS[key](), data)


# --- report -------------------------------------------------------------------------------


def subject_spread(result: MethodResult) -> tuple[str, str]:
    if not result.per_subject:
        return "-", "-"
    values = np.array(list(result.per_subject.values()))
    worst = sorted(result.per_subject.items(), key=lambda item: item[1])[:3]
    spread = f"{values.min():.3f} / {np.median(values):.3f} / {values.max():.3f}"
    return spread, ", ".join(f"{s} {a:.3f}" for s, a in worst)


def results_table(data: Dataset, results: list[MethodResult]) -> Table:
    table = Table(title=f"{data.name}: {len(data.labels):,} windows {data.windows.shape[1:]}, {data.scheme}")
    for column in (
        "method",
        "features",
        "windows/s",
        "featurize s",
        "CV fit+predict s",
        "accuracy",
        "macro-F1",
        "subject acc min / median / max",
        "worst 3 subjects",
    ):
        table.add_column(column, justify="left" if column in ("method", "worst 3 subjects") else "right")
    for r in results:
        table.add_row(
            r.title,
            str(r.n_features),
            f"{r.windows_per_s:,.0f}",
            f"{r.featurize_s:.2f}",
            f"{r.cv_s:.1f}",
            f"{r.accuracy:.4f}",
            f"{r.macro_f1:.4f}",
            *subject_spread(r),
        )
    return table


def ratios(results: list[MethodResult]) -> list[dict[str, Any]]:
    """Posture default against each peer: accuracy difference (points) and speed ratio."""
    by_key = {r.key: r for r in results}
    ours, smoothed = by_key.get("posture-default"), by_key.get("posture-default-smoothed")
    if ours is None:
        return []
    rows = []
    for peer in (r for r in results if not r.key.startswith("posture-default")):
        rows.append(
            {
                "peer": peer.key,
                "accuracy_points": 100 * (ours.accuracy - peer.accuracy),
                "smoothed_accuracy_points": None if smoothed is None else 100 * (smoothed.accuracy - peer.accuracy),
                "macro_f1_points": 100 * (ours.macro_f1 - peer.macro_f1),
                "speed_ratio": ours.windows_per_s / peer.windows_per_s,
            }
        )
    return rows


def ratios_table(data: Dataset, rows: list[dict[str, Any]], titles: dict[str, str]) -> Table:
    table = Table(title=f"{data.name}: posture default against each peer")
    for column in ("peer", "accuracy, points", "smoothed accuracy, points", "macro-F1, points", "windows/s ratio"):
        table.add_column(column, justify="left" if column == "peer" else "right")
    for row in rows:
        smoothed = row["smoothed_accuracy_points"]
        table.add_row(
            titles[row["peer"]],
            f"{row['accuracy_points']:+.2f}",
            "-" if smoothed is None else f"{smoothed:+.2f}",
            f"{row['macro_f1_points']:+.2f}",
            f"{row['speed_ratio']:,.2f}x",
        )
    return table


# --- main ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hapt", type=Path, default=DEFAULT_HAPT, help="the HAPT folder (README.md, activity_labels.txt, RawData/)"
    )
    parser.add_argument(
        "--methods",
        default="minirocket,tsfresh,seglearn,imu-stats,posture-default",
        help=f"comma-separated subset of {', '.join(METHOD_KEYS)}",
    )
    parser.add_argument("--with-tsfresh-efficient", action="store_true", help="add tsfresh Efficient (~1 h on HAPT)")
    parser.add_argument("--quick", action="store_true", help="5-fold GroupKFold by subject instead of LOSO")
    parser.add_argument(
        "--minirocket-kernels", type=int, default=10_000, help="MiniRocket size (aeon's default 10,000)"
    )
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.with_tsfresh_efficient and "tsfresh-efficient" not in args.methods:
        args.methods.append("tsfresh-efficient")
    unknown = sorted(set(args.methods) - set(METHOD_KEYS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {', '.join(METHOD_KEYS)}")
    return args


def load_datasets(args: argparse.Namespace, console: Console) -> list[Dataset]:
    if not (args.hapt / "RawData" / "labels.txt").is_file():
        console.print(
            f"[red]HAPT not found: expected its RawData layout at {args.hapt} "
            f"(RawData/labels.txt, acc_expNN_userMM.txt, ...); pass --hapt DIR[/red]"
        )
        raise SystemExit(2)
    datasets = [hapt_dataset(args.hapt, args.quick)]
    try:
        datasets.append(basic_motions_dataset())
    except Exception as err:  # noqa: BLE001 - the smoke test is optional; HAPT is not
        console.print(f"[yellow]BasicMotions unavailable ({type(err).__name__}: {err}): skipped[/yellow]")
    return datasets


def run_dataset(data: Dataset, args: argparse.Namespace, console: Console) -> tuple[list[MethodResult], dict[str, str]]:
    results: list[MethodResult] = []
    failures: dict[str, str] = {}
    for key in args.methods:
        started = time.perf_counter()
        try:
            with console.status(f"{data.name}: {key} ..."):
                new = run_method(key, data, args)
        except ImportError as err:
            failures[key] = f"{type(err).__name__}: {err}"
            console.print(f"[yellow]{data.name}: {key} unavailable: {failures[key]}[/yellow]")
            continue
        results += new
        for r in new:
            console.print(
                f"{data.name}: {r.title}: accuracy {r.accuracy:.4f}, macro-F1 {r.macro_f1:.4f}, "
                f"{r.windows_per_s:,.0f} windows/s ({time.perf_counter() - started:.0f} s)"
            )
    return results, failures


def environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for package in ("numpy", "scikit-learn", "aeon", "tsfresh", "seglearn", "sktime"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {"cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "versions": versions}


def main() -> None:
    args = parse_args()
    console = Console(width=200)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "start": environment(),
        "datasets": {},
    }
    console.print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; methods {', '.join(args.methods)}")
    for data in load_datasets(args, console):
        console.print(f"{data.name}: {len(data.labels):,} windows, {len(data.classes)} classes, {data.scheme}")
        results, failures = run_dataset(data, args, console)
        rows = ratios(results)
        console.print(results_table(data, results))
        if rows:
            console.print(ratios_table(data, rows, {r.key: r.title for r in results}))
        report["datasets"][data.name] = {
            "n_windows": len(data.labels),
            "scheme": data.scheme,
            "results": [asdict(r) for r in results],
            "ratios": rows,
            "unavailable": failures,
        }
    report["wall_s"] = time.perf_counter() - started
    report["end_load_average"] = os.getloadavg()
    console.print(f"total {report['wall_s']:.0f} s; load average now {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        console.print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
