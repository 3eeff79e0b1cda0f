"""Subject-wise cross-validation and the metrics a posture model is judged by.

``CvScheme`` parses ``--cv`` (``auto``, ``loso``, ``group-kfold:N``) and makes the folds;
``out_of_fold_probabilities`` predicts every window with a model that never saw its
subject; ``score`` turns labels into an ``Evaluation`` (accuracy, macro-F1, recalls,
confusion, per-subject accuracy worst first); ``smoothed_predictions`` runs the causal
forward filter over each held-out recording with transitions learned on the training folds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from features.errors import DataError
from features.smoothing import ForwardFilter, learn_transitions
from pipelines.augmentation import with_copies

Folds = list[tuple[np.ndarray, np.ndarray]]
# `--cv auto` leaves one subject out up to this many subjects, then uses AUTO_FOLDS groups:
# LOSO is what papers report at this size and scores every subject against all the others,
# but it costs one fit per subject; past ~30 the estimate barely moves while the cost grows.
AUTO_LOSO_MAX_SUBJECTS = 30
AUTO_FOLDS = 10


@dataclass
class Evaluation:
    accuracy: float
    macro_f1: float
    per_class_recall: dict[str, float]
    confusion: np.ndarray  # rows = true class, columns = predicted, in ``classes`` order
    classes: list[str]
    scheme: str  # how the folds were made, e.g. "leave-one-subject-out (21 subjects)"
    per_subject: list[dict[str, Any]] = field(default_factory=list)  # {subject, windows, accuracy}, worst first
    smoothed: dict[str, float] = field(default_factory=dict)  # accuracy and macro_f1 after the filter
    # Each window's top out-of-fold probability, for the model's drift profile (not logged as a metric).
    confidence: np.ndarray | None = None

    def metrics(self, prefix: str) -> dict[str, float]:
        """Flat metric names for MLflow, e.g. ``cv_accuracy``, ``cv_recall_walking``."""
        flat = {f"{prefix}_accuracy": self.accuracy, f"{prefix}_macro_f1": self.macro_f1}
        flat.update({f"{prefix}_recall_{label}": value for label, value in self.per_class_recall.items()})
        flat.update({f"{prefix}_smoothed_{name}": value for name, value in self.smoothed.items()})
        if self.per_subject:
            flat[f"{prefix}_worst_subject_accuracy"] = self.per_subject[0]["accuracy"]
        return flat

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class_recall": self.per_class_recall,
            "confusion": self.confusion.tolist(),
            "classes": self.classes,
            "scheme": self.scheme,
            "per_subject": self.per_subject,
            "smoothed": self.smoothed,
        }


def score(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: list[str],
    scheme: str,
    groups: np.ndarray | None = None,
    smoothed_pred: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
) -> Evaluation:
    """Metrics of predicted labels; per subject when ``groups`` is given, smoothed when ``smoothed_pred`` is.
    ``confidence``: each window's top probability, kept on the evaluation for the drift profile."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

    recalls = recall_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    smoothed = {}
    if smoothed_pred is not None:
        smoothed = {
            "accuracy": float(accuracy_score(y_true, smoothed_pred)),
            "macro_f1": float(f1_score(y_true, smoothed_pred, labels=classes, average="macro", zero_division=0)),
        }
    return Evaluation(
        accuracy=float(accuracy_score(y_true, y_pred)),
        macro_f1=float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
        per_class_recall={c: float(r) for c, r in zip(classes, recalls)},
        confusion=confusion_matrix(y_true, y_pred, labels=classes),
        classes=classes,
        scheme=scheme,
        per_subject=per_subject_accuracy(y_true, y_pred, groups) if groups is not None else [],
        smoothed=smoothed,
        confidence=confidence,
    )


