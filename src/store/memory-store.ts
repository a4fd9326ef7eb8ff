/**
 * The in-memory Store adapter (the embedded default). It follows Redis semantics for every method of
 * the port, keeps each key's type (string, hash, set, list, sorted set), expires keys by an injectable clock, and
 * optionally snapshots to a JSON file (atomic replace, debounced) that it loads again on open.
 *
 * @example
 * const store = await MemoryStore.open({ logger, snapshotFile: 'data/store.json' });
 * await store.set('k', 'v', { ttlMs: 60_000 });
 * await store.close(); // writes the last snapshot
 */
import type { Logger } from '../core/logger.ts';
import { errorMessage } from '../core/errors.ts';
import {
  type HashSetIfAbsentOptions,
  type HashWriteOptions,
  type QuotaCounter,
  type QuotaTakeResult,
  type Route,
  type RouteAddResult,
  type SetOptions,
  type Store,
} from './store.ts';
import { keysOfRoute } from './route-keys.ts';
import { loadSnapshot, serializeSnapshot, SnapshotWriter, type Entry, type EntryType } from './memory-store-snapshot.ts';
import {
  addCounter,
  checkInteger,
  checkQuotaCounters,
  checkLimit,
  checkScore,
  checkTtl,
  listRange,
  parseCounter,
  WRONGTYPE,
} from './store-rules.ts';

type Scored = readonly [member: string, score: number];

export interface MemoryStoreOptions {
  readonly logger: Logger;
  /** Load from and snapshot to this file. Without it the store lives only in memory. */
  readonly snapshotFile?: string;
  /** Clock for every TTL decision, epoch ms (default Date.now). */
  readonly now?: () => number;
  /** Longest time a write waits before it reaches the snapshot file (default 250). */
  readonly flushDelayMs?: number;
  /** How often expired keys are removed from memory (default 10 000; 0 turns the sweep off). */
  readonly sweepIntervalMs?: number;
}

type EntryOf<T extends EntryType> = Extract<Entry, { type: T }>;
interface Subscription {
  readonly onMessage: (message: string) => void;
  active: boolean;
}

export class MemoryStore implements Store {
  private readonly data: Map<string, Entry>;
  private readonly channels = new Map<string, Set<Subscription>>();
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly writer: SnapshotWriter | undefined;
  private readonly sweepTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  private constructor(options: MemoryStoreOptions, data: Map<string, Entry>) {
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.data = data;
    const file = options.snapshotFile;
    const serialize = (): string => serializeSnapshot(this.data, this.now());
    this.writer = file === undefined ? undefined : new SnapshotWriter(file, options.flushDelayMs ?? 250, this.logger, serialize);
    const sweepMs = options.sweepIntervalMs ?? 10_000;
    if (sweepMs > 0) {
      this.sweepTimer = setInterval(() => this.sweep(), sweepMs);
      this.sweepTimer.unref();
    }
  }

  static async open(options: MemoryStoreOptions): Promise<MemoryStore> {
    const now = options.now ?? Date.now;
    const data =
      options.snapshotFile === undefined ? new Map<string, Entry>() : await loadSnapshot(options.snapshotFile, options.logger, now());
    return new MemoryStore(options, data);
  }

  /** Keys held in memory, including expired ones the sweep has not removed yet. */
  get size(): number {
    return this.data.size;
  }

  /** Removes every expired key now; returns how many. Runs on a timer as well. */
  sweep(): number {
    const now = this.now();
    let removed = 0;
    for (const [key, entry] of this.data) {
      if (entry.expiresAt !== undefined && entry.expiresAt <= now) {
        this.data.delete(key);
        removed += 1;
      }
    }
    return removed;
  }

  async get(key: string): Promise<string | null> {
    return this.read(key, 'string')?.value ?? null;
  }

