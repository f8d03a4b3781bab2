// Declarations of hub-client.js, written by hand; the message types come from messages.d.ts, which
// `python -m clients.gen_js_types` generates from the server's message models.
import type { ClientMessage, ErrorDetail, ServerMessage, ServerMessageByType } from "./messages.js";

export * from "./messages.js";

/** Tunable defaults; every key can be overridden in the `HubSocket` options. */
export interface HubSocketDefaults {
  /** The first reconnect waits up to this long (ms). */
  baseDelayMs: number;
  /** No reconnect waits longer than this (ms). */
  maxDelayMs: number;
  /** A `ping` is sent this often (ms). */
  heartbeatMs: number;
  /** Silence allowed after a ping before the link is declared dead and dropped with code 4000 (ms). */
  pongTimeoutMs: number;
  /** A connection open this long resets the backoff (ms). */
  stableAfterMs: number;
  /** Reconnect with `?since=<seq>&epoch=<epoch>` and drop what was already delivered. */
  resume: boolean;
  /** Reconnect after a close that is not final. */
  reconnect: boolean;
  /** Give up (state `closed`) after this many reconnect attempts in a row. */
  maxAttempts: number;
}

export interface HubSocketOptions extends Partial<HubSocketDefaults> {
  /** `/ws/market_data`: symbols to subscribe to on every (re)connect. */
  symbols?: string[];
  /** `/ws/news`: only news whose title or description contains one of these (case-insensitive). */
  keywords?: string[];
  /** `/ws/news`: only news from these sources (by name, case-insensitive). */
  sources?: string[] | null;
  /** API token, sent as `?token=` (browsers cannot set headers on a WebSocket). */
  token?: string | null;
  /** `/ws/news`: the latest N retained items on the first connect (`?backlog=N`). */
  backlog?: number;
  /** Resume from a position saved earlier (a message's `seq`, with its `epoch`). */
  since?: number | null;
  epoch?: string | null;
  /** A WebSocket implementation, for Node or tests; default `globalThis.WebSocket`. */
  WebSocket?: new (url: string) => WebSocket;
}

export type ConnectionState = "idle" | "connecting" | "open" | "waiting" | "reconnecting" | "closed";

export interface StateDetail {
  state: ConnectionState;
  /** Reconnect attempts since the last stable connection. */
  attempt?: number;
  /** `waiting`: ms until the next attempt. */
  delayMs?: number;
  /** Close code and reason of the connection that just ended (4000: heartbeat timeout). */
  code?: number;
  reason?: string;
  /** `open`: the seq the connection resumed after, or null. */
  resumedFrom?: number | null;
}

export interface EpochDetail {
  previous: string;
  current: string;
}

export interface HubSocketStats {
  connects: number;
  messages: number;
  /** Replayed messages that had been delivered already. */
  duplicatesDropped: number;
  /** News outside the filter that arrived before the server applied it. */
  filteredLocally: number;
  heartbeatTimeouts: number;
}

/** The events of a `HubSocket`: one per message `type`, plus `message`, `state`, `epoch` and `gap`. */
export type HubSocketEventMap = { [K in keyof ServerMessageByType]: CustomEvent<ServerMessageByType[K]> } & {
  /** Every message, whatever its type. */
  message: CustomEvent<ServerMessage>;
  /** A connection change. */
  state: CustomEvent<StateDetail>;
  /** The server's history of the stream was reset: seqs restart under a new epoch. */
  epoch: CustomEvent<EpochDetail>;
  /** Some messages could not be replayed (`HISTORY_GAP`). */
  gap: CustomEvent<ErrorDetail>;
};

export declare const DEFAULTS: Readonly<HubSocketDefaults>;

/** Close codes after which no reconnect follows. */
export declare const FINAL_CLOSE_CODES: readonly number[];

/** Return the full-jitter backoff delay, in ms, before reconnect attempt `attempt` (0-based). */
export declare function backoffDelay(
  attempt: number, baseDelayMs?: number, maxDelayMs?: number, random?: () => number,
): number;

/** Return the ws:// or wss:// URL of `path` on the page's own host (or on `base`). */
export declare function endpointUrl(path: string, base?: { protocol: string; host: string }): string;

/** Return `url` with `params` set in its query (null or undefined removes a parameter). */
export declare function withQuery(url: string, params: Record<string, string | number | null | undefined>): string;

/** One self-repairing connection to one endpoint of the hub. */
export declare class HubSocket extends EventTarget {
  constructor(url: string, options?: HubSocketOptions);
  readonly url: string;
  readonly options: HubSocketDefaults & HubSocketOptions;
  readonly symbols: Set<string>;
  readonly filter: { keywords: string[]; sources: string[] | null } | null;
  readonly state: ConnectionState;
  /** The newest seq delivered (save it with `epoch` to resume later), or null. */
  readonly lastSeq: number | null;
  readonly epoch: string | null;
  readonly attempt: number;
  readonly reconnects: number;
  readonly received: number;
  readonly stats: Readonly<HubSocketStats>;
  readonly ws: WebSocket | null;

  /** Open the connection (and keep it open until close()). */
  connect(): this;
  /** Close for good: no reconnect follows. */
  close(code?: number, reason?: string): void;
  /** Send one message now; false when not connected (subscriptions and filter are re-sent on reconnect). */
  send(message: ClientMessage): boolean;
  /** Add symbols to the price stream (/ws/market_data); remembered across reconnects. */
  subscribe(symbols: string[]): boolean;
  /** Remove symbols from the price stream. */
  unsubscribe(symbols: string[]): boolean;
  /** Ask for the latest update of every tracked symbol at once. */
  getAll(): boolean;
  /** Set the news keyword (and source) filter (/ws/news); remembered across reconnects. */
  setFilter(keywords: string[], sources?: string[] | null): boolean;
  /** Send a heartbeat now. */
  ping(): boolean;

  addEventListener<K extends keyof HubSocketEventMap>(
    type: K, listener: (this: HubSocket, event: HubSocketEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof HubSocketEventMap>(
    type: K, listener: (this: HubSocket, event: HubSocketEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions,
  ): void;
}
