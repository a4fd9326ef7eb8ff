/**
 * The Store port: the small part of Redis that Switchboard uses. Values are strings (callers keep
 * JSON in them and parse it with zod). The memory adapter (embedded default, snapshot to disk) and
 * the Redis adapter both implement it; every operation is atomic on its own.
 *
 * @example
 * const first = await store.set(`idem:${client}:${key}`, taskId, { ttlMs: 86_400_000, ifAbsent: true });
 * const form = await store.take(`stash:${formId}`); // at most one caller ever gets it
 */

export interface SetOptions {
  /** Expire the key after this many milliseconds. */
  readonly ttlMs?: number;
  /** Only set when the key does not exist (Redis NX). */
  readonly ifAbsent?: boolean;
}

export interface HashWriteOptions {
  /** Give the hash this time to live (PEXPIRE) when the call writes. */
  readonly ttlMs?: number;
}

export interface HashSetIfAbsentOptions extends HashWriteOptions {
  /** When the field is written, announce `message` on `channel` (as `notify` does) in the same step. */
  readonly notify?: { readonly channel: string; readonly message: string };
}

/** One counter of `Store.quotaTake`: an integer counter (missing = 0), its limit and what this call takes from it. */
export interface QuotaCounter {
  readonly key: string;
  /** A non-negative safe integer. An unlimited counter is left out (or given Number.MAX_SAFE_INTEGER). */
  readonly limit: number;
  /** A non-negative safe integer; 0 only asks that something is left (current < limit). */
  readonly cost: number;
}

export type QuotaTakeResult =
  | { readonly ok: true }
  /** The first counter without room, its current value and its limit; nothing was written. */
  | { readonly ok: false; readonly key: string; readonly used: number; readonly limit: number };

/**
 * A route from a source (a feed URL) to a target (an address): subscriptions. Kept in both
 * directions (see route-keys.ts) by routeAdd and routeRemove, which change both at once.
 */
export interface Route {
  readonly id: string;
  readonly source: string;
  readonly target: string;
  /** What the route carries (JSON kept by the caller). */
  readonly value: string;
}

/** `added`; `updated` (the id existed: only its value changed); `full` (the target has its maximum; nothing written). */
export type RouteAddResult = 'added' | 'updated' | 'full';

/** The most counters one `quotaTake` call may take from (the Redis script has a fixed number of keys). */
export const MAX_QUOTA_COUNTERS = 4;

/** Argument rules of `quotaTake`, which both adapters enforce alike (Redis-style `ERR` messages). */
export interface Store {
  get(key: string): Promise<string | null>;
  /** Returns false when `ifAbsent` was given and the key existed (nothing was written). */
  set(key: string, value: string, options?: SetOptions): Promise<boolean>;
  /** Atomic get-and-delete: of any number of concurrent callers, at most one gets the value. */
  take(key: string): Promise<string | null>;
  /** Deletes keys of any type; returns how many existed. */
  del(...keys: string[]): Promise<number>;
  /** Sets a time to live on an existing key; false when the key does not exist. */
  expire(key: string, ttlMs: number): Promise<boolean>;
  /** Adds `by` to an integer counter (missing = 0). `ttlMs` is applied only when the counter is created. */
  incr(key: string, by?: number, options?: { readonly ttlMs?: number }): Promise<number>;
  /**
   * Takes from up to MAX_QUOTA_COUNTERS integer counters (distinct keys) at once: when every counter
   * has room (`current + cost <= limit`, and `current < limit` when the cost is 0), adds each cost,
   * giving a counter this call creates the TTL `ttlMs` (an existing TTL is never extended; a cost of
   * 0 writes nothing), and returns ok; otherwise writes nothing and returns the first counter without
   * room. Atomic: N concurrent calls with cost 1 against a remaining allowance of K let exactly K through.
   */
  quotaTake(counters: readonly QuotaCounter[], ttlMs: number): Promise<QuotaTakeResult>;

  /**
   * Adds a route in both directions and lists its source among the routed ones, or, when a route
   * with this id exists, replaces its value only (its source and target must be the same, else it
   * throws). A new route is refused (`full`, nothing written) when its target already has
   * `maxPerTarget` routes. Atomic: concurrent adds to one target never pass the maximum.
   */
  routeAdd(route: Route, maxPerTarget: number): Promise<RouteAddResult>;
  /**
   * Removes a route from both directions, and its source from the routed ones when that was its last
   * route. False (nothing written) when no route has this id, source and target. Atomic.
   */
  routeRemove(route: Omit<Route, 'value'>): Promise<boolean>;

  /**
   * Takes or renews a lease: true when `owner` holds `key` for the next `ttlMs` (it was free, had
   * expired, or was already theirs); false while another owner holds it. Atomic.
   */
  lease(key: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Gives up a lease `owner` holds, so another can take it at once; false when it was not theirs. */
  release(key: string, owner: string): Promise<boolean>;

  /** With `ttlMs`, the hash's time to live is set to it in the same atomic step. */
  hset(key: string, fields: Readonly<Record<string, string>>, options?: HashWriteOptions): Promise<void>;
  /**
   * Sets one field only if it is absent; true when it was written. Only then is `ttlMs`, if given,
   * the hash's time to live, and `notify`, if given, announced: all in one atomic step.
   */
  hsetnx(key: string, field: string, value: string, options?: HashSetIfAbsentOptions): Promise<boolean>;
  hget(key: string, field: string): Promise<string | null>;
  hgetall(key: string): Promise<Record<string, string>>;
  hdel(key: string, ...fields: string[]): Promise<number>;
  /** Number of fields of a hash (0 when missing). */
  hlen(key: string): Promise<number>;
  hincr(key: string, field: string, by?: number): Promise<number>;

  /** Returns how many members were new. */
  sadd(key: string, ...members: string[]): Promise<number>;
  srem(key: string, ...members: string[]): Promise<number>;
  smembers(key: string): Promise<string[]>;
  sismember(key: string, member: string): Promise<boolean>;

  /** Appends to a list; returns its new length. */
  rpush(key: string, ...values: string[]): Promise<number>;
  /** Inclusive range with Redis semantics (negative indexes count from the end). */
  lrange(key: string, start: number, stop: number): Promise<string[]>;
  /** Keeps only the inclusive range (Redis semantics). */
  ltrim(key: string, start: number, stop: number): Promise<void>;

  /**
   * Adds members to a time-ordered set, or moves them: the score is a time in epoch milliseconds
   * (when the member is due). Returns how many members were new.
   */
  zadd(key: string, entries: Readonly<Record<string, number>>): Promise<number>;
  /** Removes members of a time-ordered set; returns how many were there. */
  zrem(key: string, ...members: string[]): Promise<number>;
  /** Members with their scores, lowest score first (at most `limit`). */
  zrange(key: string, limit: number): Promise<{ member: string; score: number }[]>;
  /**
   * Claims up to `limit` members due at `now` (score ≤ now), lowest score first, by moving each to
   * `now + leaseMs`; returns them. Atomic: concurrent callers never claim the same member, and a
   * claimed member comes due again when its lease passes unless it was removed (at least once).
   */
  zclaim(key: string, now: number, leaseMs: number, limit: number): Promise<string[]>;

  /** Publishes a notice to listeners of a channel, in every process that shares the store. */
  notify(channel: string, message: string): Promise<void>;
  /** Listens to a channel; returns a function that stops listening. */
  listen(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;

  /** Throws when the store cannot be reached. */
  ping(): Promise<void>;
  /** Flush what is pending and release connections or files. */
  close(): Promise<void>;
}