  async set(key: string, value: string, options: SetOptions = {}): Promise<boolean> {
    this.assertOpen();
    checkTtl(options.ttlMs);
    if (options.ifAbsent === true && this.entry(key) !== undefined) return false;
    const entry: Entry = { type: 'string', value };
    if (options.ttlMs !== undefined) entry.expiresAt = this.now() + options.ttlMs;
    this.data.set(key, entry);
    this.changed();
    return true;
  }

  async take(key: string): Promise<string | null> {
    const entry = this.read(key, 'string');
    if (entry === undefined) return null;
    this.data.delete(key);
    this.changed();
    return entry.value;
  }

  async del(...keys: string[]): Promise<number> {
    this.assertOpen();
    let removed = 0;
    for (const key of keys) {
      if (this.entry(key) !== undefined) {
        this.data.delete(key);
        removed += 1;
      }
    }
    if (removed > 0) this.changed();
    return removed;
  }

  async expire(key: string, ttlMs: number): Promise<boolean> {
    this.assertOpen();
    checkInteger(ttlMs, 'value');
    const entry = this.entry(key);
    if (entry === undefined) return false;
    // Like Redis PEXPIRE, a time to live that is not positive deletes the key at once.
    if (ttlMs <= 0) this.data.delete(key);
    else entry.expiresAt = this.now() + ttlMs;
    this.changed();
    return true;
  }

  async incr(key: string, by = 1, options: { readonly ttlMs?: number } = {}): Promise<number> {
    checkInteger(by, 'value');
    checkTtl(options.ttlMs);
    const entry = this.read(key, 'string');
    if (entry !== undefined) {
      const next = addCounter(parseCounter(entry.value, 'value'), by);
      entry.value = String(next); // keeps the TTL, like Redis INCRBY
      this.changed();
      return next;
    }
    const created: Entry = { type: 'string', value: String(by) };
    if (options.ttlMs !== undefined) created.expiresAt = this.now() + options.ttlMs;
    this.data.set(key, created);
    this.changed();
    return by;
  }

  async quotaTake(counters: readonly QuotaCounter[], ttlMs: number): Promise<QuotaTakeResult> {
    this.assertOpen();
    checkQuotaCounters(counters);
    checkTtl(ttlMs);
    // Synchronous from the first read to the last write, so concurrent calls never share the last unit.
    const entries = counters.map((counter) => this.read(counter.key, 'string'));
    const values = entries.map((entry) => (entry === undefined ? 0 : parseCounter(entry.value, 'value')));
    for (const [i, counter] of counters.entries()) {
      const used = values[i] ?? 0;
      // The cost fits under the limit; a cost of 0 asks that something is left (kept alike in quota-take-4.lua).
      const room = used + counter.cost <= counter.limit && (counter.cost > 0 || used < counter.limit);
      if (!room) return { ok: false, key: counter.key, used, limit: counter.limit };
    }
    let written = false;
    for (const [i, counter] of counters.entries()) {
      if (counter.cost === 0) continue;
      const entry = entries[i];
      // At most the limit, so a safe integer. An existing counter keeps its TTL; a new one gets ttlMs.
      const next = String((values[i] ?? 0) + counter.cost);
      if (entry !== undefined) entry.value = next;
      else this.data.set(counter.key, { type: 'string', value: next, expiresAt: this.now() + ttlMs });
      written = true;
    }
    if (written) this.changed();
    return { ok: true };
  }

  async lease(key: string, owner: string, ttlMs: number): Promise<boolean> {
    this.assertOpen();
    checkTtl(ttlMs);
    const current = this.read(key, 'string');
    if (current !== undefined && current.value !== owner) return false;
    this.data.set(key, { type: 'string', value: owner, expiresAt: this.now() + ttlMs });
    this.changed();
    return true;
  }

  async release(key: string, owner: string): Promise<boolean> {
    this.assertOpen();
    if (this.read(key, 'string')?.value !== owner) return false;
    this.data.delete(key);
    this.changed();
    return true;
  }

