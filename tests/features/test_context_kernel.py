"""The compiled stream context and forward filter against the plain numpy code they replaced:
bit for bit, for any number of windows per call, across saved and restored state.

One step is pinned rather than taken from numpy: a 3-vector's length. The kernels compute it
as one chain of fused multiply-adds, the same on every CPU. numpy's ``v @ v`` is OpenBLAS's
ddot, whose kernel depends on the CPU: on the Intel machines the kernels were written on it
was that same chain, while on an AMD EPYC (Haswell kernel) it is the plain sum of squares.
The plain code therefore takes its lengths from ``fused_length`` (exact arithmetic), and
numpy's own length is checked to be within two ulps of it."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.context_kernel import _norm
from features.feature_sets import window_contexts
from features.last_posture import CHANGE_MIN_DEG, MIN_STILL_S, REMEMBERED, STILL_STD, LastPostureTracker
from features.smoothing import ForwardFilter
from features.spec import WindowSpec
from features.stream_context import StreamContext
from features.upright import MEMORY_S, MOVING_STD, SUSTAINED_S, UprightTracker, gravity_and_spread_of
from features.windows import sliding_windows

GYRO_FIRST = ("gx", "gy", "gz", "ax", "ay", "az")


def fused(a: float, b: float, c: float) -> float:
    """``a * b + c`` rounded once, in exact arithmetic (math.fma is Python 3.13's)."""
    return float(Fraction(a) * Fraction(b) + Fraction(c))


def fused_length(v: np.ndarray) -> float:
    """A 3-vector's length as one chain of fused multiply-adds: v0², then + v1², then + v2²."""
    x, y, z = (float(value) for value in v)
    return math.sqrt(fused(z, z, fused(y, y, x * x)))


class PlainUpright:
    """features.upright's tracker as it was in numpy."""

    def __init__(self) -> None:
        self.direction, self.moving_windows, self.moving_run = np.zeros(3), 0, 0

    def references(self, gravity: np.ndarray, moving: np.ndarray, hop_s: float) -> np.ndarray:
        sustained = max(1, math.ceil(SUSTAINED_S / hop_s - 1e-9))
        memory = max(1, round(MEMORY_S / hop_s))
        out = np.empty((len(gravity), 3))
        for i in range(len(gravity)):
            norm = fused_length(self.direction)
            out[i] = self.direction / norm if self.moving_windows and norm > 0 else np.full(3, np.nan)
            self.moving_run = self.moving_run + 1 if moving[i] else 0
            if self.moving_run >= sustained:
                self.moving_windows += 1
                weight = 1.0 / min(self.moving_windows, memory)
                self.direction = self.direction + weight * (gravity[i] - self.direction)
        return out

    def state(self) -> dict[str, object]:
        direction = self.direction.tolist()
        return {"direction": direction, "moving_windows": self.moving_windows, "moving_run": self.moving_run}


class PlainLastPosture:
    """features.last_posture's tracker as it was in numpy."""

    def __init__(self) -> None:
        self.postures: list[list[float]] = []
        self.run_sum, self.run_windows = np.zeros(3), 0

    def references(self, gravity: np.ndarray, spread: np.ndarray, hop_s: float) -> np.ndarray:
        min_run = max(1, math.ceil(MIN_STILL_S / hop_s - 1e-9))
        change = math.cos(math.radians(CHANGE_MIN_DEG))
        out = np.full((len(gravity), 3), np.nan)
        for i in range(len(gravity)):
            for posture in reversed(self.postures):
                if posture[0] * gravity[i, 0] + posture[1] * gravity[i, 1] + posture[2] * gravity[i, 2] < change:
                    out[i] = posture
                    break
            if spread[i] < STILL_STD:
                self.run_sum = self.run_sum + gravity[i]
                self.run_windows += 1
            else:
                norm = fused_length(self.run_sum)
                if self.run_windows >= min_run and norm > 0:
                    self.postures = [*self.postures, (self.run_sum / norm).tolist()][-REMEMBERED:]
                self.run_sum, self.run_windows = np.zeros(3), 0
        return out

    def state(self) -> dict[str, object]:
        return {"postures": self.postures, "run_sum": self.run_sum.tolist(), "run_windows": self.run_windows}


def plain_contexts(acc_windows: np.ndarray, hop_s: float) -> tuple[np.ndarray, PlainUpright, PlainLastPosture]:
    """The context rows of a whole stream as numpy computed them, and the trackers after it."""
    gravity, spread = gravity_and_spread_of(acc_windows)
    upright, last = PlainUpright(), PlainLastPosture()
    rows = np.hstack([upright.references(gravity, spread > MOVING_STD, hop_s), last.references(gravity, spread, hop_s)])
    return rows, upright, last


def posture_stream(seed: int, n_windows: int, spec: WindowSpec) -> np.ndarray:
    """Samples (n, 6 channels of ``spec``) of bouts: still, fidgeting or walking, each with its own
    gravity direction, so that both trackers learn, forget and remember postures."""
    rng = np.random.default_rng(seed)
    hop, rate = spec.hop_samples, spec.rate_hz
    bouts = []
    for _ in range(n_windows // 3 + 1):
        up = rng.normal(size=3)
        up /= np.linalg.norm(up)
        kind, length = rng.integers(3), hop * int(rng.integers(1, 12))
        acc = np.tile(9.8 * up, (length, 1)) + rng.normal(scale=(0.02, 0.3, 0.05)[kind], size=(length, 3))
        if kind == 2:  # steps along the upright
            acc += (3.0 * np.sin(2 * np.pi * 2.0 * np.arange(length) / rate))[:, None] * up
        bouts.append(np.hstack([rng.normal(scale=0.1, size=(length, 3)), acc]))
    samples = np.vstack(bouts)[: spec.window_samples + hop * (n_windows - 1)].astype(np.float32)
    return samples[:, [GYRO_FIRST.index(c) for c in spec.channels]]


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


def json_round_trip(state: dict[str, object]) -> dict[str, object]:
    """What a Redis snapshot gives back."""
    return json.loads(json.dumps(state))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    hop_s=st.sampled_from([0.5, 1.0, 2.0]),
    channels=st.sampled_from([GYRO_FIRST, ("ax", "ay", "az"), ("az", "gx", "ax", "gy", "ay", "gz")]),
    cuts=st.lists(st.integers(1, 60), min_size=1, max_size=12),
)
def test_contexts_equal_the_numpy_code_in_any_chunks_and_across_restores(
    seed: int, hop_s: float, channels: tuple[str, ...], cuts: list[int]
) -> None:
    spec = WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=hop_s, channels=channels)
    windows = sliding_windows(posture_stream(seed, 300, spec), spec.window_samples, spec.hop_samples)
    acc = windows[:, :, [channels.index(c) for c in ("ax", "ay", "az")]]
    want, upright, last = plain_contexts(acc, hop_s)
    assert_same_bits(window_contexts(windows, spec), want)  # a whole recording, a strided view
    context, parts, start = StreamContext(), [], 0
    for cut in cuts * (len(windows) // sum(cuts) + 1):  # a live stream: frames of any size, a restore after each
        parts.append(window_contexts(np.ascontiguousarray(windows[start : start + cut]), spec, context))
        context, start = StreamContext.restore(json_round_trip(context.state())), start + cut
    assert_same_bits(np.vstack(parts), want)
    assert json.dumps(context.state()) == json.dumps({"upright": upright.state(), "last_posture": last.state()})


def test_the_streams_exercise_every_branch_of_both_trackers() -> None:
    spec = WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=2.0)  # MEMORY_S in 60 windows
    windows = sliding_windows(posture_stream(0, 300, spec), spec.window_samples, spec.hop_samples)
    _, upright, last = plain_contexts(windows[:, :, :3], spec.hop_s)  # the default channels: acc first
    assert upright.moving_windows > MEMORY_S / spec.hop_s  # the exponential mean, not only the plain one
    assert len(last.postures) == REMEMBERED  # and older postures forgotten (next test)


