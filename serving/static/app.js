// The browser test client of `posture serve`: a sample source (this device's motion sensors
// or a simulated IMU) streamed to /v1/stream, predictions shown as they come back.

import { StreamConnection, streamUrl } from "./connection.js";
import { RecordPanel } from "./recorder.js";
import { MotionSource, SimulatedSource } from "./sources.js";
import { Streamer } from "./streamer.js";
import { View } from "./view.js";

const NO_MOTION_AFTER_MS = 3000;
const READING_EVERY_MS = 250;

const $ = (id) => document.getElementById(id);
const form = $("controls");
const view = new View();
let session = null; // {kind, source, connection, streamer, helloSent, readings}
const recorder = new RecordPanel({
  send: (message) => Boolean(session && session.connection.send(JSON.stringify(message))),
  streaming: () => Boolean(session && session.connection.isReady),
  startStreaming: () => { if (!session) form.requestSubmit(); },
  message: (text) => view.addMessage(text),
});

function deviceId() {
  const fresh = () => `browser-${[...crypto.getRandomValues(new Uint8Array(6))].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
  try {
    const id = localStorage.getItem("posture.device_id") || fresh();
    localStorage.setItem("posture.device_id", id);
    return id;
  } catch {
    return fresh(); // storage blocked: one id per page load
  }
}

const DEVICE_ID = deviceId();

function selectedSource() {
  return form.elements.source.value;
}

function newSource(kind) {
  if (kind === "motion") {
    return new MotionSource({ mount: $("mount").value, invert: $("invert-acc").checked, onInfo: (m) => view.addMessage(m) });
  }
  return new SimulatedSource($("sim-posture").value);
}

function start(kind) {
  const source = newSource(kind);
  const s = { kind, source, streamer: null, helloSent: false, readings: 0, lastShown: 0 };
  s.connection = new StreamConnection(streamUrl($("api-key").value.trim()), {
    state: (name, detail) => onState(s, name, detail),
    open: () => sendHello(s),
    message: (m) => onMessage(s, m),
    unopened: () => checkKey(s),
  });
  session = s;
  source.start((t, row) => onReading(s, t, row));
  s.connection.start();
  s.ratesTimer = setInterval(() => view.setRates(s.streamer ? s.streamer.rates() : { framesPerS: 0, samplesPerS: 0 }), 1000);
  if (kind === "motion") {
    s.watchdog = setTimeout(() => {
      if (s.readings === 0) {
        view.addMessage(window.isSecureContext
          ? "No motion events yet: this device may have no motion sensors, or the browser blocks them."
          : "No motion events: phones give motion sensors only to HTTPS pages. Open this page over https://.");
      }
    }, NO_MOTION_AFTER_MS);
  }
  $("start").textContent = "Stop";
}

function stop() {
  if (!session) return;
  const s = session;
  session = null;
  clearInterval(s.ratesTimer);
  clearTimeout(s.watchdog);
  s.source.stop();
  if (s.streamer) s.streamer.stop();
  s.connection.stop();
  recorder.onStopped();
  $("start").textContent = "Start streaming";
}

function onState(s, name, detail) {
  if (s !== session && name !== "stopped") return;
  view.setState(name, detail);
  if (name !== "connected" && s.streamer) { // the session is gone: its samples go nowhere
    s.streamer.stop();
    s.streamer = null;
  }
  if (name === "connecting") s.helloSent = false;
}

function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** A handshake failed: if the server is up and refuses the key, stop and say so. */
async function checkKey(s) {
  let status;
  try {
    status = (await fetch("v1/models", { headers: authHeaders() })).status;
  } catch {
    return; // the server is down: keep retrying
  }
  if (status === 401 && s === session) {
    stop();
    view.addMessage("The server refused the API key (401): enter a valid key and press Start again.");
  }
}

/** The served model, for the bars and legend before the first prediction (optional). */
function showModel() {
  fetch("v1/models", { headers: authHeaders() }).then((r) => (r.ok ? r.json() : null)).then((body) => {
    const model = body && Array.isArray(body.models) ? body.models[0] : null;
    if (model && model.spec) view.setModel(model, model.spec.rate_hz);
    if (model && Array.isArray(model.classes)) recorder.setClasses(model.classes.map(String));
  }).catch(() => {});
}

/** The hello names the source's channels; the server picks the model's rate (see ready). */
function sendHello(s) {
  if (s.helloSent || !s.source.channels) return;
  s.helloSent = s.connection.sendHello({ device_id: DEVICE_ID, channels: s.source.channels });
}

function onReading(s, t, row) {
  s.readings += 1;
  if (!s.helloSent) sendHello(s);
  if (s.streamer) s.streamer.push(t, row);
  const now = performance.now();
  if (now - s.lastShown > READING_EVERY_MS) {
    view.setReading(row);
    s.lastShown = now;
  }
}

function onMessage(s, message) {
  if (message.type === "ready") {
    view.setModel(message.model, message.rate_hz);
    const streamer = new Streamer(s.connection, s.source.channels, message);
    if (!streamer.valid) {
      streamer.stop();
      view.addMessage(`The model needs channels ${String(message.channels)}; this source sends ${s.source.channels}.`);
      stop();
      return;
    }
    s.streamer = streamer;
    if (Array.isArray(message.model && message.model.classes)) recorder.setClasses(message.model.classes.map(String));
    recorder.onReady();
  } else if (message.type === "recording") {
    recorder.onServer(message);
  } else if (message.type === "prediction") {
    const roundTrip = s.streamer ? s.streamer.roundTrip(message) : null;
    view.showPrediction(message, $("smooth").checked, roundTrip);
  } else if (message.type === "error") {
    recorder.onError(message);
    view.addMessage(`server: ${String(message.code)}: ${String(message.detail)}`);
  }
}

function showSourceOptions() {
  const motion = selectedSource() === "motion";
  $("sim-options").hidden = motion;
  $("motion-options").hidden = !motion;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (session) {
    stop();
    return;
  }
  const kind = selectedSource();
  if (kind === "motion") {
    let allowed = false;
    try {
      allowed = await MotionSource.requestPermission(); // first thing in the gesture (iOS)
    } catch (err) {
      view.addMessage(`Motion sensors: ${err && err.message ? err.message : err}`);
    }
    if (!allowed) {
      view.addMessage("Motion sensors are not available or permission was refused.");
      return;
    }
  }
  start(kind);
});

form.elements.source.forEach((radio) => radio.addEventListener("change", () => {
  showSourceOptions();
  if (session) { // switch sources: a new session (permission is asked on Start only)
    stop();
    if (selectedSource() === "sim") start("sim");
  }
}));

$("sim-posture").addEventListener("change", () => {
  if (session && session.kind === "sim") session.source.setPosture($("sim-posture").value);
});

for (const id of ["mount", "invert-acc"]) {
  $(id).addEventListener("change", () => {
    if (session && session.kind === "motion") session.source.configure({ mount: $("mount").value, invert: $("invert-acc").checked });
  });
}

if (!window.isSecureContext) {
  const warn = document.createElement("strong");
  warn.textContent = " This page is not on HTTPS, so a phone will not give it motion data.";
  $("https-note").append(warn);
}

const touch = navigator.maxTouchPoints > 0 && "DeviceMotionEvent" in window;
if (touch) form.elements.source.value = "motion";
showSourceOptions();
$("api-key").addEventListener("change", showModel);
showModel();