  async routeAdd(route: Route, maxPerTarget: number): Promise<RouteAddResult> {
    this.assertOpen();
    checkLimit(maxPerTarget);
    // Synchronous throughout, like route-add-4.lua.
    const [bySource, byTarget, recordKey, sourcesKey] = keysOfRoute(route);
    const record = this.read(recordKey, 'hash')?.value;
    if (record !== undefined) {
      if (record.get('source') !== route.source || record.get('target') !== route.target) {
        throw new Error(`ERR route id ${route.id} belongs to another source or target`);
      }
      record.set('value', route.value);
      this.changed();
      return 'updated';
    }
    const targets = this.read(bySource, 'hash');
    const sources = this.read(byTarget, 'hash');
    const routed = this.read(sourcesKey, 'set');
    if ((sources?.value.size ?? 0) >= maxPerTarget) return 'full';
    (targets?.value ?? this.create(bySource, { type: 'hash', value: new Map<string, string>() }).value).set(route.id, route.target);
    (sources?.value ?? this.create(byTarget, { type: 'hash', value: new Map<string, string>() }).value).set(route.id, route.source);
    this.create(recordKey, {
      type: 'hash',
      value: new Map([
        ['source', route.source],
        ['target', route.target],
        ['value', route.value],
      ]),
    });
    (routed?.value ?? this.create(sourcesKey, { type: 'set', value: new Set<string>() }).value).add(route.source);
    this.changed();
    return 'added';
  }

  async routeRemove(route: Omit<Route, 'value'>): Promise<boolean> {
    this.assertOpen();
    const [bySource, byTarget, recordKey, sourcesKey] = keysOfRoute(route);
    const record = this.read(recordKey, 'hash')?.value;
    if (record === undefined || record.get('source') !== route.source || record.get('target') !== route.target) return false;
    const targets = this.read(bySource, 'hash');
    const sources = this.read(byTarget, 'hash');
    const routed = this.read(sourcesKey, 'set');
    targets?.value.delete(route.id);
    sources?.value.delete(route.id);
    this.data.delete(recordKey);
    if (sources?.value.size === 0) this.data.delete(byTarget);
    if (targets === undefined || targets.value.size === 0) {
      this.data.delete(bySource);
      routed?.value.delete(route.source);
      if (routed?.value.size === 0) this.data.delete(sourcesKey);
    }
    this.changed();
    return true;
  }

  async hset(key: string, fields: Readonly<Record<string, string>>, options: HashWriteOptions = {}): Promise<void> {
    checkTtl(options.ttlMs);
    const pairs = Object.entries(fields);
    const hash = this.read(key, 'hash');
    if (pairs.length === 0) return;
    const entry: EntryOf<'hash'> = hash ?? this.create(key, { type: 'hash', value: new Map<string, string>() });
    for (const [field, value] of pairs) entry.value.set(field, value);
    if (options.ttlMs !== undefined) entry.expiresAt = this.now() + options.ttlMs;
    this.changed();
  }

  async hsetnx(key: string, field: string, value: string, options: HashSetIfAbsentOptions = {}): Promise<boolean> {
    checkTtl(options.ttlMs);
    const hash = this.read(key, 'hash');
    if (hash?.value.has(field) === true) return false;
    const entry: EntryOf<'hash'> = hash ?? this.create(key, { type: 'hash', value: new Map<string, string>() });
    entry.value.set(field, value);
    if (options.ttlMs !== undefined) entry.expiresAt = this.now() + options.ttlMs;
    this.changed();
    if (options.notify !== undefined) await this.notify(options.notify.channel, options.notify.message);
    return true;
  }

  async hget(key: string, field: string): Promise<string | null> {
    return this.read(key, 'hash')?.value.get(field) ?? null;
  }

  async hgetall(key: string): Promise<Record<string, string>> {
    const hash = this.read(key, 'hash');
    return hash === undefined ? {} : Object.fromEntries(hash.value);
  }

  async hlen(key: string): Promise<number> {
    return this.read(key, 'hash')?.value.size ?? 0;
  }

