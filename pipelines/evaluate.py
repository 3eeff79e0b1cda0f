"""Subject-wise cross-validation and the metrics a posture model is judged by."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Evaluation:
    accuracy: float
    macro_f1: float
    per_class_recall: dict[str, float]
    confusion: np.ndarray  # rows = true class, columns = predicted, in ``classes`` order
    classes: list[str]
    scheme: str  # how the folds were made, e.g. "GroupKFold(5) by subject"

    def metrics(self, prefix: str) -> dict[str, float]:
        """Flat metric names for MLflow, e.g. ``cv_accuracy``, ``cv_recall_walking``."""
        flat = {f"{prefix}_accuracy": self.accuracy, f"{prefix}_macro_f1": self.macro_f1}
        flat.update({f"{prefix}_recall_{label}": value for label, value in self.per_class_recall.items()})
        return flat

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class_recall": self.per_class_recall,
            "confusion": self.confusion.tolist(),
            "classes": self.classes,
            "scheme": self.scheme,
        }


def score(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], scheme: str) -> Evaluation:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

    recalls = recall_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    return Evaluation(
        accuracy=float(accuracy_score(y_true, y_pred)),
        macro_f1=float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
        per_class_recall={c: float(r) for c, r in zip(classes, recalls)},
        confusion=confusion_matrix(y_true, y_pred, labels=classes),
        classes=classes,
        scheme=scheme,
    )


def make_folds(labels: np.ndarray, groups: np.ndarray, n_folds: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Folds by subject when there are several subjects, else stratified by label."""
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    n_groups = len(np.unique(groups))
    if n_groups >= 2:
        splitter = GroupKFold(n_splits=min(n_folds, n_groups))
        scheme = f"GroupKFold({splitter.n_splits}) by subject"
        return list(splitter.split(labels, labels, groups)), scheme
    smallest = int(np.unique(labels, return_counts=True)[1].min())
    splitter = StratifiedKFold(n_splits=max(2, min(n_folds, smallest)), shuffle=True, random_state=0)
    scheme = f"StratifiedKFold({splitter.n_splits}); one subject only, so not subject-wise"
    return list(splitter.split(labels, labels)), scheme


def out_of_fold_predictions(
    make_model: Any, features: np.ndarray, labels: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Each window predicted by a model that never saw its fold (its subject)."""
    predicted = np.empty(len(labels), dtype=labels.dtype)
    for train_index, test_index in folds:
        model = make_model().fit(features[train_index], labels[train_index])
        predicted[test_index] = model.predict(features[test_index])
    return predicted
