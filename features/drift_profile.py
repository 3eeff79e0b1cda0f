"""A model version's reference profile, and a live window scored against it (pure numpy).

Training writes the profile beside ``spec.json`` (``PROFILE_FILE``); the server scores its
rolling window of recent predictions against it. ``DriftProfile`` holds:

- per most important feature (by the forest's importances): quantile bin edges of the
  training windows' values and the share of windows in each bin (~equal by construction);
- the class prior, the training labels' shares;
- the top probability (confidence) of each training window, from out-of-fold CV
  probabilities (a forest is over-confident on its own training windows), binned the same
  way, and its mean.

``score_window`` gives ``DriftScores``: PSI per feature (``features.drift.psi``), the
Jensen-Shannon distance of the predicted-label shares from the prior, and the drop in mean
confidence (reference minus live; positive when the model is less sure than in CV).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.drift import binned, js_distance, psi
from features.errors import PostureError

PROFILE_FILE = "drift_profile.json"
PROFILE_FORMAT = 1
TOP_FEATURES = 8
BINS = 10


class DriftProfileError(PostureError):
    """A reference profile that cannot be read or built."""


@dataclass(frozen=True)
class FeatureBins:
    name: str
    column: int  # in the model's feature matrix
    edges: np.ndarray  # interior edges: len(edges) + 1 bins
    reference: np.ndarray  # share of training windows per bin


@dataclass(frozen=True)
class DriftScores:
    feature_psi: dict[str, float]
    live_shares: dict[str, np.ndarray]  # per feature, for plots
    prediction_js: float
    confidence_drop: float
    mean_confidence: float
    windows: int


@dataclass(frozen=True)
class DriftProfile:
    features: tuple[FeatureBins, ...]
    classes: tuple[str, ...]
    class_prior: np.ndarray
    confidence_edges: np.ndarray
    confidence_reference: np.ndarray
    mean_confidence: float
    windows: int  # training windows it was built from

    @property
    def columns(self) -> np.ndarray:
        """The model's feature columns the profile tracks, in profile order."""
        return np.array([f.column for f in self.features], dtype=np.intp)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "features": [
                {"name": f.name, "column": f.column, "edges": f.edges.tolist(), "reference": f.reference.tolist()}
                for f in self.features
            ],
            "classes": list(self.classes),
            "class_prior": self.class_prior.tolist(),
            "confidence": {
                "edges": self.confidence_edges.tolist(),
                "reference": self.confidence_reference.tolist(),
                "mean": self.mean_confidence,
            },
            "windows": self.windows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftProfile:
        if data.get("format") != PROFILE_FORMAT:
            raise DriftProfileError(
                f"Drift profile format {data.get('format')!r} is not the one this posture reads ({PROFILE_FORMAT}).",
                "retrain the model with this posture version (`posture train`).",
            )
        try:
            confidence = data["confidence"]
            return cls(
                features=tuple(
                    FeatureBins(f["name"], int(f["column"]), np.asarray(f["edges"]), np.asarray(f["reference"]))
                    for f in data["features"]
                ),
                classes=tuple(data["classes"]),
                class_prior=np.asarray(data["class_prior"]),
                confidence_edges=np.asarray(confidence["edges"]),
                confidence_reference=np.asarray(confidence["reference"]),
                mean_confidence=float(confidence["mean"]),
                windows=int(data["windows"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DriftProfileError(
                f"The drift profile lacks or mangles {err}.", "retrain the model to write a new profile."
            ) from err


def quantile_edges(values: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Interior edges that cut ``values`` into ``bins`` ~equal shares (fewer where values repeat)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return np.zeros(0)
    return np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))


def build_profile(
    features: np.ndarray,
    importances: np.ndarray,
    names: Sequence[str],
    labels: np.ndarray,
    classes: Sequence[str],
    confidence: np.ndarray,
    top: int = TOP_FEATURES,
    bins: int = BINS,
) -> DriftProfile:
    """The profile of training ``features`` (n, n_features) with their ``labels`` and each
    window's out-of-fold top probability ``confidence`` (n,)."""
    if features.shape[1] != len(names) or len(importances) != len(names):
        raise DriftProfileError(
            f"{features.shape[1]} feature columns, {len(importances)} importances and {len(names)} names differ.",
            "pass the matrix the forest was fitted on and its feature names.",
        )
    order = [int(i) for i in np.argsort(-np.asarray(importances), kind="stable")[:top] if importances[i] > 0]
    tracked = []
    for column in order:
        edges = quantile_edges(features[:, column], bins)
        tracked.append(FeatureBins(names[column], column, edges, binned(features[:, column], edges)))
    prior = np.array([np.mean(labels == c) for c in classes])
    confidence_edges = quantile_edges(confidence, bins)
    return DriftProfile(
        features=tuple(tracked),
        classes=tuple(classes),
        class_prior=prior,
        confidence_edges=confidence_edges,
        confidence_reference=binned(confidence, confidence_edges),
        mean_confidence=float(confidence.mean()),
        windows=len(features),
    )


def score_window(profile: DriftProfile, tracked: np.ndarray, probabilities: np.ndarray) -> DriftScores:
    """Scores of a live window: ``tracked`` (n, len(profile.features)) values of the profile's
    columns, ``probabilities`` (n, n_classes) in ``profile.classes`` order."""
    live = {f.name: binned(tracked[:, i], f.edges) for i, f in enumerate(profile.features)}
    predicted = np.bincount(probabilities.argmax(axis=1), minlength=len(profile.classes)) / max(len(probabilities), 1)
    confidence = float(probabilities.max(axis=1).mean()) if len(probabilities) else float("nan")
    return DriftScores(
        feature_psi={f.name: psi(f.reference, live[f.name]) for f in profile.features},
        live_shares=live,
        prediction_js=js_distance(profile.class_prior, predicted),
        confidence_drop=profile.mean_confidence - confidence,
        mean_confidence=confidence,
        windows=len(probabilities),
    )
