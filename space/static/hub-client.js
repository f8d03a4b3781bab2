// Crypto Market Hub: a WebSocket client for browsers (ES module, no dependencies).
//
//   import { HubSocket, endpointUrl } from "/space/static/hub-client.js";
//   const market = new HubSocket(endpointUrl("/ws/market_data"), { symbols: ["BTC", "ETH"] });
//   market.addEventListener("price_update", (e) => console.log(e.detail.data.price));
//   market.addEventListener("state", (e) => console.log(e.detail.state));
//   market.connect();
//
// What it does for you:
// - reconnects with exponential backoff and full jitter (delay = random(0, min(max, base * 2^attempt)));
// - re-sends its subscriptions and news filter on every (re)connect;
// - resumes from the last seq it saw: it reconnects with ?since=<seq>&epoch=<epoch>, and drops
//   messages it already delivered, so a restart of the server loses no news;
// - a heartbeat watchdog: it pings every `heartbeatMs` and, when nothing at all arrives within
//   `pongTimeoutMs` after a ping, drops the connection and reconnects (a dead TCP link can take
//   minutes to raise `close` on its own);
// - events: "message" for every message, one event per message type ("price_update", "news",
//   "error", "ack", "pong"...), "state" for connection changes, "epoch" when the server's history
//   was reset, "gap" when some messages could not be replayed (HISTORY_GAP).
// - the news filter holds across reconnects, replayed items included;
// - `backlog: N` (/ws/news) asks for the latest N items on the first connect (?backlog=N), so a
//   new page shows news at once; a reconnect resumes with ?since= instead.

export const DEFAULTS = Object.freeze({
  baseDelayMs: 500,      // first reconnect waits up to this long
  maxDelayMs: 30000,     // no wait is longer than this
  heartbeatMs: 30000,    // the design document's recommended heartbeat
  pongTimeoutMs: 10000,  // silence allowed after a ping before the link is declared dead
  stableAfterMs: 5000,   // a connection open this long resets the backoff
  resume: true,
  reconnect: true,
  maxAttempts: Infinity,
});

// Close codes after which reconnecting cannot help: the server refused us (auth, origin, abuse).
const FINAL_CLOSE_CODES = new Set([1008]);
const CLIENT_CLOSE = 1000;
const WATCHDOG_CLOSE = 4000;

