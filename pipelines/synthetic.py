"""Built-in synthetic IMU: a physically modelled thigh-worn accelerometer + gyroscope.

The device (phone or board) sits on the outer side of the right thigh, a hand's width
below the hip joint. Standing, its axes are x forward, y up the thigh, z out of the leg
(wearer's right); world axes are X forward, Y up, Z right. The accelerometer reads
specific force (gravity included, +9.81 m/s^2 up): at rest standing gives ~+g on y,
sitting (thigh horizontal) ~+g on x, lying ~+-g on z. A thigh sensor cannot tell lying
on the back from sitting, so "lying" is side-lying, rolled up to ~30 degrees.

Each posture gives the thigh's orientation and the hip's position over time; the
sensor's acceleration (hip motion plus lever-arm terms) and body-frame angular rate
follow by finite differences, so gyro and accelerometer agree. Posture changes blend
smoothly over the wearer's transition time. The data are an offline sample and a live
simulator, not a measure of model quality on real recordings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from features.contract import ALL_CHANNELS, STANDARD_GRAVITY, TIME_COLUMN
from features.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

POSTURES: tuple[str, ...] = ("sitting", "standing", "lying", "walking", "running")
_GAIT = ("walking", "running")
_FD_STEP_S = 1e-3  # finite-difference step for rates and accelerations
_DEG = np.pi / 180.0
# Pose vector: heading, roll, flexion, axial (rad); hip x, y, z (m); gait term (shuffling-step
# intensity when standing; log gait intensity, < 0 in pauses, when walking or running).
# Per posture: std of slow sway/fidget and of occasional transients (leg shifts, weight
# shifts with a few shuffling steps, partial rolls, turns and pauses while moving).
_SWAY = {
    "sitting": (0.02, 0.02, 0.03, 0.04, 0.005, 0.002, 0.005, 0),
    "standing": (0.02, 0.015, 0.015, 0.02, 0.01, 0.002, 0.01, 0),
    "lying": (0.01, 0.01, 0.02, 0.02, 0.002, 0.002, 0.002, 0),
    "walking": (0.1, 0, 0, 0, 0, 0, 0, 0),
    "running": (0.1, 0, 0, 0, 0, 0, 0, 0),
}
_TRANSIENT = {
    "sitting": (0.1, 0.1, 0.15, 0.25, 0.03, 0.01, 0.03, 0),
    "standing": (0.2, 0.06, 0.1, 0.1, 0.02, 0.01, 0.04, 0.3),
    "lying": (0.1, 0.15, 0.2, 0.3, 0.02, 0.02, 0.02, 0),
    "walking": (0.6, 0, 0, 0, 0, 0, 0, 3.0),
    "running": (0.6, 0, 0, 0, 0, 0, 0, 3.0),
}
_TRANSIENT_EVERY_S = {"sitting": 20.0, "standing": 20.0, "lying": 30.0, "walking": 30.0, "running": 30.0}
_HIP_HEIGHT_M = {"sitting": 0.45, "standing": 0.9, "lying": 0.2, "walking": 0.9, "running": 0.9}


def _check_posture(posture: str) -> None:
    if posture not in POSTURES:
        raise DataError(f"Unknown posture {posture!r}.", f"use one of: {', '.join(POSTURES)}.")


@dataclass(frozen=True)
class SubjectProfile:
    """What differs between wearers: device mounting, gait, build, habits, sensor."""

    subject_id: str
    mount_rad: tuple[float, float, float]  # device-on-thigh misalignment about x, y, z
    lever_m: float  # hip joint to sensor along the thigh
    walk_step_hz: float
    run_step_hz: float
    walk_swing_rad: float  # thigh flexion amplitude per stride
    run_swing_rad: float
    walk_bounce: float  # vertical hip acceleration at the step frequency, m/s^2
    run_bounce: float
    impact: float  # second-harmonic share of the bounce: heel-strike sharpness
    sit_flexion_rad: float  # thigh angle from vertical when seated
    fidget: float  # scales sway and transients at rest
    transition_s: float  # time to change posture
    gyro_bias: tuple[float, float, float]  # rad/s
    acc_noise: float  # m/s^2
    gyro_noise: float  # rad/s

    @classmethod
    def random(cls, rng: np.random.Generator, subject_id: str) -> SubjectProfile:
        axis = rng.normal(size=3)
        mount = axis / np.linalg.norm(axis) * rng.uniform(3.0, 15.0) * _DEG
        return cls(
            subject_id=subject_id,
            mount_rad=tuple(float(a) for a in mount),
            lever_m=float(rng.uniform(0.1, 0.2)),
            walk_step_hz=float(rng.uniform(1.65, 2.05)),
            run_step_hz=float(rng.uniform(2.6, 3.1)),
            walk_swing_rad=float(rng.uniform(0.3, 0.45)),
            run_swing_rad=float(rng.uniform(0.55, 0.75)),
            walk_bounce=float(rng.uniform(1.5, 3.0)),
            run_bounce=float(rng.uniform(9.0, 13.0)),
            impact=float(rng.uniform(0.1, 0.35)),
            sit_flexion_rad=float(rng.uniform(80.0, 100.0) * _DEG),
            fidget=float(rng.uniform(0.5, 1.5)),
            transition_s=float(rng.uniform(1.2, 2.5)),
            gyro_bias=tuple(float(b) for b in rng.normal(0.0, 0.005, size=3)),
            acc_noise=float(rng.uniform(0.04, 0.06)),
            gyro_noise=float(rng.uniform(0.008, 0.012)),
        )


def _rotations(axis: int, angle: np.ndarray) -> np.ndarray:
    """(n, 3, 3) right-handed rotations by ``angle`` (rad) about coordinate axis 0, 1 or 2."""
    angle = np.atleast_1d(angle)
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out = np.zeros((angle.size, 3, 3))
    out[:, axis, axis] = 1.0
    out[:, i, i], out[:, j, j], out[:, i, j], out[:, j, i] = c, c, -s, s
    return out


def _thigh_orientation(angles: np.ndarray) -> np.ndarray:
    """Thigh-to-world rotations from (n, 4) heading, roll, flexion, axial angles."""
    heading, roll, flexion, axial = angles.T
    return _rotations(1, heading) @ _rotations(0, roll) @ _rotations(2, flexion) @ _rotations(1, axial)


@dataclass
class _Motion:
    """One posture held from ``start``: its pose can be evaluated at any global time."""

    posture: str
    start: float
    profile: SubjectProfile
    base: np.ndarray  # (8,) mean pose
    stride_hz: float
    phase: float  # stride phase at t = 0
    sway: tuple[np.ndarray, np.ndarray, np.ndarray]  # frequencies, phases, (k, 8) amplitudes
    transients: tuple[np.ndarray, np.ndarray, np.ndarray]  # starts, durations, (m, 8) amplitudes

    @classmethod
    def draw(
        cls,
        posture: str,
        start: float,
        duration_s: float,
        p: SubjectProfile,
        rng: np.random.Generator,
        previous: _Motion | None = None,
    ) -> _Motion:
        base = np.zeros(8)
        base[5] = _HIP_HEIGHT_M[posture]
        if posture == "sitting":
            base[2:4] = p.sit_flexion_rad + rng.normal(0, 0.05), rng.normal(0, 0.15)
        elif posture == "lying":  # on the left (sensor up) or right side, hips flexed
            base[1:4] = rng.choice([-1.0, 1.0]) * np.pi / 2, rng.uniform(0.2, 0.8), rng.uniform(-0.5, 0.5)
        else:  # mean thigh flexion
            base[2] = {"standing": rng.normal(0, 0.05), "walking": 0.1, "running": 0.15}[posture]
        stride_hz = (p.run_step_hz if posture == "running" else p.walk_step_hz) * rng.normal(1.0, 0.01) / 2
        phase = rng.uniform(0, 2 * np.pi)
        if previous is not None:  # gait phase continues across the change
            stride_hz = previous.stride_hz if previous.posture == posture else stride_hz
            phase = previous.phase + 2 * np.pi * (previous.stride_hz - stride_hz) * start
        fidget = 1.0 if posture in _GAIT else p.fidget
        sway_f = np.append(rng.uniform(0.03, 0.3, 3), rng.uniform(8.0, 12.0))  # last: tremor
        sway_a = np.vstack([rng.normal(size=(3, 8)) * _SWAY[posture] * fidget, [0, 3e-4, 3e-4, 0, 0, 0, 0, 0]])
        n = rng.poisson(duration_s / _TRANSIENT_EVERY_S[posture])
        amps = rng.normal(size=(n, 8)) * _TRANSIENT[posture] * fidget
        amps[:, 7] = np.abs(amps[:, 7]) * (-1.0 if posture in _GAIT else 1.0)  # pauses / shuffles
        transients = (start + rng.uniform(0, max(duration_s - 1.0, 0.0), n), rng.uniform(1.0, 3.0, n), amps)
        sway = (sway_f, rng.uniform(0, 2 * np.pi, sway_f.size), sway_a)
        return cls(posture, start, p, base, stride_hz, phase, sway, transients)

    def pose(self, t: np.ndarray) -> np.ndarray:
        """(n, 7) pose at global times ``t``."""
        freqs, phases, amps = self.sway
        out = self.base + np.sin(2 * np.pi * t[:, None] * freqs + phases) @ amps
        for t0, dur, amp in zip(*self.transients):
            s = np.clip((t - t0) / dur, 0.0, 1.0)
            out += (np.sin(np.pi * s) ** 4)[:, None] * amp  # smooth to the second derivative
        intensity = np.exp(out[:, 7]) if self.posture in _GAIT else out[:, 7]  # smooth, never < 0
        if intensity.any():
            out[:, :7] += intensity[:, None] * self._gait(t)
        return out[:, :7]

    def _gait(self, t: np.ndarray) -> np.ndarray:
        """Thigh swing at the stride frequency; hip bounce and surge at the step frequency."""
        p, running = self.profile, self.posture == "running"
        swing = p.run_swing_rad if running else p.walk_swing_rad
        bounce = p.run_bounce if running else p.walk_bounce
        phi = 2 * np.pi * self.stride_hz * t + self.phase
        step = 2 * phi - np.pi  # vertical acceleration peaks just after heel strike
        w2 = (4 * np.pi * self.stride_hz) ** 2  # (step angular frequency)^2
        out = np.zeros((t.size, 7))
        out[:, 1] = 0.05 * swing * np.sin(phi + 1.0)  # ab/adduction
        out[:, 2] = swing * (np.sin(phi) + 0.15 * np.sin(2 * phi + 0.8))  # flexion
        out[:, 3] = 0.2 * swing * np.sin(phi + 0.5)  # internal/external rotation
        out[:, 4] = -0.3 * bounce / w2 * np.sin(step + 0.5)  # forward surge
        out[:, 5] = -bounce / w2 * (np.cos(step) + p.impact / 4 * np.cos(2 * step))  # vertical bounce
        out[:, 6] = 0.02 * np.sin(phi)  # side-to-side sway
        return out


def _blend(motions: Sequence[_Motion], t: np.ndarray, transition_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Pose at ``t``, easing from each motion into the next; and the index of the dominant one."""
    starts = np.array([m.start for m in motions])
    tau = float(np.min(np.diff(starts), initial=transition_s))  # never longer than a part
    k = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, None)
    s = np.clip((t - starts[k]) / tau, 0.0, 1.0)
    w = np.where(k > 0, s**3 * (10 - 15 * s + 6 * s**2), 1.0)  # weight of motion k against k - 1
    pose = np.zeros((t.size, 7))
    for i, motion in enumerate(motions):
        current, previous = k == i, (k == i + 1) & (w < 1.0)
        sel = current | previous
        if sel.any():
            pose[sel] += np.where(current, w, 1.0 - w)[sel, None] * motion.pose(t[sel])
    return pose, np.where(w >= 0.5, k, k - 1)


