"""featurize pinned bit for bit on real windows, and the numpy arithmetic its kernels replay.

``data/featurize_pinned.npz`` holds 12 windows (100 x 6, float32, 50 Hz) cut from the UCI HAPT
subset in tests/data/hapt (still, walking and transitions; 4 before the wearer's upright is
known), their stream contexts, and the features that featurize gave them at commit 2922619,
before the signal preparation moved into numba. A forest splits on these values, so a change
in any bit of them is a change of model input, not noise.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from features.feature_sets import IMU_STATS_1, IMU_STATS_4, featurize
from features.gravity_kernel import gravity_frame, tilt_from_reference
from features.kernel import fill_features, pairwise_plan, prepare_signals
from features.spec import WindowSpec

PINNED = Path(__file__).parent / "data" / "featurize_pinned.npz"


@pytest.fixture(scope="module")
def pinned() -> dict[str, np.ndarray]:
    with np.load(PINNED) as data:
        return dict(data)


@pytest.mark.parametrize("version", [IMU_STATS_4, IMU_STATS_1])
def test_featurize_gives_the_pinned_features_whatever_the_batching(pinned, version: str) -> None:
    spec = WindowSpec(feature_set_version=version)
    windows, contexts = pinned["windows"], pinned["contexts"]
    expected = pinned[version.replace("-", "_")]
    np.testing.assert_array_equal(featurize(windows, spec, contexts), expected)
    one_by_one = [featurize(windows[i : i + 1], spec, contexts[i : i + 1]) for i in range(len(windows))]
    np.testing.assert_array_equal(np.vstack(one_by_one), expected)
    as_float64 = featurize(windows.astype(np.float64), spec, contexts)  # the same values, another dtype
    np.testing.assert_array_equal(as_float64, expected)


def test_threads_featurizing_at_once_get_their_own_results(pinned) -> None:
    """Each thread has its own scratch buffers: two threads with other window lengths interleave."""
    spec = WindowSpec(feature_set_version=IMU_STATS_4)
    short = WindowSpec(feature_set_version=IMU_STATS_4, window_s=1.0, hop_s=0.5)
    windows, contexts = pinned["windows"], pinned["contexts"]
    expected_short = featurize(windows[:, :50], short, contexts)
    failures: list[str] = []

    def work(spec: WindowSpec, cut: int, expected: np.ndarray) -> None:
        for _ in range(30):
            if not np.array_equal(featurize(windows[:, :cut], spec, contexts), expected):
                failures.append(f"{cut} samples")

    threads = [
        threading.Thread(target=work, args=(spec, 100, pinned["imu_stats_4"])),
        threading.Thread(target=work, args=(short, 50, expected_short)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_batch_of_any_size_runs_the_kernels_the_warm_up_window_loaded(pinned) -> None:
    """The server warms up on one window; a larger batch passing arrays of another layout
    (a column slice is C-contiguous for one row only) would load or compile new kernels mid-stream."""
    spec = WindowSpec(feature_set_version=IMU_STATS_4)
    windows, contexts = pinned["windows"], pinned["contexts"]
    kernels = (fill_features, prepare_signals, gravity_frame, tilt_from_reference)
    featurize(windows[:1], spec, contexts[:1])
    loaded = [len(kernel.signatures) for kernel in kernels]
    featurize(windows, spec, contexts)
    assert [len(kernel.signatures) for kernel in kernels] == loaded


@pytest.mark.parametrize("n_samples", [2, 7, 8, 100, 127, 128, 129, 250, 1000, 1003])
def test_prepared_signals_are_numpys_transpose_magnitudes_and_means(n_samples: int) -> None:
    """The mean replays numpy's pairwise sum (blocks of 128 summed eight ways, longer rows halved);
    a random float64 window makes every rounding of another order show."""
    windows = np.random.default_rng(n_samples).normal(size=(3, n_samples, 6)) * [1.0, 1e3, 1e-3, 10.0, 1.0, 3.0]
    triads = np.array([[0, 1, 2], [3, 4, 5]], dtype=np.intp)
    x = np.empty((3, 8, n_samples))
    mean = np.empty((3, 8))
    d = np.empty_like(x)
    prepare_signals(windows, triads, pairwise_plan(n_samples), x, mean, d)

    expected = np.empty_like(x)
    expected[:, :6] = windows.transpose(0, 2, 1)
    triad_signals = expected[:, triads]
    expected[:, 6:] = np.sqrt(np.einsum("ntks,ntks->nts", triad_signals, triad_signals))
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(mean, expected.sum(axis=-1) / n_samples)
    np.testing.assert_array_equal(d, expected - mean[..., None])


def test_pairwise_plan_halves_long_rows_into_blocks_of_at_most_128() -> None:
    assert pairwise_plan(100).tolist() == [[0, 100]]
    assert pairwise_plan(128).tolist() == [[0, 128]]
    # 300 -> 144 (half, down to a multiple of 8) + 156; 144 -> 72 + 72; 156 -> 72 + 84
    add = [-1, -1]
    assert pairwise_plan(300).tolist() == [[0, 72], [72, 72], add, [144, 72], [216, 84], add, add]
