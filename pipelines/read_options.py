"""How to read recordings into the data contract: the options every reader and the checks share."""

from __future__ import annotations

from dataclasses import dataclass, field

from features.errors import DataError

ACC_UNITS = ("m/s2", "g")
GYRO_UNITS = ("rad/s", "deg/s")
TIME_UNITS = ("s", "ms", "us", "ns")
TIME_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


@dataclass(frozen=True)
class ReadOptions:
    """How to read recordings into the data contract.

    column_map: canonical name -> source column (``--map ax=accX``); canonical names are
        ``timestamp``, the channels ``ax..gz``, ``label``, ``subject`` and ``recording``.
    acc_units / gyro_units: units the source declares; converted to m/s^2 and rad/s.
        Formats whose files state their units (phyphox headers) use those instead.
    time_units: units of a generic file's time column; None infers them from a unit
        suffix in the column name (``time_ms``), else from the median step between
        samples (<= 1 -> s, <= 1e3 -> ms, <= 1e6 -> us, else ns); a unit other than
        seconds is logged (logger ``posture.readers``).
        Datetime strings are read as such. Sensor Logger and phyphox define their own.
    label / subject: set on every row of every recording, overriding columns and layout.
    rate_hz: sampling rate of files without time (required for .ts; also used for a
        generic file that has no time column).
    ts_channels: the channel each .ts dimension holds, in order.
    max_gap_s: longest gap resampling interpolates over; longer gaps split recordings.
    keep_transitions: UCI HAPT only: label the postural transitions (``stand_to_sit`` ...)
        too; by default (False) their samples are left unlabelled, as the usual task is the
        six activities (``--hapt-transitions keep|drop``).
    """

    column_map: dict[str, str] = field(default_factory=dict)
    acc_units: str = "m/s2"
    gyro_units: str = "rad/s"
    time_units: str | None = None
    label: str | None = None
    subject: str | None = None
    rate_hz: float | None = None
    ts_channels: tuple[str, ...] | None = None
    max_gap_s: float = 0.5
    keep_transitions: bool = False

    def __post_init__(self) -> None:
        for option, what, value, allowed in (
            ("acc_units", "the accelerometer", self.acc_units, ACC_UNITS),
            ("gyro_units", "the gyroscope", self.gyro_units, GYRO_UNITS),
            ("time_units", "time", self.time_units, TIME_UNITS + (None,)),
        ):
            if value not in allowed:
                choices = "|".join(a for a in allowed if a)
                raise DataError(f"Unknown unit {value!r} for {what}.", f"use one of {choices}.", options=(option,))
        if self.rate_hz is not None and self.rate_hz <= 0:
            raise DataError(
                f"The sampling rate must be positive, got {self.rate_hz}.",
                "give the rate in Hz, e.g. 50.",
                options=("source_rate_hz",),
            )
        if self.max_gap_s <= 0:
            raise DataError(
                f"The longest gap must be positive, got {self.max_gap_s} s.",
                "give it in seconds, e.g. 0.5.",
                options=("max_gap_s",),
            )