def _render(motions: Sequence[_Motion], t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """(n, 6) ax..gz in the device frame at times ``t``, and the true label of each sample."""
    p, n, h = motions[0].profile, t.size, _FD_STEP_S
    pose, dominant = _blend(motions, np.concatenate([t - h, t, t + h]), p.transition_s)
    rot = _thigh_orientation(pose[:, :4])
    pos = pose[:, 4:] + rot @ np.array([0.0, -p.lever_m, 0.0])  # sensor below the hip
    acc_world = (pos[2 * n :] - 2 * pos[n : 2 * n] + pos[:n]) / h**2
    rel = rot[:n].transpose(0, 2, 1) @ rot[2 * n :]  # rotation over 2h in the thigh frame
    rate = (rel - rel.transpose(0, 2, 1))[:, [2, 0, 1], [1, 2, 0]] / (4 * h)  # vee of the skew part
    specific = np.einsum("nji,nj->ni", rot[n : 2 * n], acc_world + [0.0, STANDARD_GRAVITY, 0.0])  # R^T (a + g up)
    mount = (_rotations(0, p.mount_rad[0]) @ _rotations(1, p.mount_rad[1]) @ _rotations(2, p.mount_rad[2]))[0]
    drift = 1.0 + 0.3 * np.sin(2 * np.pi * t / 600.0)[:, None]  # slow gyro-bias drift
    data = np.hstack([specific @ mount, rate @ mount + drift * np.asarray(p.gyro_bias)])  # row @ M = M^T v
    data += rng.normal(size=(n, 6)) * np.repeat([p.acc_noise, p.gyro_noise], 3)
    return data, [motions[i].posture for i in dominant[n : 2 * n]]


def _sequence(
    plan: Sequence[tuple[str, float]], p: SubjectProfile, rate_hz: float, rng: np.random.Generator, t0: float = 0.0
) -> tuple[np.ndarray, list[str]]:
    """Samples for consecutive (posture, seconds) parts, starting at global time ``t0``."""
    if rate_hz <= 0 or any(d <= 0 for _, d in plan):
        raise DataError("Synthetic data needs a positive rate and positive durations.", "pass values > 0.")
    motions: list[_Motion] = []
    start = t0  # of the next part
    for posture, duration in plan:
        _check_posture(posture)
        motions.append(_Motion.draw(posture, start, duration, p, rng, motions[-1] if motions else None))
        start += duration
    return _render(motions, t0 + np.arange(int(round((start - t0) * rate_hz))) / rate_hz, rng)


def generate_segment(
    posture: str, profile: SubjectProfile, duration_s: float, rate_hz: float, rng: np.random.Generator, t0: float = 0.0
) -> np.ndarray:
    """(n_samples, 6) float64 ax, ay, az (m/s^2), gx, gy, gz (rad/s) of one posture held."""
    return _sequence([(posture, duration_s)], profile, rate_hz, rng, t0)[0]


def generate_sample_dataset(
    n_subjects: int = 8,
    seconds_per_posture: float = 60.0,
    rate_hz: float = 50.0,
    seed: int = 0,
    adjust: Callable[[SubjectProfile], SubjectProfile] | None = None,
) -> "pd.DataFrame":
    """A labelled synthetic dataset: per subject one recording per posture plus two mixed ones.

    Recordings are named ``s01-walking``, ``s01-mixed-1`` (sitting, standing, walking,
    standing) and ``s01-mixed-2`` (lying, sitting, standing, running, walking; parts of
    half ``seconds_per_posture``); timestamps start at 0 in each. Deterministic per seed.
    ``adjust`` changes each drawn wearer (pipelines.synthetic_shifts: another placement, gait).
    """
    import pandas as pd

    if n_subjects < 1:
        raise DataError(f"n_subjects must be at least 1, got {n_subjects}.", "pass n_subjects >= 1.")
    half = seconds_per_posture / 2
    frames = []
    for number, child in enumerate(np.random.SeedSequence(seed).spawn(n_subjects), start=1):
        rng = np.random.default_rng(child)
        subject = f"s{number:02d}"
        profile = SubjectProfile.random(rng, subject)
        if adjust is not None:
            profile = adjust(profile)
        plans = {f"{subject}-{p}": [(p, seconds_per_posture)] for p in POSTURES}
        plans[f"{subject}-mixed-1"] = [(p, half) for p in ("sitting", "standing", "walking", "standing")]
        plans[f"{subject}-mixed-2"] = [(p, half) for p in ("lying", "sitting", "standing", "running", "walking")]
        for name, plan in plans.items():
            data, labels = _sequence(plan, profile, rate_hz, rng)
            frame = pd.DataFrame(data, columns=list(ALL_CHANNELS))
            frame.insert(0, TIME_COLUMN, np.arange(len(frame)) / rate_hz)
            frame["label"], frame["subject"], frame["recording"] = labels, subject, name
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


class SimulatedIMU:
    """A live IMU worn by one simulated person cycling through ``schedule`` forever."""

    def __init__(
        self,
        schedule: Sequence[str] = POSTURES,
        seconds_per_posture: float = 10.0,
        rate_hz: float = 50.0,
        seed: int | None = None,
    ) -> None:
        if not schedule or rate_hz <= 0 or seconds_per_posture <= 0:
            raise DataError(
                f"The simulator needs postures, a positive rate and duration; got schedule={list(schedule)}, "
                f"rate_hz={rate_hz}, seconds_per_posture={seconds_per_posture}.",
                f"pass postures from: {', '.join(POSTURES)}, and values > 0.",
            )
        for posture in schedule:
            _check_posture(posture)
        self.schedule, self.rate_hz = tuple(schedule), rate_hz
        self._rng = np.random.default_rng(seed)
        self._profile = SubjectProfile.random(self._rng, "sim")
        self._segment_n = max(1, int(round(seconds_per_posture * rate_hz)))
        self._segments = 0
        self._previous: _Motion | None = None
        self._buffer = np.empty((0, 6))
        self._labels: list[str] = []

    @property
    def current_posture(self) -> str:
        """True posture of the next sample to be read."""
        self._fill(1)
        return self._labels[0]

    def read(self, n: int) -> tuple[np.ndarray, list[str]]:
        """The next ``n`` samples (n, 6) and their true labels, continuing the last read."""
        self._fill(n)
        data, labels = self._buffer[:n], self._labels[:n]
        self._buffer, self._labels = self._buffer[n:], self._labels[n:]
        return data, labels

    def _fill(self, n: int) -> None:
        """Render whole postures of the schedule until ``n`` samples are buffered."""
        while len(self._labels) < n:
            first = self._segments * self._segment_n
            posture = self.schedule[self._segments % len(self.schedule)]
            duration = self._segment_n / self.rate_hz
            motion = _Motion.draw(posture, first / self.rate_hz, duration, self._profile, self._rng, self._previous)
            motions = [motion] if self._previous is None else [self._previous, motion]
            data, labels = _render(motions, (first + np.arange(self._segment_n)) / self.rate_hz, self._rng)
            self._buffer, self._labels = np.vstack([self._buffer, data]), self._labels + labels
            self._previous, self._segments = motion, self._segments + 1