  async hdel(key: string, ...fields: string[]): Promise<number> {
    const hash = this.read(key, 'hash');
    if (hash === undefined) return 0;
    let removed = 0;
    for (const field of fields) if (hash.value.delete(field)) removed += 1;
    if (hash.value.size === 0) this.data.delete(key);
    if (removed > 0) this.changed();
    return removed;
  }

  async hincr(key: string, field: string, by = 1): Promise<number> {
    checkInteger(by, 'value');
    const hash = this.read(key, 'hash');
    const current = hash?.value.get(field);
    const next = addCounter(current === undefined ? 0 : parseCounter(current, 'hash value'), by);
    const map = hash?.value ?? this.create(key, { type: 'hash', value: new Map<string, string>() }).value;
    map.set(field, String(next));
    this.changed();
    return next;
  }

  async sadd(key: string, ...members: string[]): Promise<number> {
    const set = this.read(key, 'set');
    if (members.length === 0) return 0;
    const target = set?.value ?? this.create(key, { type: 'set', value: new Set<string>() }).value;
    const before = target.size;
    for (const member of members) target.add(member);
    const added = target.size - before;
    if (added > 0) this.changed();
    return added;
  }

  async srem(key: string, ...members: string[]): Promise<number> {
    const set = this.read(key, 'set');
    if (set === undefined) return 0;
    let removed = 0;
    for (const member of members) if (set.value.delete(member)) removed += 1;
    if (set.value.size === 0) this.data.delete(key);
    if (removed > 0) this.changed();
    return removed;
  }

  async smembers(key: string): Promise<string[]> {
    const set = this.read(key, 'set');
    return set === undefined ? [] : [...set.value];
  }

  async sismember(key: string, member: string): Promise<boolean> {
    return this.read(key, 'set')?.value.has(member) ?? false;
  }

  async rpush(key: string, ...values: string[]): Promise<number> {
    const list = this.read(key, 'list');
    if (values.length === 0) return list?.value.length ?? 0;
    const target = list?.value ?? this.create(key, { type: 'list', value: [] }).value;
    target.push(...values);
    this.changed();
    return target.length;
  }

  async lrange(key: string, start: number, stop: number): Promise<string[]> {
    const list = this.read(key, 'list');
    const [from, to] = listRange(list?.value.length ?? 0, start, stop);
    return list === undefined ? [] : list.value.slice(from, to);
  }

  async ltrim(key: string, start: number, stop: number): Promise<void> {
    const list = this.read(key, 'list');
    const [from, to] = listRange(list?.value.length ?? 0, start, stop);
    if (list === undefined) return;
    if (from === 0 && to === list.value.length) return;
    if (from >= to) this.data.delete(key);
    else list.value = list.value.slice(from, to);
    this.changed();
  }

  async zadd(key: string, entries: Readonly<Record<string, number>>): Promise<number> {
    const pairs = Object.entries(entries);
    for (const [, score] of pairs) checkScore(score, 'score');
    const zset = this.read(key, 'zset');
    if (pairs.length === 0) return 0;
    const target = zset?.value ?? this.create(key, { type: 'zset', value: new Map<string, number>() }).value;
    const before = target.size;
    // `+ 0` turns -0 into 0, which is what Redis gets (String(-0) is "0").
    for (const [member, score] of pairs) target.set(member, score + 0);
    this.changed();
    return target.size - before;
  }

  async zrem(key: string, ...members: string[]): Promise<number> {
    const zset = this.read(key, 'zset');
    if (zset === undefined) return 0;
    let removed = 0;
    for (const member of members) if (zset.value.delete(member)) removed += 1;
    if (zset.value.size === 0) this.data.delete(key);
    if (removed > 0) this.changed();
    return removed;
  }

