/**
 * The Redis Store adapter, a drop-in for the memory adapter. Every key and every pub/sub channel
 * carries the key prefix, so deployments that share one Redis never see each other. During a lost
 * connection commands wait (offline queue, endless capped reconnects) and complete once Redis is
 * back; `ping()` is the one call that fails fast.
 *
 * Delivery during a disconnect is at least once: a command that was written but not answered when
 * the socket died is sent again after the reconnect, so it may run twice (an INCR counts twice, an
 * RPUSH appends twice, a TAKE whose first reply was lost returns null the second time, a ZCLAIM
 * whose first reply was lost leaves the members it claimed waiting until their lease passes).
 *
 * @example
 * const store = await RedisStore.open({ url: 'redis://127.0.0.1:6379', logger, keyPrefix: 'switchboard:' });
 * await store.incr(`quota:${user}`, 1, { ttlMs: 60_000 });
 * await store.close();
 */
import { Redis } from 'ioredis';
import type { Logger } from '../core/logger.ts';
import { errorMessage } from '../core/errors.ts';
import { checkInteger, checkLimit, checkQuotaCounters, checkScore, checkTtl } from './store-rules.ts';
import {
  MAX_QUOTA_COUNTERS,
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
import { withTimeout } from '../core/timing.ts';
import { coalesceWrites } from '../core/coalesce-writes.ts';
import { describeUrl, isAbort, loadScripts, quit, readPackageVersion, scrub } from './redis-support.ts';

export interface RedisStoreOptions {
  /** `redis://[user:password@]host:port[/db]` */
  readonly url: string;
  readonly logger: Logger;
  /** Put before every key and channel (default `switchboard:`). */
  readonly keyPrefix?: string;
}

const PING_TIMEOUT_MS = 1_000;
const QUIT_TIMEOUT_MS = 1_000;
const DRAIN_TIMEOUT_MS = 2_000;
const MAX_RECONNECT_DELAY_MS = 2_000;
/** A pipeline cut halfway is aborted by ioredis; its commands are sent again this many times at most. */
const MAX_ABORT_RETRIES = 5;
const closedError = (): Error => new Error('redis store is closed');

const VERSION = readPackageVersion();
/** Lua scripts from ./lua/<name>-<numKeys>.lua, tagged with the package version. */
const SCRIPTS = loadScripts(VERSION);

type ScriptCall = (...args: (string | number)[]) => Promise<unknown>;
interface Subscription {
  readonly onMessage: (message: string) => void;
  active: boolean;
}
interface Channel {
  readonly subscriptions: Set<Subscription>;
  readonly subscribed: Promise<void>;
}

export class RedisStore implements Store {
  private readonly channels = new Map<string, Channel>();
  /** The reject of every command in flight: close() waits for them, then fails those still queued for a connection that is gone. */
  private readonly rejects = new Set<(err: Error) => void>();
  private drainWaiters: (() => void)[] = [];
  private subscriber: Redis | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly logger: Logger,
  ) {}

  static async open(options: RedisStoreOptions): Promise<RedisStore> {
    const keyPrefix = options.keyPrefix ?? 'switchboard:';
    const redis = new Redis(options.url, {
      keyPrefix,
      lazyConnect: true,
      // Commands are written as they come, and the socket sends those of one event-loop turn as one
      // writev (coalesceWrites, set on every new connection below): the same pipelining as ioredis's
      // auto-pipelining, at half its CPU per command (it builds a pipeline and promises per command).
      enableAutoPipelining: false,
      enableOfflineQueue: true,
      // Commands wait for the connection to come back instead of failing after 20 retries.
      maxRetriesPerRequest: null,
      retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt - 1, 10), MAX_RECONNECT_DELAY_MS),
    });
    for (const script of SCRIPTS) {
      redis.defineCommand(script.command, { numberOfKeys: script.numberOfKeys, lua: script.lua });
    }
    redis.on('connect', () => coalesceWrites(redis.stream));
    const store = new RedisStore(redis, keyPrefix, options.logger);
    const where = describeUrl(options.url);
    let lastError = 'connection closed';
    redis.on('error', (err: unknown) => void (lastError = errorMessage(err)));
    try {
      await redis.connect();
    } catch (err) {
      redis.disconnect();
      throw new Error(`Redis at ${where} cannot be reached: ${errorMessage(err)} (${lastError})`);
    }
    store.watch(redis, 'commands');
    options.logger.info({ redis: where, keyPrefix, scripts: VERSION }, 'redis store connected');
    return store;
  }

  // The hot methods are not async and check their arguments inside run(): a bad argument still
  // rejects, and a call costs one promise instead of three.
  get(key: string): Promise<string | null> {
    return this.run(() => this.redis.get(key));
  }

  set(key: string, value: string, options: SetOptions = {}): Promise<boolean> {
    const { ttlMs, ifAbsent } = options;
    return this.run(() => {
      checkTtl(ttlMs);
      if (ttlMs === undefined) return ifAbsent === true ? this.redis.set(key, value, 'NX') : this.redis.set(key, value);
      return ifAbsent === true ? this.redis.set(key, value, 'PX', ttlMs, 'NX') : this.redis.set(key, value, 'PX', ttlMs);
    }).then((reply) => reply === 'OK');
  }

  take(key: string): Promise<string | null> {
    return this.run(() => this.redis.getdel(key));
  }

  async del(...keys: string[]): Promise<number> {
    if (keys.length === 0) return this.run(async () => 0);
    return this.run(() => this.redis.del(...keys));
  }

  expire(key: string, ttlMs: number): Promise<boolean> {
    // PEXPIRE with a time to live that is not positive deletes the key, like the memory store.
    return this.run(() => {
      checkInteger(ttlMs, 'value');
      return this.redis.pexpire(key, ttlMs);
    }).then((reply) => reply === 1);
  }

  async incr(key: string, by = 1, options: { readonly ttlMs?: number } = {}): Promise<number> {
    checkInteger(by, 'value');
    const { ttlMs } = options;
    checkTtl(ttlMs);
    if (ttlMs === undefined) return this.run(() => this.redis.incrby(key, by));
    return Number(await this.run(() => this.script('incr-ttl')(key, by, ttlMs)));
  }

  async quotaTake(counters: readonly QuotaCounter[], ttlMs: number): Promise<QuotaTakeResult> {
    checkQuotaCounters(counters);
    checkTtl(ttlMs);
    const first = counters[0];
    if (first === undefined) return this.run(async () => ({ ok: true }));
    // The script has a fixed number of keys; it reads only the first counters.length of them.
    const keys = [...counters.map((counter) => counter.key), ...Array<string>(MAX_QUOTA_COUNTERS - counters.length).fill(first.key)];
    const args = counters.flatMap((counter) => [counter.limit, counter.cost]);
    const reply = (await this.run(() => this.script('quota-take')(...keys, counters.length, ttlMs, ...args))) as number[];
    const [index, used] = reply;
    if (index === 0) return { ok: true };
    const counter = index === undefined ? undefined : counters[index - 1];
    if (counter === undefined || used === undefined) throw new Error('quota-take.lua gave an unexpected reply');
    return { ok: false, key: counter.key, used, limit: counter.limit };
  }

  async lease(key: string, owner: string, ttlMs: number): Promise<boolean> {
    checkTtl(ttlMs);
    return (await this.run(() => this.script('lease')(key, owner, ttlMs))) === 1;
  }

  async release(key: string, owner: string): Promise<boolean> {
    return (await this.run(() => this.script('release')(key, owner))) === 1;
  }

  async routeAdd(route: Route, maxPerTarget: number): Promise<RouteAddResult> {
    checkLimit(maxPerTarget);
    const reply = await this.run(() =>
      this.script('route-add')(...keysOfRoute(route), route.id, route.source, route.target, route.value, maxPerTarget),
    );
    if (reply !== 'added' && reply !== 'updated' && reply !== 'full') throw new Error('route-add.lua gave an unexpected reply');
    return reply;
  }

  async routeRemove(route: Omit<Route, 'value'>): Promise<boolean> {
    return (await this.run(() => this.script('route-remove')(...keysOfRoute(route), route.id, route.source, route.target))) === 1;
  }

  hset(key: string, fields: Readonly<Record<string, string>>, options: HashWriteOptions = {}): Promise<void> {
    const { ttlMs } = options;
    const pairs = Object.entries(fields);
    return this.run(() => {
      checkTtl(ttlMs);
      // HSET needs a field; with none, HLEN still reports WRONGTYPE like the memory store does.
      if (pairs.length === 0) return this.redis.hlen(key);
      if (ttlMs === undefined) return this.redis.hset(key, ...pairs.flat());
      return this.script('hset-ttl')(key, ttlMs, ...pairs.flat());
    }).then(() => undefined);
  }

  hsetnx(key: string, field: string, value: string, options: HashSetIfAbsentOptions = {}): Promise<boolean> {
    const { ttlMs, notify } = options;
    return this.run(() => {
      checkTtl(ttlMs);
      if (ttlMs === undefined && notify === undefined) return this.redis.hsetnx(key, field, value);
      // PUBLISH has no key, so ioredis does not prefix the channel; we do (as notify does).
      const announce = notify === undefined ? [] : [this.keyPrefix + notify.channel, notify.message];
      return this.script('hsetnx')(key, field, value, ttlMs ?? '', ...announce);
    }).then((reply) => reply === 1);
  }

  hget(key: string, field: string): Promise<string | null> {
    return this.run(() => this.redis.hget(key, field));
  }

  hgetall(key: string): Promise<Record<string, string>> {
    return this.run(() => this.redis.hgetall(key));
  }

  async hlen(key: string): Promise<number> {
    return this.run(() => this.redis.hlen(key));
  }

  async hdel(key: string, ...fields: string[]): Promise<number> {
    if (fields.length === 0) return this.run(() => this.redis.hlen(key).then(() => 0));
    return this.run(() => this.redis.hdel(key, ...fields));
  }

  async hincr(key: string, field: string, by = 1): Promise<number> {
    checkInteger(by, 'value');
    return this.run(() => this.redis.hincrby(key, field, by));
  }

  async sadd(key: string, ...members: string[]): Promise<number> {
    if (members.length === 0) return this.run(() => this.redis.scard(key).then(() => 0));
    return this.run(() => this.redis.sadd(key, ...members));
  }

  async srem(key: string, ...members: string[]): Promise<number> {
    if (members.length === 0) return this.run(() => this.redis.scard(key).then(() => 0));
    return this.run(() => this.redis.srem(key, ...members));
  }

  async smembers(key: string): Promise<string[]> {
    return this.run(() => this.redis.smembers(key));
  }

  async sismember(key: string, member: string): Promise<boolean> {
    return (await this.run(() => this.redis.sismember(key, member))) === 1;
  }

  async rpush(key: string, ...values: string[]): Promise<number> {
    if (values.length === 0) return this.run(() => this.redis.llen(key));
    return this.run(() => this.redis.rpush(key, ...values));
  }

  async lrange(key: string, start: number, stop: number): Promise<string[]> {
    checkInteger(start, 'value');
    checkInteger(stop, 'value');
    return this.run(() => this.redis.lrange(key, start, stop));
  }

  async ltrim(key: string, start: number, stop: number): Promise<void> {
    checkInteger(start, 'value');
    checkInteger(stop, 'value');
    await this.run(() => this.redis.ltrim(key, start, stop));
  }

  async zadd(key: string, entries: Readonly<Record<string, number>>): Promise<number> {
    const pairs = Object.entries(entries);
    for (const [, score] of pairs) checkScore(score, 'score');
    // ZADD needs a member; with none, ZCARD still reports WRONGTYPE like the memory store does.
    if (pairs.length === 0) return this.run(() => this.redis.zcard(key).then(() => 0));
    const args = pairs.flatMap(([member, score]) => [String(score), member]);
    return this.run(() => this.redis.zadd(key, ...args));
  }

  async zrem(key: string, ...members: string[]): Promise<number> {
    if (members.length === 0) return this.run(() => this.redis.zcard(key).then(() => 0));
    return this.run(() => this.redis.zrem(key, ...members));
  }

  async zrange(key: string, limit: number): Promise<{ member: string; score: number }[]> {
    checkLimit(limit);
    // ZRANGE 0 -1 would be the whole set; with a limit of 0, ZCARD only checks the type.
    if (limit === 0) return this.run(() => this.redis.zcard(key).then(() => []));
    const reply = await this.run(() => this.redis.zrange(key, 0, limit - 1, 'WITHSCORES'));
    const result: { member: string; score: number }[] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) result.push({ member: reply[i] ?? '', score: Number(reply[i + 1]) });
    return result;
  }

  async zclaim(key: string, now: number, leaseMs: number, limit: number): Promise<string[]> {
    checkScore(now, 'now');
    checkTtl(leaseMs);
    checkLimit(limit);
    const reply = await this.run(() => this.script('zclaim')(key, String(now), String(now + leaseMs), limit));
    return reply as string[];
  }

  notify(channel: string, message: string): Promise<void> {
    // PUBLISH has no key, so ioredis does not prefix the channel; we do.
    return this.run(() => this.redis.publish(this.keyPrefix + channel, message)).then(() => undefined);
  }

  async listen(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    this.assertOpen();
    const name = this.keyPrefix + channel;
    const subscription: Subscription = { onMessage, active: true };
    let state = this.channels.get(name);
    if (state === undefined) {
      const subscriber = this.subscriberConnection();
      state = { subscriptions: new Set(), subscribed: subscriber.subscribe(name).then(() => undefined) };
      this.channels.set(name, state);
    }
    state.subscriptions.add(subscription);
    const stop = async (): Promise<void> => {
      if (!subscription.active) return;
      subscription.active = false;
      const current = this.channels.get(name);
      if (current === undefined || !current.subscriptions.delete(subscription)) return;
      if (current.subscriptions.size > 0) return;
      this.channels.delete(name);
      // Never throws, also after close, so it is safe in cleanup code.
      if (this.closing === undefined) {
        await this.subscriber?.unsubscribe(name).catch((err: unknown) => {
          this.logger.debug({ channel, err: errorMessage(err) }, 'redis unsubscribe failed');
        });
      }
    };
    const { subscribed } = state;
    try {
      await this.run(() => subscribed);
    } catch (err) {
      if (this.channels.get(name) === state) this.channels.delete(name);
      subscription.active = false;
      throw scrub(err);
    }
    return stop;
  }

  async ping(): Promise<void> {
    this.assertOpen();
    if (this.redis.status !== 'ready') throw new Error(`Redis is not reachable (connection ${this.redis.status})`);
    await withTimeout(this.redis.ping(), PING_TIMEOUT_MS, `Redis did not answer PING within ${PING_TIMEOUT_MS} ms`);
  }

  async close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    // New calls throw from now on. While connected, those in flight may finish first (coalesced
    // commands are written at the end of the loop turn, after a QUIT sent now); while not, they fail at once.
    if (this.redis.status === 'ready') {
      await withTimeout(this.drained(), DRAIN_TIMEOUT_MS, 'drain').catch(() => undefined);
    }
    for (const state of this.channels.values()) for (const subscription of state.subscriptions) subscription.active = false;
    this.channels.clear();
    await Promise.all([
      quit(this.redis, QUIT_TIMEOUT_MS),
      this.subscriber === undefined ? undefined : quit(this.subscriber, QUIT_TIMEOUT_MS),
    ]);
    // ioredis leaves commands in its offline queue pending forever when it is disconnected while
    // reconnecting; ours fail here instead.
    const closed = closedError();
    for (const reject of this.rejects) reject(closed);
  }

  /** Runs one command: throws once closed, re-sends a command ioredis aborted, scrubs values from errors. */
  private run<T>(command: () => Promise<T>): Promise<T> {
    if (this.closing !== undefined) return Promise.reject(closedError());
    // One promise per command, no async frames and no named closures (tsx names each one it makes,
    // with a defineProperty per call): this is on every store call's path.
    return new Promise<T>((resolve, reject) => {
      this.rejects.add(reject);
      this.attempt(command, 1, resolve, reject);
    });
  }

  private attempt<T>(command: () => Promise<T>, tries: number, resolve: (value: T) => void, reject: (err: unknown) => void): void {
    let sent: Promise<T>;
    try {
      sent = command();
    } catch (err) {
      sent = Promise.reject(err);
    }
    sent.then(
      (value) => {
        this.settled(reject);
        resolve(value);
      },
      (err: unknown) => {
        // A MULTI or script cut halfway is aborted by ioredis (other commands it re-sends itself).
        // Like those, it may have run already: sending it again keeps delivery at least once.
        if (isAbort(err) && tries < MAX_ABORT_RETRIES && this.closing === undefined) {
          this.logger.debug({ tries }, 'redis command aborted by a lost connection; sending it again');
          this.attempt(command, tries + 1, resolve, reject);
          return;
        }
        this.settled(reject);
        reject(scrub(err));
      },
    );
  }

  /** A command has its answer: close() and drained() stop waiting for it. */
  private settled(reject: (err: unknown) => void): void {
    this.rejects.delete(reject);
    if (this.rejects.size === 0 && this.drainWaiters.length > 0) for (const wake of this.drainWaiters.splice(0)) wake();
  }

  /** Resolves when no command is in flight. */
  private drained(): Promise<void> {
    if (this.rejects.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private script(name: string): ScriptCall {
    const command = `${name}:${VERSION}`;
    const call = (this.redis as unknown as Record<string, ScriptCall | undefined>)[command];
    if (call === undefined) throw new Error(`no Lua script ${name} in src/store/lua`);
    return call.bind(this.redis);
  }

  private subscriberConnection(): Redis {
    if (this.subscriber !== undefined) return this.subscriber;
    // Its own connection: one in subscriber mode accepts nothing else. ioredis subscribes it again to
    // every channel after a reconnect (autoResubscribe).
    const subscriber = this.redis.duplicate({ lazyConnect: false, enableAutoPipelining: false });
    subscriber.on('message', (name: string, message: string) => this.dispatch(name, message));
    this.watch(subscriber, 'subscriber');
    this.subscriber = subscriber;
    return subscriber;
  }

  private dispatch(name: string, message: string): void {
    const state = this.channels.get(name);
    if (state === undefined) return;
    for (const subscription of [...state.subscriptions]) {
      if (!subscription.active) continue;
      try {
        const result: unknown = subscription.onMessage(message);
        if (result instanceof Promise) result.catch((err: unknown) => this.listenerFailed(name, err));
      } catch (err) {
        this.listenerFailed(name, err);
      }
    }
  }

  private listenerFailed(name: string, err: unknown): void {
    this.logger.error({ channel: name.slice(this.keyPrefix.length), err: errorMessage(err) }, 'store listener failed');
  }

  /** Logs a lost connection once (warn) and its recovery (info); never a value. */
  private watch(redis: Redis, connection: string): void {
    let lost = false;
    let lastError: string | undefined;
    redis.on('error', (err: unknown) => {
      lastError = errorMessage(err);
      this.logger.debug({ connection, err: lastError }, 'redis connection error');
    });
    redis.on('close', () => {
      if (lost || this.closing !== undefined) return;
      lost = true;
      this.logger.warn({ connection, err: lastError }, 'redis connection lost; commands wait until it is back');
    });
    redis.on('ready', () => {
      if (!lost) return;
      lost = false;
      lastError = undefined;
      this.logger.info({ connection }, 'redis connection restored');
    });
  }

  private assertOpen(): void {
    if (this.closing !== undefined) throw closedError();
  }
}

// Sorted-set rules (kept alike in memory-store.ts): scores are finite, limits are counts. Redis
// itself would take inf as a score and read a negative LIMIT count as "all".
