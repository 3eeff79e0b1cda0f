"""Export a fitted forest to ONNX so the server can run it on ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def export_forest(estimator: Any, n_features: int, path: Path) -> Path:
    """Write ``estimator`` as ONNX: float32 input ``features`` (n, n_features);
    outputs ``label`` and ``probabilities`` (n, n_classes) in ``estimator.classes_`` order."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    model = to_onnx(
        estimator,
        initial_types=[("features", FloatTensorType([None, n_features]))],
        options={id(estimator): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    path.write_bytes(model.SerializeToString())
    return path
