"""The reference profile a model version carries beside ``spec.json`` (``features.drift_profile``).

Built from the windows the forest was fitted on, its importances and the out-of-fold
confidence of cross-validation (``Evaluation.confidence``), so that the server's drift
scores compare live windows with what the model saw, and live confidence with the
confidence the model earned on subjects it had not seen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from features.drift_profile import PROFILE_FILE, DriftProfileError, build_profile
from features.feature_sets import feature_names_for
from features.spec import WindowSpec
from pipelines.evaluate import Evaluation


def write_reference_profile(
    folder: Path, spec: WindowSpec, forest: Any, features: np.ndarray, labels: np.ndarray, cv: Evaluation
) -> str:
    """Write ``PROFILE_FILE`` into ``folder`` and return its path (for ``log_model``'s extra files)."""
    if cv.confidence is None or len(cv.confidence) != len(labels):
        raise DriftProfileError(
            "The cross-validation carries no out-of-fold confidence for each training window.",
            "score the folds with pipelines.evaluate.score(..., confidence=...).",
        )
    profile = build_profile(
        features,
        np.asarray(forest.feature_importances_),
        feature_names_for(spec),
        np.asarray(labels),
        spec.classes,
        cv.confidence,
    )
    path = folder / PROFILE_FILE
    path.write_text(json.dumps(profile.to_dict()))
    return str(path)
