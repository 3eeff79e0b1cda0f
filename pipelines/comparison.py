"""Champion against challenger on the same subject-wise folds of the same dataset.

Both are judged as the model each would be: every window is predicted by a model that never
saw its subject. The challenger's recipe learns from the grown dataset minus the held-out
subjects; the champion's recipe learns from the same, restricted to the recordings the champion
was trained on (the new data is what it never had). Both are scored on the same held-out
subjects, so the difference is what switching would change for a subject neither has seen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.errors import PostureError
from pipelines.evaluate import Evaluation, labels_of, out_of_fold_probabilities, score
from pipelines.featurize import FeatureTable

Folds = list[tuple[np.ndarray, np.ndarray]]


def assign_subject_folds(groups: np.ndarray, n_folds: int) -> dict[str, int]:
    """Subject -> fold, balanced by window count (GroupKFold); shared by every recipe."""
    from sklearn.model_selection import GroupKFold

    subjects = np.unique(groups)
    if len(subjects) < 2:
        raise PostureError(
            f"Comparing models by subject needs at least two subjects; the dataset has {len(subjects)}.",
            "add recordings of another subject (a subject column, or a SUBJECT/LABEL/ folder layout).",
        )
    splitter = GroupKFold(n_splits=min(n_folds, len(subjects)))
    assignment: dict[str, int] = {}
    for fold, (_, test) in enumerate(splitter.split(groups, groups, groups)):
        assignment.update({str(subject): fold for subject in np.unique(groups[test])})
    return assignment


def folds_for(groups: np.ndarray, assignment: dict[str, int], train_mask: np.ndarray | None = None) -> Folds:
    """(train, test) window indices per fold; ``train_mask`` limits what a model may learn from."""
    fold_of = np.array([assignment[str(g)] for g in groups])
    folds = []
    for fold in sorted(set(assignment.values())):
        test = np.flatnonzero(fold_of == fold)
        train = np.flatnonzero((fold_of != fold) & (True if train_mask is None else train_mask))
        if len(test) and not len(train):
            raise PostureError(
                f"Fold {fold + 1} leaves the champion's recipe nothing to learn from.",
                "add data of more subjects before comparing, or compare over fewer subject folds.",
                options=("folds",),
            )
        if len(test):
            folds.append((train, test))
    return folds


def cross_validate(
    table: FeatureTable, folds: Folds, make_model: Callable[[], Any], classes: list[str], scheme: str
) -> tuple[Evaluation, np.ndarray]:
    probabilities = out_of_fold_probabilities(make_model, table.features, table.labels, folds, classes)
    predicted = labels_of(probabilities, classes)
    evaluation = score(table.labels, predicted, classes, scheme, table.groups, confidence=probabilities.max(axis=1))
    return evaluation, predicted


@dataclass(frozen=True)
class Decision:
    outcome: str  # "first champion" | "promoted" | "kept champion"
    alias: str  # the alias the new version gets
    reason: str
    delta: float | None  # challenger minus champion, macro-F1

    @property
    def promoted(self) -> bool:
        return self.alias == "champion"


def decide(challenger_f1: float, champion_f1: float | None, margin: float) -> Decision:
    """Champion only when the challenger wins by more than ``margin``; a tie keeps the champion."""
    if champion_f1 is None:
        return Decision("first champion", "champion", "no champion yet", None)
    delta = challenger_f1 - champion_f1
    if delta > margin:
        reason = f"macro-F1 {challenger_f1:.4f} beats the champion's {champion_f1:.4f} by {delta:+.4f} > {margin:g}"
        return Decision("promoted", "champion", reason, delta)
    reason = f"macro-F1 {challenger_f1:.4f} vs the champion's {champion_f1:.4f}: {delta:+.4f} is not > {margin:g}"
    return Decision("kept champion", "challenger", reason, delta)
