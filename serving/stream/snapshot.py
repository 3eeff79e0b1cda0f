"""What a stream session needs to go on after its connection is gone (docs/protocol.md,
"Resuming"): its layout, counters, the windower's timeline and buffer tail (less than one
window of samples), the smoothing filter's belief and the stream context. Serialised as
JSON bytes for the session stores of ``serving/edge/session_states.py``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson


@dataclass
class SessionSnapshot:
    session_id: str
    device_id: str | None
    rate_hz: float  # the frame layout in force
    channels: list[str]
    opened_at: str  # ISO 8601
    frames: int
    predictions: int
    errors: int
    spec: dict[str, Any]  # the WindowSpec the windower cuts with
    windower: dict[str, Any]  # StreamWindower.state()
    belief: np.ndarray | None = None  # the smoothing filter's state, (classes,)
    belief_classes: list[str] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)  # features.stream_context.StreamContext.state()

    def to_bytes(self) -> bytes:
        # A shallow dict: dataclasses.asdict would deep-copy the arrays first, at ~0.5 ms a window.
        fields_ = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return orjson.dumps(fields_, default=_encode_array)

    @classmethod
    def from_bytes(cls, data: bytes) -> "SessionSnapshot":
        saved = json.loads(data, object_hook=_decode_array)  # orjson has no object hook
        # Fields of an older version (an instance mid-upgrade saved it) are left behind.
        return cls(**{name: value for name, value in saved.items() if name in cls.__dataclass_fields__})


def _encode_array(value: Any) -> Any:
    if isinstance(value, np.generic):  # a numpy scalar (orjson takes only Python numbers)
        return value.item()
    if isinstance(value, np.ndarray):
        return {
            "__ndarray__": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode(),
            "dtype": value.dtype.str,
            "shape": list(value.shape),
        }
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _decode_array(obj: dict[str, Any]) -> Any:
    if "__ndarray__" not in obj:
        return obj
    raw = base64.b64decode(obj["__ndarray__"])
    return np.frombuffer(raw, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
