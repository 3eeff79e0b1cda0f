// The WebSocket to /v1/stream (docs/protocol.md) with automatic reconnect: exponential
// backoff with jitter, reset once the server has said `ready` on a new connection.

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 5000;
const CLOSE_REASONS = {
  1001: "server going away",
  1006: "connection lost",
  1008: "rate limit exceeded",
  1009: "frame too big",
  1011: "server error",
};

/** ws:// or wss:// beside this page (same origin and path prefix), with the API key as `token`. */
export function streamUrl(token) {
  const url = new URL("v1/stream", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (token) url.searchParams.set("token", token);
  return url.toString();
}

export class StreamConnection {
  /**
   * handlers: state(name, detail), open(), message(obj) — `ready`, `prediction`, `error`;
   * unopened() when a handshake failed (server down, or the API key refused: browsers
   * do not tell which).
   * States: connecting, open (socket up, waiting for ready), connected, reconnecting, stopped.
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.wanted = false;
    this.attempt = 0;
    this.timer = null;
    this.openedSocket = null; // the last socket that got as far as open
  }

  get isReady() {
    return this.ready === true && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    this.wanted = true;
    this.attempt = 0;
    this.open();
  }

  stop() {
    this.wanted = false;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "client stopped");
    this.ws = null;
    this.handlers.state("stopped", "");
  }

  /** Send a text or binary frame; false when there is no ready session to take it. */
  send(data) {
    if (!this.isReady) return false;
    this.ws.send(data);
    return true;
  }

  /** The session's first message; false while the socket is not open yet. */
  sendHello(hello) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ type: "hello", ...hello }));
    return true;
  }

  open() {
    this.ready = false;
    this.handlers.state("connecting", this.attempt ? `attempt ${this.attempt + 1}` : "");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.handlers.state("reconnecting", String(err));
      this.retry(null);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.openedSocket = ws;
      this.handlers.state("open", "waiting for the server");
      this.handlers.open();
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws || typeof event.data !== "string") return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // not ours to show
      }
      if (!message || typeof message !== "object") return;
      if (message.type === "ready") {
        this.ready = true;
        this.attempt = 0;
        this.handlers.state("connected", "");
      }
      this.handlers.message(message);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      const opened = this.openedSocket === ws;
      this.ws = null;
      this.ready = false;
      if (this.wanted) this.retry(event);
      if (!opened && this.wanted) this.handlers.unopened();
    };
    ws.onerror = () => {}; // a close event follows with the code
  }

  retry(event) {
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt) * (0.75 + 0.5 * Math.random());
    this.attempt += 1;
    const code = event ? event.code : 0;
    const why = event ? (CLOSE_REASONS[code] || `closed (${code})`) : "could not connect";
    const reason = event && event.reason ? `: ${event.reason}` : "";
    this.handlers.state("reconnecting", `${why}${reason}; retrying in ${(delay / 1000).toFixed(1)} s`);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }
}
