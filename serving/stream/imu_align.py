"""The Sensor Logger push's aligner, where its callers import it from: the accelerometer and
gyroscope tracks onto one grid. It lives in ``features.streaming_align``, beside the other
streaming forms of the file path's resampling."""

from __future__ import annotations

from features.streaming_align import ImuAligner, Readings, SensorTrack, TooManyRows

__all__ = ["ImuAligner", "Readings", "SensorTrack", "TooManyRows"]
