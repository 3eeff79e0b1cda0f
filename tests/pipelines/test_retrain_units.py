"""Units of the retrain flow: shared subject folds, the decision rule, batches, the incoming
folder's fingerprints, and the CV figures a registered version carries for the store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from features.errors import PostureError
from features.spec import WindowSpec
from pipelines.comparison import assign_subject_folds, decide, folds_for
from pipelines.featurize import make_batches
from pipelines.incoming import fingerprint, scan_incoming
from pipelines.registry import OFFLINE_METRICS_FILE, SPEC_FILE, model_from_folder


def test_both_recipes_get_the_same_subjects_held_out() -> None:
    fine = np.repeat(["a", "b", "c", "d"], [40, 30, 20, 10])  # 0.5 s windows
    coarse = np.repeat(["a", "b", "c", "d"], [20, 15, 10, 5])  # 1 s windows of the same data
    assignment = assign_subject_folds(np.concatenate([fine, coarse]), n_folds=2)
    for groups in (fine, coarse):
        held_out = [set(groups[test]) for _, test in folds_for(groups, assignment)]
        assert held_out == [{s for s, f in assignment.items() if f == k} for k in range(2)]


def test_a_train_mask_limits_what_a_fold_learns_from() -> None:
    groups = np.array(["a", "a", "b", "b", "new", "new"])
    seen = groups != "new"
    folds = folds_for(groups, {"a": 0, "b": 1, "new": 2}, train_mask=seen)
    assert [sorted(set(groups[train])) for train, _ in folds] == [["b"], ["a"], ["a", "b"]]
    with pytest.raises(PostureError, match="nothing to learn"):
        folds_for(groups, {"a": 0, "b": 0, "new": 1}, train_mask=groups == "a")


def test_one_subject_cannot_be_compared_by_subject() -> None:
    with pytest.raises(PostureError, match="two subjects"):
        assign_subject_folds(np.array(["a", "a"]), 5)


@pytest.mark.parametrize(
    ("challenger", "champion", "margin", "outcome", "alias"),
    [
        (0.90, None, 0.005, "first champion", "champion"),
        (0.95, 0.94, 0.005, "promoted", "champion"),
        (0.944, 0.94, 0.005, "kept champion", "challenger"),  # better, but not by the margin
        (0.94, 0.94, 0.0, "kept champion", "challenger"),  # a tie keeps the champion
        (0.90, 0.94, 0.005, "kept champion", "challenger"),
    ],
)
def test_decision_rule(challenger: float, champion: float | None, margin: float, outcome: str, alias: str) -> None:
    decision = decide(challenger, champion, margin)
    assert (decision.outcome, decision.alias) == (outcome, alias)


def test_batches_keep_name_order_and_balance_samples() -> None:
    sizes = {f"r{i:02d}": 100 for i in range(10)} | {"big": 1000}
    batches = make_batches(sizes, 4)
    assert [name for batch in batches for name in batch] == sorted(sizes)
    assert 2 <= len(batches) <= 4


def test_incoming_files_known_by_fingerprint(tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    (incoming / "s1" / "walking").mkdir(parents=True)
    (incoming / "s1" / "walking" / "a.csv").write_text("timestamp,ax\n0,1\n")
    (incoming / "notes.txt").write_text("not a recording")
    sha = fingerprint(incoming / "s1" / "walking" / "a.csv")
    assert scan_incoming(incoming, None).new == ["s1/walking/a.csv"]
    assert scan_incoming(incoming, {"ingested_files": {sha: "batch/s1/walking/a.csv"}}).new == []
    assert scan_incoming(tmp_path / "missing", None).units == {}


def test_a_version_carries_its_cv_figures_and_older_ones_none(tmp_path: Path) -> None:
    spec = WindowSpec(rate_hz=50.0, window_s=1.0, hop_s=0.5, channels=("ax", "ay", "az"))
    extra = tmp_path / "model" / "extra_files"
    extra.mkdir(parents=True)
    (extra / SPEC_FILE).write_text(json.dumps(spec.to_dict()))
    older = model_from_folder(tmp_path / "model", "models:/posture/1", "posture", "1", None)
    assert (older.offline_metrics, older.offline_dataset) == ({}, "")
    figures = {"cv_macro_f1": 0.9, "cv_accuracy": 0.95}
    (extra / OFFLINE_METRICS_FILE).write_text(json.dumps({"dataset": "sample", "metrics": figures}))
    newer = model_from_folder(tmp_path / "model", "models:/posture/2", "posture", "2", None)
    assert (newer.offline_metrics, newer.offline_dataset) == (figures, "sample")
