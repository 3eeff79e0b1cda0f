"""The stream trackers' window-by-window updates, compiled with numba.

``upright_references`` and ``last_posture_references`` advance ``features.upright`` and
``features.last_posture`` over n windows; ``context_rows`` fuses both with the gravity kernel
into a stream's context rows (``features.stream_context``). A live session advances its
context one window at a time, where numpy's fixed cost per call (~30 calls a window) outweighed
the arithmetic. Measured (2026-12, ``window_contexts``, HAPT windows of 100 x 6): one window
15.2 µs in numpy, 2.2 µs compiled; 50 windows 288 and 16 µs. The first call in a process with no
numba cache compiles for ~1.8 s (numpy's version, its gravity kernel only: ~1.3 s). The trackers
keep their state in small arrays that these kernels update in place.

The rows are bit-identical to the numpy code these kernels replaced: each value takes the same
operations in the same order. The one exception is a 3-vector's length: ``_norm`` computes it
as one chain of fused multiply-adds, the same bits on every CPU. numpy's ``v @ v`` is
OpenBLAS's ddot, whose kernel depends on the CPU: on the Intel machines this was written on it
was the same chain, on an AMD EPYC it is the plain sum of squares, up to 2 ulps away
(tests/features/test_context_kernel.py). Training and serving both take the kernels' lengths.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from features.gravity_kernel import gravity_and_spread


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (llvm.fma is fused on every target)."""

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return types.float64(types.float64, types.float64, types.float64), codegen


@njit(cache=True, nogil=True)
def _norm(v: np.ndarray) -> float:
    """The length of a 3-vector, as ``np.sqrt(v @ v)``."""
    return math.sqrt(_fma(v[2], v[2], _fma(v[1], v[1], v[0] * v[0])))  # type: ignore[call-arg]  # numba >= 0.64 types intrinsic calls with typingctx


@njit(cache=True, nogil=True)
def _upright_step(
    g: np.ndarray, moving: bool, sustained: int, memory: int, direction: np.ndarray, counts: np.ndarray, out: np.ndarray
) -> None:
    """``out`` (3,): the upright before this window; then the window's gravity ``g`` counts
    towards ``direction`` when it ends ``sustained`` moving windows. ``counts``: the moving
    windows counted, the moving run."""
    norm = _norm(direction)
    for k in range(3):
        out[k] = direction[k] / norm if counts[0] and norm > 0 else np.nan
    counts[1] = counts[1] + 1 if moving else 0
    if counts[1] >= sustained:
        counts[0] += 1
        weight = 1.0 / min(counts[0], memory)
        for k in range(3):
            direction[k] = direction[k] + weight * (g[k] - direction[k])


@njit(cache=True, nogil=True)
def _last_posture_step(
    g: np.ndarray,
    still: bool,
    min_run: int,
    change: float,
    postures: np.ndarray,
    run_sum: np.ndarray,
    counts: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out`` (3,): the newest remembered posture (``postures``' first ``counts[0]`` rows, oldest
    first) whose cosine to ``g`` is below ``change``, NaN if none; then a still window joins the
    run (``run_sum``, ``counts[1]`` windows) and any other ends it."""
    found = -1
    for p in range(counts[0] - 1, -1, -1):
        if postures[p, 0] * g[0] + postures[p, 1] * g[1] + postures[p, 2] * g[2] < change:
            found = p
            break
    for k in range(3):
        out[k] = postures[found, k] if found >= 0 else np.nan
    if still:
        for k in range(3):
            run_sum[k] = run_sum[k] + g[k]
        counts[1] += 1
        return
    norm = _norm(run_sum)
    if counts[1] >= min_run and norm > 0:
        if counts[0] == len(postures):  # full: forget the oldest
            for p in range(len(postures) - 1):
                for k in range(3):
                    postures[p, k] = postures[p + 1, k]
        else:
            counts[0] += 1
        for k in range(3):
            postures[counts[0] - 1, k] = run_sum[k] / norm
    for k in range(3):
        run_sum[k] = 0.0
    counts[1] = 0


@njit(cache=True, nogil=True)
def upright_references(
    gravity: np.ndarray, moving: np.ndarray, sustained: int, memory: int, direction: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """The upright each window (gravity (n, 3), moving (n,)) sees, advancing the state."""
    out = np.empty((len(gravity), 3))
    for i in range(len(gravity)):
        _upright_step(gravity[i], moving[i], sustained, memory, direction, counts, out[i])
    return out


@njit(cache=True, nogil=True)
def last_posture_references(
    gravity: np.ndarray,
    still: np.ndarray,
    min_run: int,
    change: float,
    postures: np.ndarray,
    run_sum: np.ndarray,
    counts: np.ndarray,
) -> np.ndarray:
    """The posture each window (gravity (n, 3), still (n,)) came from, advancing the state."""
    out = np.empty((len(gravity), 3))
    for i in range(len(gravity)):
        _last_posture_step(gravity[i], still[i], min_run, change, postures, run_sum, counts, out[i])
    return out


@njit(cache=True, nogil=True)
def context_rows(
    windows: np.ndarray,
    acc: np.ndarray,
    moving_std: float,
    sustained: int,
    memory: int,
    direction: np.ndarray,
    upright_counts: np.ndarray,
    still_std: float,
    min_run: int,
    change: float,
    postures: np.ndarray,
    run_sum: np.ndarray,
    posture_counts: np.ndarray,
) -> np.ndarray:
    """(n, 6): the upright, then the last posture, of each window (n, t, channels; ``acc`` the
    accelerometer's columns), advancing both trackers' state."""
    unit, spread = np.empty((len(windows), 3)), np.empty(len(windows))
    gravity_and_spread(windows, acc, unit, spread)
    out = np.empty((len(windows), 6))
    for i in range(len(windows)):
        _upright_step(unit[i], spread[i] > moving_std, sustained, memory, direction, upright_counts, out[i, :3])
        _last_posture_step(
            unit[i], spread[i] < still_std, min_run, change, postures, run_sum, posture_counts, out[i, 3:]
        )
    return out