def per_subject_accuracy(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> list[dict[str, Any]]:
    """Window accuracy of each subject, worst first (ties by subject name)."""
    rows = []
    for subject in np.unique(groups.astype(str)):
        mine = groups.astype(str) == subject
        accuracy = float((y_true[mine] == y_pred[mine]).mean())
        rows.append({"subject": subject, "windows": int(mine.sum()), "accuracy": accuracy})
    return sorted(rows, key=lambda row: (row["accuracy"], row["subject"]))


@dataclass(frozen=True)
class CvScheme:
    """How windows are split into folds by subject: ``auto``, ``loso`` or ``group-kfold:N``."""

    kind: str  # "auto" | "loso" | "group-kfold"
    folds: int = 0  # N of group-kfold

    @classmethod
    def parse(cls, text: str) -> "CvScheme":
        kind, _, number = text.strip().lower().partition(":")
        if kind in ("auto", "loso") and not number:
            return cls(kind)
        if kind == "group-kfold" and number.isdigit() and int(number) >= 2:
            return cls(kind, int(number))
        raise DataError(
            f"Unknown cross-validation scheme {text!r}.",
            "pass auto, loso, or group-kfold:N with N >= 2 (e.g. group-kfold:5).",
        )

    @property
    def text(self) -> str:
        """The scheme as ``--cv`` spells it."""
        return f"group-kfold:{self.folds}" if self.kind == "group-kfold" else self.kind

    def make_folds(self, labels: np.ndarray, groups: np.ndarray) -> tuple[Folds, str]:
        """(train, test) window indices per fold, and the scheme in words."""
        from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, StratifiedKFold

        n_groups = len(np.unique(groups))
        if n_groups < 2:  # one subject: nothing to hold out, so folds by label, and say so
            smallest = int(np.unique(labels, return_counts=True)[1].min())
            splitter = StratifiedKFold(n_splits=max(2, min(5, smallest)), shuffle=True, random_state=0)
            scheme = f"StratifiedKFold({splitter.n_splits}); one subject only, so not subject-wise"
            return list(splitter.split(labels, labels)), scheme
        loso = self.kind == "loso" or (self.kind == "auto" and n_groups <= AUTO_LOSO_MAX_SUBJECTS)
        if loso:
            folds = list(LeaveOneGroupOut().split(labels, labels, groups))
            return folds, f"leave-one-subject-out ({n_groups} subjects)"
        gkf = GroupKFold(n_splits=min(self.folds or AUTO_FOLDS, n_groups))
        return list(gkf.split(labels, labels, groups)), f"GroupKFold({gkf.n_splits}) by subject"


def out_of_fold_probabilities(
    make_model: Callable[[], Any],
    features: np.ndarray,
    labels: np.ndarray,
    folds: Folds,
    classes: Sequence[str],
    copies: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """(n_windows, n_classes) probabilities, each window's from a model that never saw its fold.

    ``copies``: features of rotated copies of the windows (``pipelines.augmentation``); a fold
    trains on its training rows of each, and is scored on its own windows only.
    """
    probabilities = np.zeros((len(labels), len(classes)))
    column = {label: i for i, label in enumerate(classes)}
    for train_index, test_index in folds:
        model = make_model().fit(*with_copies(features, labels, list(copies), train_index))
        columns = [column[label] for label in model.classes_]  # a fold may lack a class
        probabilities[np.ix_(test_index, columns)] = model.predict_proba(features[test_index])
    return probabilities


def labels_of(probabilities: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    return np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)]


def recording_sequences(recordings: np.ndarray, starts_s: np.ndarray) -> list[np.ndarray]:
    """Window indices of each recording in time order."""
    order = np.lexsort((starts_s, recordings.astype(str)))
    names = recordings.astype(str)[order]
    cuts = np.flatnonzero(names[1:] != names[:-1]) + 1
    return np.split(order, cuts)


def transitions_for(
    labels: np.ndarray, recordings: np.ndarray, starts_s: np.ndarray, classes: Sequence[str]
) -> np.ndarray:
    """The forward filter's transition matrix learned from the windows' label sequences."""
    return learn_transitions([labels[index] for index in recording_sequences(recordings, starts_s)], classes)


def smoothed_predictions(
    probabilities: np.ndarray,
    labels: np.ndarray,
    recordings: np.ndarray,
    starts_s: np.ndarray,
    folds: Folds,
    classes: Sequence[str],
) -> np.ndarray:
    """Out-of-fold labels after the forward filter, run over each held-out recording in time order.

    Each fold's filter learns its transitions from the training folds' sequences only.
    """
    smoothed = np.zeros_like(probabilities)
    for train_index, test_index in folds:
        learned = transitions_for(labels[train_index], recordings[train_index], starts_s[train_index], classes)
        smoothed[test_index] = filtered(
            probabilities[test_index], recordings[test_index], starts_s[test_index], ForwardFilter(learned)
        )
    return labels_of(smoothed, classes)


def filtered(
    probabilities: np.ndarray, recordings: np.ndarray, starts_s: np.ndarray, forward: ForwardFilter
) -> np.ndarray:
    """The forward filter run over each recording's windows in time order (rows stay in place)."""
    out = np.zeros_like(probabilities)
    for index in recording_sequences(recordings, starts_s):
        out[index] = forward.run(probabilities[index])
    return out
