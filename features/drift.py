"""Distances between a reference and a live distribution over the same bins (pure numpy).

- ``binned``: the share of values in each bin of given interior edges (non-finite values
  are left out), the common currency of the reference profile and the live window.
- ``psi``: the population stability index, sum((q - p) ln(q / p)), with empty bins floored
  at ``PSI_FLOOR`` so that a bin the reference never saw gives a large, finite score. The
  usual reading: < 0.1 stable, 0.1-0.25 a moderate shift, > 0.25 a significant one.
- ``js_distance``: the Jensen-Shannon distance, base 2 (0 same, 1 disjoint), the square
  root of the divergence, as ``scipy.spatial.distance.jensenshannon`` computes it.
"""

from __future__ import annotations

import numpy as np

PSI_FLOOR = 1e-4  # a share of 0 would make ln(q / p) infinite


def binned(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of ``values`` in the ``len(edges) + 1`` bins (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    total = counts.sum()
    return counts / total if total else np.zeros(len(edges) + 1)


def psi(reference: np.ndarray, live: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """Population stability index of ``live`` against ``reference`` (bin shares each)."""
    p = np.maximum(np.asarray(reference, dtype=np.float64), floor)
    q = np.maximum(np.asarray(live, dtype=np.float64), floor)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2) of two distributions over the same outcomes."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        seen = a > 0
        return float(np.sum(a[seen] * np.log2(a[seen] / m[seen])))

    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))
