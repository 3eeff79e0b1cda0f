// The Record panel: labelled data from this device for retraining (docs/protocol.md, "Recording").
// Pick a label (the model's classes) and a subject, press Record: after a countdown (time to put
// the phone in place) a `label` message asks the server to record; changing the label while
// recording splits the files; Stop sends label null. The server's `recording` messages say what
// it recorded; between them the seconds are counted here.

const COUNTDOWN_S = 3;
const RECORD_CODES = new Set(["recording_disabled", "recording_forbidden", "recording_failed", "bad_record", "bad_label"]);

const $ = (id) => document.getElementById(id);

export class RecordPanel {
  /**
   * link: send(obj) -> bool (a label message on the ready session), streaming() -> bool,
   * startStreaming() (as the Start button does), message(text).
   */
  constructor(link) {
    this.link = link;
    this.state = "idle"; // idle | countdown | recording
    this.server = {}; // seconds per label, as the server last said
    this.since = null; // when the current label's live count started (performance.now())
    this.countdown = null;
    this.ticker = null;
    $("record-toggle").addEventListener("click", () => this.toggle());
    $("record-label").addEventListener("change", () => this.relabel());
    this.render();
  }

  /** The model's classes are the labels one can record. */
  setClasses(classes) {
    const select = $("record-label");
    const current = select.value;
    if ([...select.options].map((o) => o.value).join() === classes.join()) return;
    select.replaceChildren(...classes.map((c) => new Option(c, c)));
    if (classes.includes(current)) select.value = current;
  }

  toggle() {
    if (this.state === "idle") this.begin();
    else this.end();
  }

  begin() {
    const subject = $("record-subject").value.trim();
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(subject)) {
      this.link.message("Record: enter a subject name (letters, digits, _ . -), e.g. alice.");
      $("record-subject").focus();
      return;
    }
    if (!this.link.streaming()) this.link.startStreaming();
    this.state = "countdown";
    let left = Number($("record-countdown").value) >= 0 ? Number($("record-countdown").value) : COUNTDOWN_S;
    const tick = () => {
      if (this.state !== "countdown") return;
      if (left <= 0 && this.link.streaming()) {
        this.ask();
        return;
      }
      $("record-state").textContent = left > 0 ? `Recording in ${left} s…` : "Waiting for the server…";
      left -= 1;
      this.countdown = setTimeout(tick, 1000);
    };
    tick();
    this.render();
  }

  /** The label message that starts (or, after a reconnect, resumes) recording. */
  ask() {
    const sent = this.link.send({ type: "label", label: $("record-label").value, subject: $("record-subject").value.trim() });
    if (!sent) {
      this.countdown = setTimeout(() => this.ask(), 500);
      return;
    }
    $("record-state").textContent = "Waiting for the server…";
  }

  relabel() {
    if (this.state === "recording") this.link.send({ type: "label", label: $("record-label").value });
  }

  end() {
    clearTimeout(this.countdown);
    if (this.state === "recording") this.link.send({ type: "label", label: null });
    this.stopCounting();
    this.state = "idle";
    this.render();
  }

  /** A new session (a reconnect): recording goes on in it. */
  onReady() {
    if (this.state === "recording") {
      this.stopCounting();
      this.state = "countdown";
      this.ask();
    }
  }

  /** The connection stopped (Stop streaming): so does recording. */
  onStopped() {
    if (this.state !== "idle") this.end();
  }

  onServer(message) {
    clearInterval(this.ticker); // the server's seconds include what was counted here
    this.since = null;
    this.server = message.seconds && typeof message.seconds === "object" ? { ...message.seconds } : {};
    if (message.recording) {
      this.state = "recording";
      this.label = String(message.label);
      this.since = performance.now();
      this.ticker = setInterval(() => this.renderSeconds(), 500);
    } else if (this.state === "recording") {
      this.state = "idle"; // stopped by the server (a full disk): the error message says why
    }
    this.render();
  }

  /** True when the error is about recording (then the panel shows it too). */
  onError(message) {
    if (!RECORD_CODES.has(String(message.code))) return false;
    clearTimeout(this.countdown);
    this.stopCounting();
    this.state = "idle";
    this.render();
    $("record-state").textContent = `Not recording: ${String(message.detail)}`;
    $("record-state").dataset.state = "refused";
    return true;
  }

  stopCounting() {
    clearInterval(this.ticker);
    if (this.since !== null && this.label) {
      this.server[this.label] = (this.server[this.label] || 0) + (performance.now() - this.since) / 1000;
    }
    this.since = null;
  }

  seconds() {
    const shown = { ...this.server };
    if (this.since !== null && this.label) shown[this.label] = (shown[this.label] || 0) + (performance.now() - this.since) / 1000;
    return shown;
  }

  render() {
    const state = $("record-state");
    state.dataset.state = this.state;
    if (this.state === "recording") state.textContent = `● Recording ${this.label} (${$("record-subject").value.trim()})`;
    else if (this.state === "idle") state.textContent = "Not recording";
    $("record-toggle").textContent = this.state === "idle" ? "Record" : "Stop recording";
    $("record-subject").disabled = this.state !== "idle";
    this.renderSeconds();
  }

  renderSeconds() {
    const list = $("record-seconds");
    const items = Object.entries(this.seconds()).map(([label, s]) => {
      const item = document.createElement("li");
      item.dataset.label = label;
      item.textContent = `${label}: ${s.toFixed(0)} s`;
      return item;
    });
    list.replaceChildren(...items);
  }
}