/** Return the full-jitter backoff delay, in ms, before reconnect attempt `attempt` (0-based). */
export function backoffDelay(attempt, baseDelayMs = DEFAULTS.baseDelayMs, maxDelayMs = DEFAULTS.maxDelayMs,
                             random = Math.random) {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** Return the ws:// or wss:// URL of `path` on the page's own host (the Space URL when deployed). */
export function endpointUrl(path, base = globalThis.location) {
  const scheme = base.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${base.host}${path}`;
}

/** Return `url` with the resume parameters (and a token) set. */
export function withQuery(url, params) {
  const parsed = new URL(url);
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined) parsed.searchParams.delete(key);
    else parsed.searchParams.set(key, String(value));
  }
  return parsed.toString();
}

export class HubSocket extends EventTarget {
  /**
   * @param {string} url  ws:// or wss:// URL of one endpoint, e.g. endpointUrl("/ws/news").
   * @param {object} options  symbols, keywords, sources, token, backlog (/ws/news), plus any key of DEFAULTS;
   *   `WebSocket` to inject an implementation (tests, Node).
   */
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.options = { ...DEFAULTS, ...options };
    this.symbols = new Set((options.symbols || []).map((s) => s.toUpperCase()));
    this.filter = options.keywords || options.sources
      ? { keywords: options.keywords || [], sources: options.sources || null } : null;
    this.state = "idle";
    this.lastSeq = null;
    this.epoch = null;
    this.attempt = 0;
    this.reconnects = 0;
    this.received = 0;
    this.ws = null;
    this._timers = {};
    this._awaitingPong = false;
  }

  // ---------------------------------------------------------------- public API

  /** Open the connection (and keep it open until close()). */
  connect() {
    if (this.state === "open" || this.state === "connecting") return this;
    this._open();
    return this;
  }

  /** Close for good: no reconnect follows. */
  close(code = CLIENT_CLOSE, reason = "client closed") {
    this._clearTimers();
    this._setState("closed", { code, reason });
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      this._detach(ws);
      try { ws.close(code, reason); } catch (_) { /* already closing */ }
    }
  }

  /** Send one JSON message now; returns false when not connected (state is re-sent on reconnect). */
  send(message) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** Add symbols to the price stream (/ws/market_data); remembered across reconnects. */
  subscribe(symbols) {
    const wanted = symbols.map((s) => s.toUpperCase());
    wanted.forEach((s) => this.symbols.add(s));
    return this.send({ action: "subscribe", symbols: wanted });
  }

  /** Remove symbols from the price stream. */
  unsubscribe(symbols) {
    const unwanted = symbols.map((s) => s.toUpperCase());
    unwanted.forEach((s) => this.symbols.delete(s));
    return this.send({ action: "unsubscribe", symbols: unwanted });
  }

  /** Ask for the latest update of every tracked symbol at once. */
  getAll() {
    return this.send({ action: "get_all" });
  }

  /** Set the news keyword (and source) filter (/ws/news); remembered across reconnects. */
  setFilter(keywords, sources = null) {
    this.filter = { keywords, sources };
    return this.send({ action: "filter", keywords, sources });
  }

  /** Send a heartbeat now. */
  ping() {
    return this.send({ type: "ping" });
  }

  // ---------------------------------------------------------------- connection life

  // The URL carries the subscription and filter too, so the server applies them before it replays
  // what we missed; they are also re-sent as messages once open (for servers that ignore the URL).
  _connectUrl() {
    const params = { token: this.options.token || null };
    if (this.symbols.size) params.symbols = [...this.symbols].join(",");
    if (this.filter && this.filter.keywords.length) params.keywords = this.filter.keywords.join(",");
    if (this.filter && this.filter.sources && this.filter.sources.length) params.sources = this.filter.sources.join(",");
    if (this.options.resume && this.lastSeq !== null) {
      params.since = this.lastSeq;
      params.epoch = this.epoch;
    } else if (this.options.backlog) {
      params.backlog = this.options.backlog;
    }
    return withQuery(this.url, params);
  }

  _open() {
    const Impl = this.options.WebSocket || globalThis.WebSocket;
    this._setState(this.reconnects || this.attempt ? "reconnecting" : "connecting", { attempt: this.attempt });
    let ws;
    try {
      ws = new Impl(this._connectUrl());
    } catch (err) {
      this._scheduleReconnect({ code: 1006, reason: String(err) });
      return;
    }
    this.ws = ws;
    ws.onopen = () => this._onOpen(ws);
    ws.onmessage = (event) => this._onMessage(ws, event);
    ws.onclose = (event) => this._onClose(ws, event);
    ws.onerror = () => { /* a close event always follows */ };
  }

  _onOpen(ws) {
    if (ws !== this.ws) return;
    this._setState("open", { attempt: this.attempt, resumedFrom: this.lastSeq });
    if (this.symbols.size) this.send({ action: "subscribe", symbols: [...this.symbols] });
    if (this.filter) this.send({ action: "filter", keywords: this.filter.keywords, sources: this.filter.sources });
    this._startHeartbeat();
    this._timers.stable = setTimeout(() => { this.attempt = 0; }, this.options.stableAfterMs);
  }

  _onMessage(ws, event) {
    if (ws !== this.ws) return;
    this._awaitingPong = false;
    clearTimeout(this._timers.pong);
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (_) {
      return; // not ours to interpret
    }
    if (!this._isNew(message)) return;
    if (message.type === "news" && !this._wantsNews(message.data || {})) return;
    this.received += 1;
    if (message.type === "error" && message.error && message.error.code === "HISTORY_GAP") {
      this._emit("gap", message.error);
    }
    if (message.type === "error" && message.error && message.error.code === "SEQ_AHEAD") {
      // Our position is ahead of the server's stream: forget it, or the items it now sends under
      // those seqs would be dropped as already seen.
      this.epoch = null;
      this.lastSeq = null;
    }
    this._emit("message", message);
    if (message.type) this._emit(message.type, message);
  }

  // Track seq/epoch; return false for a message already delivered before a reconnect.
  _isNew(message) {
    if (typeof message.seq !== "number" || !message.epoch) return true;
    if (message.epoch !== this.epoch) {
      if (this.epoch !== null) this._emit("epoch", { previous: this.epoch, current: message.epoch });
      this.epoch = message.epoch;
      this.lastSeq = message.seq;
      return true;
    }
    if (this.lastSeq !== null && message.seq <= this.lastSeq) return false;
    this.lastSeq = message.seq;
    return true;
  }

  // The server applies the filter too, but only once it has received it: news replayed at connect
  // time (?since=) arrives before the re-sent filter, so the client applies the same rule itself.
  _wantsNews(data) {
    if (!this.filter) return true;
    const keywords = (this.filter.keywords || []).map((k) => k.trim().toLowerCase()).filter(Boolean);
    const text = `${data.title || ""} ${data.description || ""}`.toLowerCase();
    if (keywords.length && !keywords.some((k) => text.includes(k))) return false;
    const sources = this.filter.sources && this.filter.sources.map((s) => s.toLowerCase());
    return !sources || sources.includes(String(data.source || "").toLowerCase());
  }

  _onClose(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    this._clearTimers();
    const detail = { code: event.code, reason: event.reason };
    if (!this.options.reconnect || FINAL_CLOSE_CODES.has(event.code)) {
      this._setState("closed", detail);
      return;
    }
    this._scheduleReconnect(detail);
  }

  _scheduleReconnect(detail) {
    if (this.attempt >= this.options.maxAttempts) {
      this._setState("closed", { ...detail, reason: "gave up reconnecting" });
      return;
    }
    const delayMs = backoffDelay(this.attempt, this.options.baseDelayMs, this.options.maxDelayMs);
    this._setState("waiting", { ...detail, attempt: this.attempt, delayMs });
    this.attempt += 1;
    this.reconnects += 1;
    this._timers.reconnect = setTimeout(() => this._open(), delayMs);
  }

  _startHeartbeat() {
    this._timers.heartbeat = setInterval(() => {
      if (!this.ping() || this._awaitingPong) return; // the first unanswered ping's deadline stands
      this._awaitingPong = true;
      this._timers.pong = setTimeout(() => {
        if (this._awaitingPong) this._drop(WATCHDOG_CLOSE, "heartbeat timeout");
      }, this.options.pongTimeoutMs);
    }, this.options.heartbeatMs);
  }

  // Give up on a silent socket at once instead of waiting for its close handshake.
  _drop(code, reason) {
    const ws = this.ws;
    if (!ws) return;
    this._detach(ws);
    try { ws.close(code, reason); } catch (_) { /* ignore */ }
    this._onClose(ws, { code, reason });
  }

  _detach(ws) {
    ws.onopen = ws.onmessage = ws.onerror = null;
    ws.onclose = null;
  }

  _clearTimers() {
    clearTimeout(this._timers.reconnect);
    clearTimeout(this._timers.pong);
    clearTimeout(this._timers.stable);
    clearInterval(this._timers.heartbeat);
    this._awaitingPong = false;
  }

  _setState(state, detail = {}) {
    this.state = state;
    this._emit("state", { state, ...detail });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
