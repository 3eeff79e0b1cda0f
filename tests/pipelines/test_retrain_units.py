"""Units of the retrain flow: shared subject folds, the decision rule, batches, the incoming
folder's fingerprints, and the model_metrics writer on SQLite (with and without the store)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from features.errors import PostureError
from pipelines.comparison import assign_subject_folds, decide, folds_for
from pipelines.featurize import make_batches
from pipelines.incoming import fingerprint, scan_incoming
from pipelines.metrics_table import record_model_metrics


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


def test_model_metrics_skipped_without_a_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    with caplog.at_level(logging.INFO, logger="posture.retrain"):
        assert record_model_metrics(url, "posture", "1", {"cv_macro_f1": 0.9}, "sample") == 0
    assert not (tmp_path / "predictions.db").exists() and "skipped" in caplog.text
    import sqlite3

    sqlite3.connect(tmp_path / "predictions.db").close()  # a database, but without the table
    with caplog.at_level(logging.INFO, logger="posture.retrain"):
        assert record_model_metrics(url, "posture", "1", {"cv_macro_f1": 0.9}, "sample") == 0
    assert "no model_metrics table" in caplog.text


def test_model_metrics_rows_in_a_migrated_sqlite_store(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    from serving.store.db import upgrade

    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    upgrade(url)
    assert record_model_metrics(url, "posture", "7", {"cv_macro_f1": 0.9, "cv_accuracy": 0.95}, "sample") == 2
    with create_engine(url).connect() as conn:
        rows = conn.execute(text("SELECT model_name, model_version, metric, value, dataset FROM model_metrics")).all()
    assert sorted(rows) == [
        ("posture", "7", "cv_accuracy", 0.95, "sample"),
        ("posture", "7", "cv_macro_f1", 0.9, "sample"),
    ]
