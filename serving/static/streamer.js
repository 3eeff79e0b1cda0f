// Source readings -> the model's sampling grid -> sample frames on the WebSocket, and the
// figures the page shows: frames/s, samples/s, round-trip latency per prediction.

const FRAME_MS = 200; // a frame every 0.2 s: 10 samples at 50 Hz (protocol.md: 5-25 is sensible)
const MAX_GAP_S = 0.5; // the server's max_gap_s: a longer pause starts a new segment
const MAX_ROWS = 250; // per frame, well under the server's max_samples_per_frame
const RATE_WINDOW_MS = 3000;

/** Linear interpolation of irregular readings onto origin + k / rate, reading by reading. */
export class GridResampler {
  constructor(rateHz, maxGapS = MAX_GAP_S) {
    this.rate = rateHz;
    this.maxGap = maxGapS;
    this.prev = null;
  }

  /** Calls emit(t, row, newSegment) for each grid sample up to ``t``. */
  push(t, row, emit) {
    const prev = this.prev;
    if (prev && t <= prev.t) return; // late or repeated reading
    this.prev = { t, row };
    if (!prev || t - prev.t > this.maxGap) { // first reading, or after a pause: a new grid
      this.origin = t;
      this.k = 1;
      emit(t, row, true);
      return;
    }
    for (let tk = this.origin + this.k / this.rate; tk <= t; tk = this.origin + this.k / this.rate) {
      const w = (tk - prev.t) / (t - prev.t);
      emit(tk, row.map((v, i) => prev.row[i] + w * (v - prev.row[i])), false);
      this.k += 1;
    }
  }
}

/** Feeds one session: created on `ready` (its rate and channels), dropped when it closes. */
export class Streamer {
  constructor(connection, sourceChannels, ready) {
    this.connection = connection;
    this.rate = Number(ready.rate_hz);
    // The session's layout, from ready: each its index in the source's rows.
    this.columns = ready.channels.map((c) => sourceChannels.indexOf(c));
    const limit = Number(ready.limits && ready.limits.max_samples_per_frame) || MAX_ROWS;
    this.maxRows = Math.max(1, Math.min(MAX_ROWS, limit));
    this.resampler = new GridResampler(this.rate);
    this.rows = [];
    this.t0 = null;
    this.inFlight = []; // {lastT, sentAt} of sent frames, for round trips
    this.sent = []; // {at, rows} for frames/s
    this.startedAt = performance.now();
    this.timer = setInterval(() => this.flush(), FRAME_MS);
  }

  get valid() {
    return this.rate > 0 && this.columns.every((i) => i >= 0);
  }

  stop() {
    clearInterval(this.timer);
  }

  push(t, row) {
    this.resampler.push(t, row, (tk, values, newSegment) => {
      if (newSegment) this.flush(); // the next frame's t0 marks the jump for the server
      if (this.t0 === null) this.t0 = tk;
      this.rows.push(this.columns.map((i) => values[i]));
      this.lastT = tk;
      if (this.rows.length >= this.maxRows) this.flush();
    });
  }

  flush() {
    if (this.rows.length === 0) return;
    const frame = JSON.stringify({ samples: this.rows, t0: this.t0 });
    const now = performance.now();
    if (this.connection.send(frame)) {
      this.inFlight.push({ lastT: this.lastT, sentAt: now });
      if (this.inFlight.length > 200) this.inFlight.shift();
      this.sent.push({ at: now, rows: this.rows.length });
    }
    this.rows = [];
    this.t0 = null;
  }

  /** Milliseconds from sending the frame that completed this window to now (null: unknown). */
  roundTrip(prediction) {
    const end = Number(prediction.window_end);
    if (!Number.isFinite(end)) return null;
    const last = end - 1 / this.rate; // the window's last sample
    const tolerance = 0.5 / this.rate;
    while (this.inFlight.length && this.inFlight[0].lastT < last - tolerance) this.inFlight.shift();
    const frame = this.inFlight[0];
    return frame ? performance.now() - frame.sentAt : null;
  }

  /** {framesPerS, samplesPerS} over the last few seconds. */
  rates() {
    const now = performance.now();
    while (this.sent.length && this.sent[0].at < now - RATE_WINDOW_MS) this.sent.shift();
    const span = Math.max(1, Math.min(RATE_WINDOW_MS, now - this.startedAt)) / 1000;
    return {
      framesPerS: this.sent.length / span,
      samplesPerS: this.sent.reduce((n, f) => n + f.rows, 0) / span,
    };
  }
}
