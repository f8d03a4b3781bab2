// Crypto Market Hub: a WebSocket client for browsers (ES module, no dependencies).
//
// The npm package crypto-market-hub-client (clients/js/ in the hub's repository) and the file the
// app serves at /space/static/hub-client.js are this one file. Types: hub-client.d.ts, messages.d.ts.
//
//   import { HubSocket, endpointUrl } from "crypto-market-hub-client";  // or "/space/static/hub-client.js"
//   const market = new HubSocket(endpointUrl("/ws/market_data"), { symbols: ["BTC", "ETH"] });
//   market.addEventListener("price_update", (e) => console.log(e.detail.data.price));
//   market.addEventListener("state", (e) => console.log(e.detail.state));
//   market.connect();
//
// What it does for you:
// - reconnects with exponential backoff and full jitter (delay = random(0, min(max, base * 2^attempt)));
// - re-sends its subscriptions and news filter on every (re)connect;
// - resumes from the last seq it saw: it reconnects with ?since=<seq>&epoch=<epoch>, and drops
//   messages it already delivered, so a restart of the server loses no news; `since`/`epoch`
//   options resume from a position saved earlier; on SEQ_AHEAD it forgets its position;
// - market prices are deduplicated per symbol (the server coalesces them per symbol, so their seqs
//   only grow per symbol);
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

// Close codes after which reconnecting cannot help: the server judged what we send, not its own state
// (protocol error, unsupported or invalid data, policy: bad token, refused origin, abuse; too big;
// extension). The same set as the Python client's (clients/python/crypto_hub_client/client.py).
export const FINAL_CLOSE_CODES = Object.freeze([1002, 1003, 1007, 1008, 1009, 1010]);
// core/protocol.py's SubscribeRequest bound: larger subscriptions go in several requests.
const MAX_SYMBOLS_PER_REQUEST = 500;
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

function chunks(items, size = MAX_SYMBOLS_PER_REQUEST) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export class HubSocket extends EventTarget {
  /**
   * @param {string} url  ws:// or wss:// URL of one endpoint, e.g. endpointUrl("/ws/news").
   * @param {object} options  symbols, keywords, sources, token, backlog (/ws/news), since and epoch (a
   *   position saved earlier), plus any key of DEFAULTS; `WebSocket` to inject an implementation (tests, Node).
   */
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.options = { ...DEFAULTS, ...options };
    const { baseDelayMs, maxDelayMs } = this.options;
    if (!(baseDelayMs > 0 && maxDelayMs >= baseDelayMs)) {
      throw new RangeError(`expected 0 < baseDelayMs <= maxDelayMs, got baseDelayMs=${baseDelayMs}, `
        + `maxDelayMs=${maxDelayMs}`);
    }
    if (options.since !== undefined && options.since !== null && !Number.isInteger(options.since)) {
      throw new TypeError(`expected an integer since (a message's seq), got ${options.since}`);
    }
    this.symbols = new Set((options.symbols || []).map((s) => s.toUpperCase()));
    this.filter = options.keywords || options.sources
      ? { keywords: options.keywords || [], sources: options.sources || null } : null;
    this.state = "idle";
    this.lastSeq = options.since ?? null;
    this.epoch = options.epoch ?? null;
    // Newest seq delivered per key: the symbol for prices, "" for everything else.
    this._lastByKey = new Map(this.lastSeq === null ? [] : [["", this.lastSeq]]);
    this.attempt = 0;
    this.reconnects = 0;
    this.received = 0;
    this.stats = { connects: 0, messages: 0, duplicatesDropped: 0, filteredLocally: 0, heartbeatTimeouts: 0 };
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
    return this._sendSymbols("subscribe", wanted);
  }

  /** Remove symbols from the price stream. */
  unsubscribe(symbols) {
    const unwanted = symbols.map((s) => s.toUpperCase());
    unwanted.forEach((s) => this.symbols.delete(s));
    return this._sendSymbols("unsubscribe", unwanted);
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

  _sendSymbols(action, symbols) {
    return chunks(symbols).map((part) => this.send({ action, symbols: part })).every(Boolean);
  }

  // The URL carries the subscription and filter too, so the server applies them before it replays
  // what we missed; they are also re-sent as messages once open (for servers that ignore the URL).
  _connectUrl() {
    const params = { token: this.options.token || null };
    if (this.symbols.size) params.symbols = [...this.symbols].join(",");
    if (this.filter && this.filter.keywords.length) params.keywords = this.filter.keywords.join(",");
    if (this.filter && this.filter.sources && this.filter.sources.length) params.sources = this.filter.sources.join(",");
    if (this.options.resume && (this.lastSeq !== null || this.epoch !== null)) {
      params.since = this.lastSeq ?? 0;
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
    this.stats.connects += 1;
    this._setState("open", { attempt: this.attempt, resumedFrom: this.lastSeq });
    if (this.symbols.size) this._sendSymbols("subscribe", [...this.symbols]);
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
    if (message === null || typeof message !== "object") return;
    const code = message.type === "error" && message.error ? message.error.code : null;
    if (code === "SEQ_AHEAD") {
      // Our position is ahead of the server's stream (a write it lost, or another server): forget it,
      // or the items it now sends under those seqs would be dropped as already seen.
      this.epoch = null;
      this.lastSeq = null;
      this._lastByKey.clear();
    }
    if (!this._isNew(message)) {
      this.stats.duplicatesDropped += 1;
      return;
    }
    if (message.type === "news" && !this._wantsNews(message.data || {})) {
      this.stats.filteredLocally += 1;
      return;
    }
    this.received += 1;
    this.stats.messages += 1;
    if (code === "HISTORY_GAP") this._emit("gap", message.error);
    this._emit("message", message);
    if (message.type) this._emit(message.type, message);
  }

  // Track seq/epoch; return false for a message already delivered before a reconnect. Prices are
  // tracked per symbol: the server's outbox coalesces them per symbol, so a symbol's next price can
  // carry a lower seq than another symbol's last one.
  _isNew(message) {
    if (typeof message.seq !== "number" || typeof message.epoch !== "string" || !message.epoch) return true;
    if (message.epoch !== this.epoch) {
      if (this.epoch !== null) this._emit("epoch", { previous: this.epoch, current: message.epoch });
      this.epoch = message.epoch;
      this.lastSeq = null;
      this._lastByKey.clear();
    }
    const key = message.type === "price_update" && message.data ? String(message.data.symbol) : "";
    const last = this._lastByKey.get(key);
    if (last !== undefined && message.seq <= last) return false;
    this._lastByKey.set(key, message.seq);
    this.lastSeq = this.lastSeq === null ? message.seq : Math.max(this.lastSeq, message.seq);
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
    if (!this.options.reconnect || FINAL_CLOSE_CODES.includes(event.code)) {
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
        if (!this._awaitingPong) return;
        this.stats.heartbeatTimeouts += 1;
        this._drop(WATCHDOG_CLOSE, "heartbeat timeout");
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
    // Node 18 has Event and EventTarget but no global CustomEvent.
    const event = typeof CustomEvent === "function"
      ? new CustomEvent(type, { detail }) : Object.assign(new Event(type), { detail });
    this.dispatchEvent(event);
  }
}
