// A simulated thigh-worn IMU for desktops: a small port of the idea behind
// pipelines/synthetic.py (not the same numbers). The phone sits in the right front trouser
// pocket, screen facing out, top up: device x forward, y up the thigh, z out of the leg.
// Each posture is a thigh orientation (heading, roll, flexion, axial) and a hip position;
// walking and running add a stride (thigh swing, hip bounce and surge). The accelerometer
// reads specific force R^T (a + g up) in m/s^2 and the gyroscope the body-frame angular
// rate in rad/s, both from finite differences of the pose, so the two agree.

export const SIM_POSTURES = ["sitting", "standing", "lying", "walking", "running"];

const G = 9.80665;
const H = 1e-3; // finite-difference step, s
const TRANSITION_S = 1.5;
const PROFILE = {
  leverM: 0.15, walkStepHz: 1.85, runStepHz: 2.85, walkSwing: 0.38, runSwing: 0.65,
  walkBounce: 2.2, runBounce: 11.0, impact: 0.2, sitFlexion: (90 * Math.PI) / 180,
  accNoise: 0.05, gyroNoise: 0.01,
};
// Mean pose per posture: [heading, roll, flexion, axial, hipX, hipY, hipZ].
const BASE = {
  sitting: [0, 0, PROFILE.sitFlexion, 0.1, 0, 0.45, 0],
  standing: [0, 0, 0, 0, 0, 0.9, 0],
  lying: [0, Math.PI / 2, 0.5, 0, 0, 0.2, 0], // on the left side, sensor up, hips flexed
  walking: [0, 0, 0.1, 0, 0, 0.9, 0],
  running: [0, 0, 0.15, 0, 0, 0.9, 0],
};
const SWAY = [0.02, 0.02, 0.03, 0.04, 0.005, 0.002, 0.005]; // slow fidget amplitude per pose term
const SWAY_HZ = [0.05, 0.13, 0.27];

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function rotation(axis, angle) {
  const c = Math.cos(angle), s = Math.sin(angle);
  const m = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  const [i, j] = [[1, 2], [2, 0], [0, 1]][axis];
  m[i][i] = c; m[j][j] = c; m[i][j] = -s; m[j][i] = s;
  return m;
}

function matmul(a, b) {
  const out = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) out[i][j] += a[i][k] * b[k][j];
  return out;
}

function transpose(m) {
  return [0, 1, 2].map((i) => [0, 1, 2].map((j) => m[j][i]));
}

function apply(m, v) {
  return [0, 1, 2].map((i) => m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2]);
}

function thighRotation(pose) {
  const [heading, roll, flexion, axial] = pose;
  return matmul(matmul(rotation(1, heading), rotation(0, roll)), matmul(rotation(2, flexion), rotation(1, axial)));
}

export class SimulatedIMU {
  constructor(posture = "walking", seed = 1) {
    this.random = mulberry32(seed);
    this.phases = SWAY_HZ.map(() => SWAY.map(() => this.random() * 2 * Math.PI));
    this.stridePhase = this.random() * 2 * Math.PI;
    this.current = posture;
    this.previous = posture;
    this.changedAt = -Infinity;
  }

  /** Switch to ``posture`` at time ``t`` (s); the pose eases over TRANSITION_S. */
  setPosture(posture, t) {
    if (!(posture in BASE) || posture === this.current) return;
    this.previous = this.current;
    this.current = posture;
    this.changedAt = t;
  }

  /** [ax, ay, az, gx, gy, gz] at time ``t`` (s): m/s^2 with gravity, rad/s. */
  sample(t) {
    const poses = [t - H, t, t + H].map((u) => this.pose(u));
    const rots = poses.map(thighRotation);
    const pos = poses.map((p, k) => {
      const arm = apply(rots[k], [0, -PROFILE.leverM, 0]); // sensor below the hip joint
      return [p[4] + arm[0], p[5] + arm[1], p[6] + arm[2]];
    });
    const accWorld = [0, 1, 2].map((i) => (pos[2][i] - 2 * pos[1][i] + pos[0][i]) / (H * H));
    accWorld[1] += G; // specific force: +g up at rest
    const acc = apply(transpose(rots[1]), accWorld);
    const rel = matmul(transpose(rots[0]), rots[2]); // rotation over 2H in the body frame
    const gyro = [rel[2][1] - rel[1][2], rel[0][2] - rel[2][0], rel[1][0] - rel[0][1]].map((v) => v / (4 * H));
    return [
      ...acc.map((v) => v + this.gauss() * PROFILE.accNoise),
      ...gyro.map((v) => v + this.gauss() * PROFILE.gyroNoise),
    ];
  }

  pose(t) {
    const w = smoothstep((t - this.changedAt) / TRANSITION_S);
    const now = this.postureAt(this.current, t);
    if (w >= 1) return now;
    const before = this.postureAt(this.previous, t);
    return now.map((v, i) => w * v + (1 - w) * before[i]);
  }

  postureAt(posture, t) {
    const out = BASE[posture].slice();
    const fidget = posture === "walking" || posture === "running" ? 0.3 : 1.0;
    SWAY_HZ.forEach((hz, k) => {
      SWAY.forEach((amp, i) => { out[i] += fidget * amp * Math.sin(2 * Math.PI * hz * t + this.phases[k][i]); });
    });
    if (posture === "walking" || posture === "running") this.addGait(out, t, posture === "running");
    return out;
  }

  addGait(out, t, running) {
    const p = PROFILE;
    const swing = running ? p.runSwing : p.walkSwing;
    const bounce = running ? p.runBounce : p.walkBounce;
    const strideHz = (running ? p.runStepHz : p.walkStepHz) / 2;
    const phi = 2 * Math.PI * strideHz * t + this.stridePhase;
    const step = 2 * phi - Math.PI; // vertical acceleration peaks just after heel strike
    const w2 = (4 * Math.PI * strideHz) ** 2;
    out[1] += 0.05 * swing * Math.sin(phi + 1.0); // ab/adduction
    out[2] += swing * (Math.sin(phi) + 0.15 * Math.sin(2 * phi + 0.8)); // flexion
    out[3] += 0.2 * swing * Math.sin(phi + 0.5); // internal/external rotation
    out[4] += (-0.3 * bounce / w2) * Math.sin(step + 0.5); // forward surge
    out[5] += (-bounce / w2) * (Math.cos(step) + (p.impact / 4) * Math.cos(2 * step)); // bounce
    out[6] += 0.02 * Math.sin(phi); // side-to-side sway
  }

  gauss() {
    const u = Math.max(this.random(), 1e-12), v = this.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

function smoothstep(s) {
  if (s <= 0) return 0;
  if (s >= 1) return 1;
  return s * s * s * (10 - 15 * s + 6 * s * s);
}
