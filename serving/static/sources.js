// Sample sources: the phone's own motion sensors (DeviceMotion API) or a simulated IMU.
// Both call onReading(t, row): t in seconds (Unix time, from performance.timeOrigin), row
// in the data contract's units and channel order (see CHANNELS / channels).
//
// Axis convention, DeviceMotion -> data contract. The W3C device frame is x to the right
// of the screen, y to its top, z out of the screen (the Android sensor frame too). A phone
// in the right front trouser pocket, screen facing out (away from the thigh), top up, has
// exactly the frame the sample model is trained in (pipelines/synthetic.py: x forward,
// y up the thigh, z out of the leg), so it is sent unchanged:
//   ax, ay, az = accelerationIncludingGravity.x, .y, .z   m/s^2, gravity included
//                (specific force: about +9.81 on the axis that points up at rest)
//   gx, gy, gz = rotationRate.beta, .gamma, .alpha        deg/s about x, y, z -> rad/s
// Other pocket placements are the same frame turned 180 degrees about one axis; MOUNTS
// turns them back (applied to both sensors). Browsers that report the accelerometer with
// the opposite sign (older iOS Safari) are handled by the "invert" option, and a phone
// reporting in g instead of m/s^2 is detected from |a| and converted.

import { SimulatedIMU, SIM_POSTURES } from "./simulator.js";

export const CHANNELS = ["ax", "ay", "az", "gx", "gy", "gz"];
const G = 9.80665;
const DEG = Math.PI / 180;
const UNIT_CHECK_READINGS = 25; // readings looked at before deciding m/s^2 or g
const SIM_RATE_HZ = 100; // the simulated device's own rate; resampled to the model's rate
const SIM_TICK_MS = 50;
const SIM_CYCLE_S = 20;

export const MOUNTS = {
  "out-up": [1, 1, 1],
  "in-up": [-1, 1, -1], // turned about y
  "out-down": [-1, -1, 1], // turned about z
  "in-down": [1, -1, -1], // turned about x
};

function nowSeconds() {
  return (performance.timeOrigin + performance.now()) / 1000;
}

/** The phone's accelerometer and gyroscope through `devicemotion` events. */
export class MotionSource {
  constructor({ mount = "out-up", invert = false, onInfo = () => {} } = {}) {
    this.configure({ mount, invert });
    this.onInfo = onInfo;
    this.channels = null; // known after the first event: with or without the gyroscope
    this.scale = null; // 1 (m/s^2) or G (the device reports in g)
    this.magnitudes = [];
    this.lastT = 0;
    this.handler = (event) => this.onMotion(event);
  }

  /** Where the phone sits (a MOUNTS key) and whether its accelerometer sign is flipped. */
  configure({ mount, invert }) {
    this.sign = MOUNTS[mount] || MOUNTS["out-up"];
    this.accSign = invert ? -1 : 1;
  }

  /** iOS 13+: must be called straight from a click/tap handler. Resolves to true if allowed. */
  static async requestPermission() {
    const api = globalThis.DeviceMotionEvent;
    if (!api) return false;
    if (typeof api.requestPermission !== "function") return true;
    return (await api.requestPermission()) === "granted";
  }

  start(onReading) {
    this.onReading = onReading;
    window.addEventListener("devicemotion", this.handler);
  }

  stop() {
    window.removeEventListener("devicemotion", this.handler);
  }

  onMotion(event) {
    const a = event.accelerationIncludingGravity;
    if (!a || !isNum(a.x) || !isNum(a.y) || !isNum(a.z)) return;
    const r = event.rotationRate;
    const hasGyro = !!r && isNum(r.alpha) && isNum(r.beta) && isNum(r.gamma);
    if (this.channels === null) this.channels = hasGyro ? CHANNELS : CHANNELS.slice(0, 3);
    const [sx, sy, sz] = this.sign;
    let acc = [sx * a.x, sy * a.y, sz * a.z].map((v) => v * this.accSign);
    if (!this.unitsKnown(acc)) return;
    acc = acc.map((v) => v * this.scale);
    if (this.channels.length === 6 && !hasGyro) return; // a gyro that stopped reporting
    const row = this.channels.length === 6
      ? [...acc, sx * r.beta * DEG, sy * r.gamma * DEG, sz * r.alpha * DEG]
      : acc;
    const t = (performance.timeOrigin + event.timeStamp) / 1000;
    if (t <= this.lastT) return;
    this.lastT = t;
    this.onReading(t, row);
  }

  /** Units are checked at the edge: a median |a| near 1 means g, not m/s^2. */
  unitsKnown(acc) {
    if (this.scale !== null) return true;
    this.magnitudes.push(Math.hypot(...acc));
    if (this.magnitudes.length < UNIT_CHECK_READINGS) return false;
    const sorted = this.magnitudes.slice().sort((x, y) => x - y);
    const median = sorted[Math.floor(sorted.length / 2)];
    this.scale = median < 3 ? G : 1;
    if (this.scale !== 1) this.onInfo("This device reports acceleration in g; converting to m/s²");
    return true;
  }
}

/** A simulated thigh-worn IMU at SIM_RATE_HZ, paced by the wall clock. */
export class SimulatedSource {
  constructor(posture = "cycle") {
    this.channels = CHANNELS;
    this.imu = new SimulatedIMU(posture === "cycle" ? SIM_POSTURES[0] : posture, Date.now() % 100000);
    this.k = 0; // samples produced
    this.setPosture(posture);
  }

  /** A posture name, or "cycle" to go through all of them, SIM_CYCLE_S each. */
  setPosture(posture) {
    this.cycle = posture === "cycle";
    if (!this.cycle) this.imu.setPosture(posture, this.simTime());
  }

  simTime() {
    return this.k / SIM_RATE_HZ;
  }

  start(onReading) {
    this.started = nowSeconds() - this.simTime();
    this.timer = setInterval(() => this.tick(onReading), SIM_TICK_MS);
  }

  stop() {
    clearInterval(this.timer);
  }

  tick(onReading) {
    const until = nowSeconds() - this.started;
    while (this.k / SIM_RATE_HZ <= until) {
      const s = this.simTime();
      if (this.cycle) {
        const posture = SIM_POSTURES[Math.floor(s / SIM_CYCLE_S) % SIM_POSTURES.length];
        this.imu.setPosture(posture, s);
      }
      onReading(this.started + s, this.imu.sample(s));
      this.k += 1;
    }
  }
}

function isNum(v) {
  return typeof v === "number" && Number.isFinite(v);
}
