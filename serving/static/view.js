// Everything the page shows. Values from the server are only ever set as text
// (textContent, createElement): never parsed as HTML.

const KNOWN_COLORS = {
  sitting: "#1f5fa8", standing: "#217a35", lying: "#6c3fb0", walking: "#b35300", running: "#b3202a",
};
const PALETTE = ["#00707f", "#7a6000", "#a3285f", "#46525e", "#3d6b00", "#8a3b00"];
const STATE_TEXT = {
  idle: "idle", connecting: "connecting…", open: "connected, waiting for the server", connected: "connected",
  reconnecting: "reconnecting", stopped: "stopped",
};
const TIMELINE_MS = 5 * 60 * 1000;
const MAX_MESSAGES = 5;

const $ = (id) => document.getElementById(id);

function percent(p) {
  const v = Number(p);
  return Number.isFinite(v) ? `${Math.round(v * 100)}%` : "–";
}

function formatDuration(ms) {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

export class View {
  constructor() {
    this.colors = new Map();
    this.bars = new Map(); // label -> {fill, value, row}
    this.timeline = []; // {from, to, label}
    this.count = 0;
    this.lastLabel = null;
    new ResizeObserver(() => this.drawTimeline()).observe($("timeline"));
    setInterval(() => this.drawTimeline(), 1000);
    $("timeline-minutes").textContent = String(TIMELINE_MS / 60000);
  }

  setState(name, detail) {
    const state = $("state");
    state.dataset.state = name;
    state.textContent = detail ? `${STATE_TEXT[name] || name}: ${detail}` : (STATE_TEXT[name] || name);
  }

  setModel(model, rateHz) {
    if (!model || typeof model !== "object") return;
    const spec = model.spec || {};
    const parts = [`${model.name ?? "?"} v${model.version ?? "?"}`];
    if (model.alias) parts.push(String(model.alias));
    parts.push(`${Number(rateHz)} Hz`);
    if (spec.window_s) parts.push(`${Number(spec.window_s)} s windows`);
    $("stat-model").textContent = parts.join(" · ");
    if (Array.isArray(model.classes)) this.setClasses(model.classes.map(String));
  }

  colorOf(label) {
    if (!this.colors.has(label)) {
      const known = Object.prototype.hasOwnProperty.call(KNOWN_COLORS, label) ? KNOWN_COLORS[label] : null;
      this.colors.set(label, known || PALETTE[this.colors.size % PALETTE.length]);
    }
    return this.colors.get(label);
  }

  /** One probability bar and one legend entry per class, in the model's order. */
  setClasses(classes) {
    const same = classes.length === this.bars.size && classes.every((c) => this.bars.has(c));
    if (same) return;
    const bars = $("bars");
    bars.replaceChildren();
    this.bars.clear();
    for (const label of classes) {
      const row = document.createElement("div");
      row.className = "bar-row";
      const name = document.createElement("span");
      name.className = "bar-name";
      name.textContent = label;
      const track = document.createElement("div");
      track.className = "bar-track";
      track.setAttribute("role", "progressbar");
      track.setAttribute("aria-label", label);
      track.setAttribute("aria-valuemin", "0");
      track.setAttribute("aria-valuemax", "100");
      const fill = document.createElement("div");
      fill.className = "bar-fill";
      fill.style.background = this.colorOf(label);
      track.append(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = "–";
      row.append(name, track, value);
      bars.append(row);
      this.bars.set(label, { fill, value, track });
    }
    this.drawLegend(classes);
  }

  drawLegend(classes) {
    const legend = $("legend");
    legend.replaceChildren();
    for (const label of classes) {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = this.colorOf(label);
      swatch.setAttribute("aria-hidden", "true");
      item.append(swatch, document.createTextNode(label));
      legend.append(item);
    }
  }

  showPrediction(p, smooth, roundTripMs) {
    const useSmooth = smooth && typeof p.smoothed_label === "string";
    const label = String(useSmooth ? p.smoothed_label : p.label);
    const probs = (useSmooth ? p.smoothed_probabilities : p.probabilities) || {};
    const classes = Object.keys(probs).map(String);
    if (classes.length) this.setClasses(classes);
    if (label !== this.lastLabel) { // aria-live: announce changes, not every window
      $("posture").textContent = label;
      $("posture").style.color = this.colorOf(label);
      this.lastLabel = label;
    }
    $("confidence").textContent = `confidence ${percent(probs[label] ?? p.confidence)}`;
    const start = Number(p.window_start), end = Number(p.window_end);
    const raw = useSmooth ? ` · this window: ${String(p.label)} ${percent(p.confidence)}` : "";
    $("window-detail").textContent = `window ${(end - start).toFixed(1)} s${raw} · model v${String(p.model_version ?? "?")}`;
    for (const [name, bar] of this.bars) {
      const v = Number(probs[name]);
      const pct = Number.isFinite(v) ? Math.max(0, Math.min(100, v * 100)) : 0;
      bar.fill.style.width = `${pct}%`;
      bar.track.setAttribute("aria-valuenow", String(Math.round(pct)));
      bar.value.textContent = percent(v);
    }
    this.count += 1;
    $("stat-count").textContent = String(this.count);
    const server = Number(p.latency_ms);
    $("stat-server").textContent = Number.isFinite(server) ? `${server.toFixed(1)} ms` : "–";
    if (roundTripMs !== null) $("stat-rtt").textContent = `${Math.round(roundTripMs)} ms`;
    this.addToTimeline(label);
  }

  addToTimeline(label) {
    const now = Date.now();
    const last = this.timeline[this.timeline.length - 1];
    const from = last && now - last.to < 3000 ? last.to : now - 1000;
    this.timeline.push({ from, to: now, label });
    while (this.timeline.length && this.timeline[0].to < now - TIMELINE_MS) this.timeline.shift();
    this.drawTimeline();
    this.describeTimeline();
  }

  drawTimeline() {
    const canvas = $("timeline");
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * dpr));
    const height = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#eef0f3";
    ctx.fillRect(0, 0, width, height);
    const now = Date.now();
    const x = (t) => Math.round(((t - (now - TIMELINE_MS)) / TIMELINE_MS) * width); // whole pixels: no seams
    for (const { from, to, label } of this.timeline) {
      ctx.fillStyle = this.colorOf(label);
      ctx.fillRect(x(from), 0, Math.max(1, x(to) - x(from)), height);
    }
  }

  describeTimeline() {
    const totals = new Map();
    for (const { from, to, label } of this.timeline) totals.set(label, (totals.get(label) || 0) + (to - from));
    const parts = [...totals].sort((a, b) => b[1] - a[1]).map(([l, ms]) => `${l} ${formatDuration(ms)}`);
    $("timeline").setAttribute("aria-label", `Last ${TIMELINE_MS / 60000} minutes: ${parts.join(", ")}`);
  }

  setRates({ framesPerS, samplesPerS }) {
    $("stat-fps").textContent = `${framesPerS.toFixed(1)} frames/s · ${Math.round(samplesPerS)} samples/s`;
  }

  setReading(row) {
    const f = (v) => (v >= 0 ? " " : "") + v.toFixed(2);
    const acc = `a ${f(row[0])} ${f(row[1])} ${f(row[2])} m/s²`;
    $("stat-reading").textContent = row.length >= 6 ? `${acc} · g ${f(row[3])} ${f(row[4])} ${f(row[5])} rad/s` : acc;
  }

  addMessage(text) {
    const list = $("messages");
    const item = document.createElement("li");
    item.textContent = text;
    list.prepend(item);
    while (list.children.length > MAX_MESSAGES) list.lastElementChild.remove();
  }
}