def test_each_tracker_alone_equals_its_numpy_code() -> None:
    rng = np.random.default_rng(5)
    gravity = rng.normal(size=(5, 3))[rng.integers(5, size=400)] + rng.normal(scale=0.03, size=(400, 3))
    gravity /= np.linalg.norm(gravity, axis=1, keepdims=True)  # 5 postures, each within a few degrees
    spread = rng.choice([0.01, 0.5, 3.0], size=400, p=[0.5, 0.2, 0.3])
    upright, plain_upright = UprightTracker(), PlainUpright()
    last, plain_last = LastPostureTracker(), PlainLastPosture()
    for chunk in np.array_split(np.arange(400), 37):
        moving = spread[chunk] > MOVING_STD
        assert_same_bits(
            upright.references(gravity[chunk], moving, 1.0), plain_upright.references(gravity[chunk], moving, 1.0)
        )
        assert_same_bits(
            last.references(gravity[chunk], spread[chunk], 1.0),
            plain_last.references(gravity[chunk], spread[chunk], 1.0),
        )
    assert json.dumps(upright.state()) == json.dumps(plain_upright.state())
    assert json.dumps(last.state()) == json.dumps(plain_last.state())
    assert last.postures == plain_last.postures and len(last.postures) == REMEMBERED


def test_a_three_vector_length_is_one_fused_chain_within_two_ulps_of_numpys() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(20000, 3)) * 10.0 ** rng.integers(-3, 4, size=(20000, 1))
    for v in vectors:
        length = _norm(v)
        assert length == fused_length(v)  # the same bits on every CPU
        assert abs(length - float(np.sqrt(v @ v))) <= 2 * math.ulp(length)  # numpy's, whatever its BLAS kernel


def plain_step(forward: ForwardFilter, belief: np.ndarray | None, probabilities: np.ndarray) -> np.ndarray:
    """features.smoothing's step as it was in numpy."""
    emission = np.asarray(probabilities, dtype=np.float64) + forward.floor
    prior = emission if belief is None else (belief @ forward.transitions) * emission
    total = prior.sum()
    return prior / total if total > 0 else np.full(len(emission), 1.0 / len(emission))


@pytest.mark.parametrize("n_classes", [1, 2, 3, 6, 7, 8, 9, 12, 16, 17, 31, 128, 129, 300])
def test_the_forward_filter_equals_its_numpy_code(n_classes: int) -> None:
    rng = np.random.default_rng(n_classes)
    raw = rng.random((n_classes, n_classes)) ** 4
    forward = ForwardFilter(raw / raw.sum(axis=1, keepdims=True), floor=0.05)
    probabilities = rng.dirichlet(np.full(n_classes, 0.3), size=200)
    probabilities[50] = 0.0  # with floor 0: a zero total, the uniform belief
    for floor in (0.05, 0.0):
        forward = ForwardFilter(forward.transitions, floor)
        got = want = None
        for row in probabilities:
            got, want = forward.step(got, row), plain_step(forward, want, row)
            assert_same_bits(got, want)
        assert_same_bits(forward.run(probabilities)[-1], want)