  async zrange(key: string, limit: number): Promise<{ member: string; score: number }[]> {
    checkLimit(limit);
    const zset = this.read(key, 'zset');
    if (zset === undefined || limit === 0) return [];
    return [...zset.value]
      .sort(byScore)
      .slice(0, limit)
      .map(([member, score]) => ({ member, score }));
  }

  async zclaim(key: string, now: number, leaseMs: number, limit: number): Promise<string[]> {
    checkScore(now, 'now');
    checkTtl(leaseMs);
    checkLimit(limit);
    const zset = this.read(key, 'zset');
    if (zset === undefined || limit === 0) return [];
    // Synchronous from the read to the last write, so no other call can claim the same members.
    const due = [...zset.value].filter(([, score]) => score <= now);
    const claimed = due.sort(byScore).slice(0, limit);
    const until = now + leaseMs;
    for (const [member] of claimed) zset.value.set(member, until);
    if (claimed.length > 0) this.changed();
    return claimed.map(([member]) => member);
  }

  async notify(channel: string, message: string): Promise<void> {
    this.assertOpen();
    const subscriptions = this.channels.get(channel);
    if (subscriptions === undefined) return;
    for (const subscription of [...subscriptions]) {
      queueMicrotask(() => this.deliver(channel, subscription, message));
    }
  }

  async listen(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    this.assertOpen();
    const subscription: Subscription = { onMessage, active: true };
    let subscriptions = this.channels.get(channel);
    if (subscriptions === undefined) {
      subscriptions = new Set();
      this.channels.set(channel, subscriptions);
    }
    subscriptions.add(subscription);
    // Never throws, also after close, so it is safe in cleanup code.
    return async () => {
      subscription.active = false;
      const current = this.channels.get(channel);
      current?.delete(subscription);
      if (current?.size === 0) this.channels.delete(channel);
    };
  }

  async ping(): Promise<void> {
    this.assertOpen();
  }

  async close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    for (const subscriptions of this.channels.values()) {
      for (const subscription of subscriptions) subscription.active = false;
    }
    this.channels.clear();
    await this.writer?.close();
  }

  private deliver(channel: string, subscription: Subscription, message: string): void {
    if (!subscription.active) return;
    const fail = (err: unknown): void => {
      this.logger.error({ channel, err: errorMessage(err) }, 'store listener failed');
    };
    try {
      const result: unknown = subscription.onMessage(message);
      if (result instanceof Promise) result.catch(fail);
    } catch (err) {
      fail(err);
    }
  }

  private assertOpen(): void {
    if (this.closing !== undefined) throw new Error('memory store is closed');
  }

  /** The live entry of a key, deleting it first when it has expired. */
  private entry(key: string): Entry | undefined {
    const entry = this.data.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= this.now()) {
      this.data.delete(key);
      return undefined;
    }
    return entry;
  }

  /** The live entry of a key when it has the given type; throws WRONGTYPE when it has another. */
  private read<T extends EntryType>(key: string, type: T): EntryOf<T> | undefined {
    this.assertOpen();
    const entry = this.entry(key);
    if (entry === undefined) return undefined;
    if (entry.type !== type) throw new Error(WRONGTYPE);
    return entry as EntryOf<T>;
  }

  private create<T extends Entry>(key: string, entry: T): T {
    this.data.set(key, entry);
    return entry;
  }

  private changed(): void {
    this.writer?.markDirty();
  }
}

// Sorted-set rules (kept alike in redis-store.ts): scores are finite, limits are counts.

/** Redis' order of a sorted set: by score, equal scores by the bytes of the member. */
function byScore(a: Scored, b: Scored): number {
  return a[1] - b[1] || compareCodePoints(a[0], b[0]);
}

/**
 * Orders strings by code point, which is the order of their UTF-8 bytes (Redis compares those).
 * Plain `<` compares UTF-16 units and puts U+E000..U+FFFF after characters above U+FFFF.
 */
function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i += 1) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** Moves surrogates (halves of code points above U+FFFF) after U+E000..U+FFFF, keeping every other order. */
function codePointRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}
