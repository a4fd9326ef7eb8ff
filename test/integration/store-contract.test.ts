import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, silentLogger, type Logger } from '../../src/core/logger.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { RedisStore } from '../../src/store/redis-store.ts';
import { Routes } from '../../src/store/routes.ts';
import type { Store } from '../../src/store/store.ts';
import { redisUrl, uniqueName } from '../helpers/services.ts';

/**
 * One suite, run against every Store adapter: what the memory adapter does, the Redis adapter does
 * too. Redis runs for real (REDIS_URL or localhost); each test gets its own key prefix and its keys
 * are deleted afterwards.
 */

const WRONGTYPE = /^WRONGTYPE/;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(5);
  }
}

let raw: Redis | undefined;
async function rawRedis(): Promise<Redis> {
  raw ??= new Redis(await redisUrl(), { maxRetriesPerRequest: 3 });
  return raw;
}

/** Deletes every key under a prefix (SCAN, never FLUSHDB: the server is shared). */
async function deleteKeys(prefix: string): Promise<void> {
  const redis = await rawRedis();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

afterAll(async () => {
  await raw?.quit();
});

interface Opened {
  readonly store: Store;
  readonly cleanup: () => Promise<void>;
}
interface Adapter {
  readonly name: string;
  readonly open: (logger: Logger) => Promise<Opened>;
}

const adapters: Adapter[] = [
  {
    name: 'memory',
    open: async (logger) => ({ store: await MemoryStore.open({ logger }), cleanup: async () => undefined }),
  },
  {
    name: 'redis',
    open: async (logger) => {
      const keyPrefix = `${uniqueName()}:`;
      const store = await RedisStore.open({ url: await redisUrl(), keyPrefix, logger });
      return { store, cleanup: () => deleteKeys(keyPrefix) };
    },
  },
];

describe.each(adapters)('Store contract: $name', (adapter) => {
  const opened: Opened[] = [];
  let store: Store;

  async function open(logger: Logger = silentLogger()): Promise<Store> {
    const handle = await adapter.open(logger);
    opened.push(handle);
    return handle.store;
  }

  beforeEach(async () => {
    store = await open();
  });

  afterEach(async () => {
    for (const handle of opened.splice(0)) {
      await handle.store.close();
      await handle.cleanup();
    }
  });

  it('set and get strings; ifAbsent writes only when the key is missing', async () => {
    expect(await store.get('k')).toBeNull();
    expect(await store.set('k', 'first', { ifAbsent: true })).toBe(true);
    expect(await store.set('k', 'second', { ifAbsent: true })).toBe(false);
    expect(await store.get('k')).toBe('first');
    expect(await store.set('k', 'third')).toBe(true);
    expect(await store.get('k')).toBe('third');
    expect(await store.set('empty', '')).toBe(true);
    expect(await store.get('empty')).toBe('');
    expect(await store.set('unicode', 'grüße ✓ 🙂')).toBe(true);
    expect(await store.get('unicode')).toBe('grüße ✓ 🙂');
  });

  it('expires keys after their TTL, and set without a TTL clears an old one', async () => {
    await store.set('short', 'v', { ttlMs: 50 });
    await store.set('kept', 'old', { ttlMs: 50 });
    await store.set('kept', 'new');
    await store.set('nx', 'v', { ttlMs: 50, ifAbsent: true });
    expect(await store.get('short')).toBe('v');
    await sleep(120);
    expect(await store.get('short')).toBeNull();
    expect(await store.get('nx')).toBeNull();
    expect(await store.get('kept')).toBe('new');
    expect(await store.set('short', 'again', { ifAbsent: true })).toBe(true);
  });

  it('rejects TTLs that are not positive integers', async () => {
    await expect(store.set('k', 'v', { ttlMs: 0 })).rejects.toThrow(/invalid expire time/);
    await expect(store.set('k', 'v', { ttlMs: -5 })).rejects.toThrow(/invalid expire time/);
    await expect(store.set('k', 'v', { ttlMs: 1.5 })).rejects.toThrow(/invalid expire time/);
    await expect(store.incr('n', 1, { ttlMs: 0 })).rejects.toThrow(/invalid expire time/);
    expect(await store.get('k')).toBeNull();
    expect(await store.get('n')).toBeNull();
  });

  it('take gives the value to exactly one of 50 concurrent callers', async () => {
    await store.set('stash:1', 'payload');
    const results = await Promise.all(Array.from({ length: 50 }, () => store.take('stash:1')));
    expect(results.filter((r) => r === 'payload')).toHaveLength(1);
    expect(results.filter((r) => r === null)).toHaveLength(49);
    expect(await store.get('stash:1')).toBeNull();
    expect(await store.take('missing')).toBeNull();
  });

  it('incr starts at 0, counts concurrent calls, and applies its TTL only when it creates the counter', async () => {
    expect(await store.incr('n', 1, { ttlMs: 400 })).toBe(1);
    await sleep(100);
    expect(await store.incr('n', 5, { ttlMs: 400 })).toBe(6); // does not extend the TTL
    await sleep(350);
    expect(await store.get('n')).toBeNull();
    expect(await store.incr('n')).toBe(1);
    expect(await store.incr('n', -3)).toBe(-2);

    const values = await Promise.all(Array.from({ length: 50 }, () => store.incr('many', 1, { ttlMs: 60_000 })));
    expect([...values].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('incr keeps an existing TTL and rejects values that are not integers', async () => {
    await store.set('n', '10', { ttlMs: 100 });
    expect(await store.incr('n', 1, { ttlMs: 60_000 })).toBe(11);
    await sleep(170);
    expect(await store.get('n')).toBeNull();
    await store.set('word', 'abc');
    await expect(store.incr('word')).rejects.toThrow(/not an integer/);
    await expect(store.incr('word', 1, { ttlMs: 1_000 })).rejects.toThrow(/not an integer/);
    await expect(store.incr('n', 0.5)).rejects.toThrow(/not an integer/);
    expect(await store.get('word')).toBe('abc');
  });

  it('quotaTake adds every cost when every counter has room, and nothing otherwise', async () => {
    const user = { key: 'q:user', limit: 3, cost: 1 };
    const total = { key: 'q:total', limit: 4, cost: 1 };
    expect(await store.quotaTake([user, total], 60_000)).toEqual({ ok: true });
    expect(await store.quotaTake([user, total], 60_000)).toEqual({ ok: true });
    expect(await store.get('q:user')).toBe('2');
    expect(await store.get('q:total')).toBe('2');
    // Another user fills the total; the first user's own counter is not touched by the refusal.
    await store.set('q:total', '4');
    expect(await store.quotaTake([user, total], 60_000)).toEqual({ ok: false, key: 'q:total', used: 4, limit: 4 });
    expect(await store.get('q:user')).toBe('2');
    expect(await store.get('q:total')).toBe('4');
    // Both are full: the first counter without room is the one reported.
    await store.set('q:user', '3');
    expect(await store.quotaTake([user, total], 60_000)).toEqual({ ok: false, key: 'q:user', used: 3, limit: 3 });
    expect(await store.quotaTake([total, user], 60_000)).toEqual({ ok: false, key: 'q:total', used: 4, limit: 4 });
    // Costs above 1 must fit whole; no counters at all is ok.
    expect(await store.quotaTake([{ key: 'q:big', limit: 10, cost: 7 }], 60_000)).toEqual({ ok: true });
    expect(await store.quotaTake([{ key: 'q:big', limit: 10, cost: 4 }], 60_000)).toEqual({ ok: false, key: 'q:big', used: 7, limit: 10 });
    expect(await store.quotaTake([{ key: 'q:big', limit: 10, cost: 3 }], 60_000)).toEqual({ ok: true });
    expect(await store.get('q:big')).toBe('10');
    expect(await store.quotaTake([], 60_000)).toEqual({ ok: true });
  });

  it('quotaTake with cost 0 only checks that something is left, and writes nothing', async () => {
    const tokens = { key: 'q:tokens', limit: 100, cost: 0 };
    expect(await store.quotaTake([tokens], 60_000)).toEqual({ ok: true });
    expect(await store.get('q:tokens')).toBeNull(); // not created
    await store.incr('q:tokens', 99);
    expect(await store.quotaTake([tokens], 60_000)).toEqual({ ok: true });
    await store.incr('q:tokens', 1);
    expect(await store.quotaTake([tokens], 60_000)).toEqual({ ok: false, key: 'q:tokens', used: 100, limit: 100 });
    await store.incr('q:tokens', 50); // recorded after a call that went over
    const requests = { key: 'q:requests', limit: 5, cost: 1 };
    expect(await store.quotaTake([requests, tokens], 60_000)).toEqual({ ok: false, key: 'q:tokens', used: 150, limit: 100 });
    expect(await store.get('q:requests')).toBeNull();
    expect(await store.quotaTake([{ key: 'q:zero', limit: 0, cost: 0 }], 60_000)).toEqual({ ok: false, key: 'q:zero', used: 0, limit: 0 });
    expect(await store.quotaTake([{ key: 'q:zero', limit: 0, cost: 1 }], 60_000)).toEqual({ ok: false, key: 'q:zero', used: 0, limit: 0 });
  });

  it('quotaTake gives its TTL only to the counters it creates', async () => {
    expect(await store.quotaTake([{ key: 'q:a', limit: 10, cost: 1 }], 400)).toEqual({ ok: true });
    await store.set('q:kept', '1');
    await sleep(100);
    const both = [
      { key: 'q:a', limit: 10, cost: 1 },
      { key: 'q:b', limit: 10, cost: 2 },
      { key: 'q:kept', limit: 10, cost: 1 },
    ];
    expect(await store.quotaTake(both, 400)).toEqual({ ok: true }); // does not extend q:a's TTL
    await sleep(350);
    expect(await store.get('q:a')).toBeNull();
    expect(await store.get('q:b')).toBe('2');
    expect(await store.get('q:kept')).toBe('2'); // had no TTL and got none
    await sleep(150);
    expect(await store.get('q:b')).toBeNull();
    expect(await store.get('q:kept')).toBe('2');
  });

  it('quotaTake lets exactly 10 of 50 concurrent callers through a limit of 10', async () => {
    const counters = [
      { key: 'q:user', limit: 10, cost: 1 },
      { key: 'q:tokens', limit: 1_000, cost: 0 },
      { key: 'q:total', limit: 100, cost: 1 },
    ];
    const results = await Promise.all(Array.from({ length: 50 }, () => store.quotaTake(counters, 60_000)));
    expect(results.filter((r) => r.ok)).toHaveLength(10);
    expect(results.filter((r) => !r.ok)).toEqual(Array.from({ length: 40 }, () => ({ ok: false, key: 'q:user', used: 10, limit: 10 })));
    expect(await store.get('q:user')).toBe('10');
    expect(await store.get('q:total')).toBe('10');
    expect(await store.get('q:tokens')).toBeNull();
  });

  it('lease: one owner at a time, renewable by its owner, free again when released or expired', async () => {
    expect(await store.lease('lease:poller', 'a', 60_000)).toBe(true);
    expect(await store.lease('lease:poller', 'b', 60_000)).toBe(false);
    expect(await store.lease('lease:poller', 'a', 60_000)).toBe(true);
    expect(await store.release('lease:poller', 'b')).toBe(false);
    expect(await store.release('lease:poller', 'a')).toBe(true);
    const results = await Promise.all(['a', 'b', 'c', 'd'].map((owner) => store.lease('lease:poller', owner, 40)));
    expect(results.filter(Boolean)).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(await store.lease('lease:poller', 'd', 60_000)).toBe(true);
    await expect(store.lease('lease:poller', 'd', 0)).rejects.toThrow();
  });

  it('routes: added in both directions, updated by id, removed with the last route of a source', async () => {
    const routes = new Routes(store);
    const a = { id: 'a', source: 'feed:1', target: 'chat:x', value: '{"n":1}' };
    expect(await routes.add(a, 5)).toBe('added');
    expect(await routes.add({ id: 'b', source: 'feed:1', target: 'chat:y', value: '{}' }, 5)).toBe('added');
    expect(await routes.add({ id: 'c', source: 'feed:2', target: 'chat:x', value: '{}' }, 5)).toBe('added');
    expect(await routes.add({ ...a, value: '{"n":2}' }, 5)).toBe('updated');
    await expect(routes.add({ ...a, target: 'chat:z' }, 5)).rejects.toThrow(/route id a belongs to another source or target/);
    expect(await routes.get('a')).toEqual({ ...a, value: '{"n":2}' });
    expect((await routes.from('feed:1')).map((r) => r.id)).toEqual(['a', 'b']);
    expect((await routes.to('chat:x')).map((r) => r.id)).toEqual(['a', 'c']);
    expect(await routes.sources()).toEqual(['feed:1', 'feed:2']);

    expect(await routes.remove({ id: 'a', source: 'feed:1', target: 'chat:y' })).toBe(false); // not its target
    expect(await routes.remove({ id: 'c', source: 'feed:2', target: 'chat:x' })).toBe(true);
    expect(await routes.remove({ id: 'c', source: 'feed:2', target: 'chat:x' })).toBe(false);
    expect(await routes.sources()).toEqual(['feed:1']);
    expect(await routes.get('c')).toBeNull();
    expect((await routes.to('chat:x')).map((r) => r.id)).toEqual(['a']);
    await routes.remove({ id: 'a', source: 'feed:1', target: 'chat:x' });
    await routes.remove({ id: 'b', source: 'feed:1', target: 'chat:y' });
    expect(await routes.sources()).toEqual([]);
    expect(await store.del('route:from:feed:1', 'route:to:chat:x', 'route:to:chat:y', 'route:sources')).toBe(0);
  });

  it('routes: 20 concurrent adds to one target with room for 5 add exactly 5', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => store.routeAdd({ id: `r${i}`, source: `feed:${i}`, target: 'chat:x', value: '{}' }, 5)),
    );
    expect(results.filter((r) => r === 'added')).toHaveLength(5);
    expect(results.filter((r) => r === 'full')).toHaveLength(15);
    expect(await new Routes(store).to('chat:x')).toHaveLength(5);
    expect(await new Routes(store).sources()).toHaveLength(5);
  });

  it('quotaTake rejects bad limits, costs, TTLs and keys, and counters that are not integers, writing nothing', async () => {
    const ok = { key: 'q:ok', limit: 10, cost: 1 };
    await expect(store.quotaTake([ok, { key: 'q:x', limit: 1.5, cost: 1 }], 60_000)).rejects.toThrow(/not an integer/);
    await expect(store.quotaTake([ok, { key: 'q:x', limit: -1, cost: 1 }], 60_000)).rejects.toThrow(/not be negative/);
    await expect(store.quotaTake([ok, { key: 'q:x', limit: Number.POSITIVE_INFINITY, cost: 1 }], 60_000)).rejects.toThrow(/not an integer/);
    await expect(store.quotaTake([ok, { key: 'q:x', limit: Number.NaN, cost: 1 }], 60_000)).rejects.toThrow(/not an integer/);
    await expect(store.quotaTake([ok, { key: 'q:x', limit: 10, cost: 0.5 }], 60_000)).rejects.toThrow(/not an integer/);
    await expect(store.quotaTake([ok, { key: 'q:x', limit: 10, cost: -1 }], 60_000)).rejects.toThrow(/not be negative/);
    await expect(store.quotaTake([ok], 0)).rejects.toThrow(/invalid expire time/);
    await expect(store.quotaTake([ok], 1.5)).rejects.toThrow(/invalid expire time/);
    await expect(store.quotaTake([ok, { ...ok }], 60_000)).rejects.toThrow(/distinct keys/);
    const five = ['a', 'b', 'c', 'd', 'e'].map((key) => ({ key: `q:${key}`, limit: 10, cost: 1 }));
    await expect(store.quotaTake(five, 60_000)).rejects.toThrow(/at most 4 counters/);
    await store.set('q:word', 'abc');
    await store.set('q:float', '1.5');
    await store.hset('q:hash', { f: '1' });
    await expect(store.quotaTake([ok, { key: 'q:word', limit: 10, cost: 1 }], 60_000)).rejects.toThrow(/not an integer/);
    await expect(store.quotaTake([ok, { key: 'q:float', limit: 10, cost: 0 }], 60_000)).rejects.toThrow(/not an integer/);
    await expect(store.quotaTake([ok, { key: 'q:hash', limit: 10, cost: 1 }], 60_000)).rejects.toThrow(WRONGTYPE);
    expect(await store.get('q:ok')).toBeNull();
    expect(await store.get('q:x')).toBeNull();
    expect(await store.get('q:word')).toBe('abc');
  });

  it('expire sets a TTL on existing keys of any type; a TTL that is not positive deletes', async () => {
    expect(await store.expire('missing', 1_000)).toBe(false);
    await store.sadd('s', 'a');
    expect(await store.expire('s', 50)).toBe(true);
    await store.zadd('z', { a: 1 });
    expect(await store.expire('z', 50)).toBe(true);
    await store.set('gone', 'v');
    expect(await store.expire('gone', 0)).toBe(true);
    expect(await store.get('gone')).toBeNull();
    await sleep(120);
    expect(await store.smembers('s')).toEqual([]);
    expect(await store.sadd('s', 'b')).toBe(1);
    expect(await store.zrange('z', 10)).toEqual([]);
  });

  it('hset and hsetnx with ttlMs set the hash time to live in the same step; a write renews it', async () => {
    await store.hset('ht', { a: '1' }, { ttlMs: 150 });
    expect(await store.hsetnx('hn', 'f', 'v', { ttlMs: 150 })).toBe(true);
    await store.hset('keep', { a: '1' });
    expect(await store.hsetnx('keep', 'a', 'x', { ttlMs: 150 })).toBe(false); // nothing written, no TTL set
    await store.hset('renewed', { a: '1' }, { ttlMs: 150 });
    await sleep(100);
    await store.hset('renewed', { b: '2' }, { ttlMs: 150 });
    await sleep(100);
    expect(await store.hgetall('ht')).toEqual({});
    expect(await store.hgetall('hn')).toEqual({});
    expect(await store.hgetall('keep')).toEqual({ a: '1' });
    expect(await store.hgetall('renewed')).toEqual({ a: '1', b: '2' });
    await expect(store.hset('ht', { a: '1' }, { ttlMs: 0 })).rejects.toThrow(/invalid expire time/);
    await expect(store.hsetnx('ht', 'a', '1', { ttlMs: -5 })).rejects.toThrow(/invalid expire time/);
    await store.set('str', 'x');
    await expect(store.hset('str', { a: '1' }, { ttlMs: 1000 })).rejects.toThrow(/WRONGTYPE/);
    await expect(store.hsetnx('str', 'a', '1', { ttlMs: 1000 })).rejects.toThrow(/WRONGTYPE/);
    expect(await store.get('str')).toBe('x');
  });

  it('hsetnx with notify announces on the channel only when it wrote, with or without ttlMs', async () => {
    const heard: string[] = [];
    await store.listen('hn-events', (m) => heard.push(m));
    expect(await store.hsetnx('hn1', 'f', 'v', { notify: { channel: 'hn-events', message: 'first' } })).toBe(true);
    expect(await store.hsetnx('hn1', 'f', 'other', { notify: { channel: 'hn-events', message: 'again' } })).toBe(false);
    expect(await store.hsetnx('hn2', 'f', 'v', { ttlMs: 150, notify: { channel: 'hn-events', message: 'second' } })).toBe(true);
    expect(await store.hsetnx('hn2', 'f', 'v', { ttlMs: 150, notify: { channel: 'hn-events', message: 'again' } })).toBe(false);
    await store.notify('hn-events', 'marker');
    await waitFor(() => heard.includes('marker'));
    expect(heard).toEqual(['first', 'second', 'marker']);
    expect(await store.hgetall('hn1')).toEqual({ f: 'v' });
    await sleep(250);
    expect(await store.hgetall('hn1')).toEqual({ f: 'v' }); // no ttlMs: no time to live
    expect(await store.hgetall('hn2')).toEqual({});
  });

  it('hashes: hset, hsetnx, hget, hgetall, hdel, hincr', async () => {
    await store.hset('h', { a: '1', b: '2' });
    await store.hset('h', {}); // nothing to write is not an error
    expect(await store.hsetnx('h', 'a', 'x')).toBe(false);
    expect(await store.hsetnx('h', 'c', '3')).toBe(true);
    expect(await store.hsetnx('fresh', 'f', 'v')).toBe(true);
    expect(await store.hget('h', 'a')).toBe('1');
    expect(await store.hget('h', 'zz')).toBeNull();
    expect(await store.hget('missing', 'a')).toBeNull();
    expect(await store.hgetall('h')).toEqual({ a: '1', b: '2', c: '3' });
    expect(await store.hgetall('missing')).toEqual({});
    expect(await store.hlen('h')).toBe(3);
    expect(await store.hlen('missing')).toBe(0);
    expect(await store.hincr('h', 'a', 5)).toBe(6);
    expect(await store.hincr('h', 'new')).toBe(1);
    expect(await store.hincr('other', 'f', -2)).toBe(-2);
    await expect(store.hincr('h', 'b', 0.5)).rejects.toThrow(/not an integer/);
    await store.hset('h', { word: 'abc' });
    await expect(store.hincr('h', 'word')).rejects.toThrow(/not an integer/);
    expect(await store.hdel('h', 'a', 'b', 'missing')).toBe(2);
    expect(await store.hdel('h')).toBe(0);
    expect(await store.hdel('h', 'c', 'new', 'word')).toBe(3);
    // An emptied hash is gone, so the key is free for another type.
    expect(await store.set('h', 'now a string', { ifAbsent: true })).toBe(true);
  });

  it('hash fields with odd names round-trip', async () => {
    await store.hset('h', { ['__proto__']: 'p', constructor: 'c', '': 'empty', 'a b:c': 'd' });
    const all = await store.hgetall('h');
    expect(Object.keys(all).sort()).toEqual(['', '__proto__', 'a b:c', 'constructor']);
    expect(all['__proto__']).toBe('p');
    expect(await store.hget('h', '__proto__')).toBe('p');
    expect(await store.hget('h', 'constructor')).toBe('c');
  });

  it('sets: sadd and srem count changes, emptied sets disappear', async () => {
    expect(await store.sadd('s', 'a', 'b', 'a')).toBe(2);
    expect(await store.sadd('s', 'b', 'c')).toBe(1);
    expect(await store.sadd('s')).toBe(0);
    expect((await store.smembers('s')).sort()).toEqual(['a', 'b', 'c']);
    expect(await store.sismember('s', 'a')).toBe(true);
    expect(await store.sismember('s', 'z')).toBe(false);
    expect(await store.sismember('missing', 'a')).toBe(false);
    expect(await store.srem('s', 'a', 'z')).toBe(1);
    expect(await store.srem('s')).toBe(0);
    expect(await store.srem('s', 'b', 'c')).toBe(2);
    expect(await store.smembers('s')).toEqual([]);
    expect(await store.del('s')).toBe(0);
  });

  it('lists: rpush, lrange with negative indexes, ltrim', async () => {
    expect(await store.rpush('l', 'a', 'b', 'c')).toBe(3);
    expect(await store.rpush('l', 'd', 'e')).toBe(5);
    expect(await store.rpush('l')).toBe(5);
    expect(await store.rpush('missing')).toBe(0);
    expect(await store.lrange('l', 0, -1)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(await store.lrange('l', 1, 2)).toEqual(['b', 'c']);
    expect(await store.lrange('l', -2, -1)).toEqual(['d', 'e']);
    expect(await store.lrange('l', -100, 100)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(await store.lrange('l', 3, 1)).toEqual([]);
    expect(await store.lrange('l', 5, 10)).toEqual([]);
    expect(await store.lrange('missing', 0, -1)).toEqual([]);

    await store.ltrim('l', -4, -1);
    expect(await store.lrange('l', 0, -1)).toEqual(['b', 'c', 'd', 'e']);
    await store.ltrim('l', 1, 2);
    expect(await store.lrange('l', 0, -1)).toEqual(['c', 'd']);
    await store.ltrim('l', 0, -1);
    expect(await store.lrange('l', 0, -1)).toEqual(['c', 'd']);
    await store.ltrim('l', 5, 10);
    expect(await store.lrange('l', 0, -1)).toEqual([]);
    expect(await store.del('l')).toBe(0); // an emptied list is gone
    await store.ltrim('missing', 0, 1);
  });

  it('sorted sets: zadd orders by score and moves existing members, zrem counts, emptied sets disappear', async () => {
    expect(await store.zadd('z', { c: 3_000, a: 1_000, b: 2_000 })).toBe(3);
    expect(await store.zrange('z', 10)).toEqual([
      { member: 'a', score: 1_000 },
      { member: 'b', score: 2_000 },
      { member: 'c', score: 3_000 },
    ]);
    // Moving is not adding: only d is new.
    expect(await store.zadd('z', { a: 4_000, d: 500 })).toBe(1);
    expect(await store.zadd('z', {})).toBe(0);
    expect((await store.zrange('z', 10)).map((e) => e.member)).toEqual(['d', 'b', 'c', 'a']);
    expect(await store.zrange('z', 10)).toContainEqual({ member: 'a', score: 4_000 });

    expect(await store.zrem('z', 'b', 'missing', 'b')).toBe(1);
    expect(await store.zrem('z')).toBe(0);
    expect(await store.zrem('missing', 'a')).toBe(0);
    expect((await store.zrange('z', 10)).map((e) => e.member)).toEqual(['d', 'c', 'a']);
    expect(await store.zrem('z', 'a', 'c', 'd')).toBe(3);
    expect(await store.zrange('z', 10)).toEqual([]);
    expect(await store.del('z')).toBe(0); // an emptied sorted set is gone
    expect(await store.zrange('missing', 10)).toEqual([]);
  });

  it('zrange returns at most limit members; scores round-trip; equal scores order by member bytes', async () => {
    await store.zadd('z', { late: 1_700_000_000_000.25, early: -3, mid: 1.5, zero: 0, neg: -0 });
    expect(await store.zrange('z', 2)).toEqual([
      { member: 'early', score: -3 },
      { member: 'neg', score: 0 },
    ]);
    expect(await store.zrange('z', 0)).toEqual([]);
    expect(await store.zrange('z', 100)).toEqual([
      { member: 'early', score: -3 },
      { member: 'neg', score: 0 },
      { member: 'zero', score: 0 },
      { member: 'mid', score: 1.5 },
      { member: 'late', score: 1_700_000_000_000.25 },
    ]);

    // Redis compares the UTF-8 bytes of members with equal scores: code point order, where U+FF5E
    // comes before U+1F642 (JavaScript's `<` on UTF-16 units says the opposite).
    const members = ['b', 'B', 'a', 'ab', '', 'é', '\u{1F642}', '\uFF5E', '__proto__'];
    await store.zadd('tie', Object.fromEntries(members.map((m) => [m, 7])));
    expect((await store.zrange('tie', 100)).map((e) => e.member)).toEqual([
      '',
      'B',
      '__proto__',
      'a',
      'ab',
      'b',
      'é',
      '\uFF5E',
      '\u{1F642}',
    ]);
  });

  it('zclaim claims only due members, lowest score first, up to limit, and leases them', async () => {
    await store.zadd('timers', { t3: 3_000, t1: 1_000, t2: 2_000, t4: 4_000, later: 9_000 });
    expect(await store.zclaim('timers', 500, 1_000, 10)).toEqual([]);
    expect(await store.zclaim('timers', 3_000, 1_000, 2)).toEqual(['t1', 't2']);
    expect(await store.zclaim('timers', 3_000, 1_000, 0)).toEqual([]);
    expect(await store.zclaim('timers', 3_500, 1_000, 10)).toEqual(['t3']);
    expect(await store.zrange('timers', 10)).toEqual([
      { member: 't1', score: 4_000 },
      { member: 't2', score: 4_000 },
      { member: 't4', score: 4_000 },
      { member: 't3', score: 4_500 },
      { member: 'later', score: 9_000 },
    ]);
    expect(await store.zclaim('missing', 3_000, 1_000, 10)).toEqual([]);
  });

  it('a claimed member is not claimed again until its lease passes, unless removed', async () => {
    await store.zadd('timers', { a: 1_000, b: 1_000 });
    expect(await store.zclaim('timers', 2_000, 30_000, 10)).toEqual(['a', 'b']);
    expect(await store.zclaim('timers', 2_000, 30_000, 10)).toEqual([]);
    expect(await store.zclaim('timers', 31_999, 30_000, 10)).toEqual([]);
    expect(await store.zrem('timers', 'a')).toBe(1); // done with a
    expect(await store.zclaim('timers', 32_000, 30_000, 10)).toEqual(['b']); // b's worker died: due again
    expect(await store.zclaim('timers', 40_000, 30_000, 10)).toEqual([]);
    await store.zadd('timers', { b: 40_000 }); // moved back by hand: due at once
    expect(await store.zclaim('timers', 40_000, 30_000, 10)).toEqual(['b']);
  });

  it('20 concurrent zclaim calls over 50 due members claim each exactly once', async () => {
    const members = Array.from({ length: 50 }, (_, i) => `m${String(i).padStart(2, '0')}`);
    await store.zadd('timers', Object.fromEntries(members.map((m, i) => [m, 1_000 + i])));
    const batches = await Promise.all(Array.from({ length: 20 }, () => store.zclaim('timers', 2_000, 60_000, 4)));
    const claimed = batches.flat();
    expect(claimed).toHaveLength(50);
    expect([...claimed].sort()).toEqual(members);
    for (const batch of batches) expect(batch).toEqual([...batch].sort()); // each batch lowest first
    expect(await store.zclaim('timers', 2_000, 60_000, 100)).toEqual([]);
  });

  it('rejects scores that are not finite, and bad limits and leases, writing nothing', async () => {
    await expect(store.zadd('z', { a: Number.NaN })).rejects.toThrow(/not a finite number/);
    await expect(store.zadd('z', { a: 1, b: Number.POSITIVE_INFINITY })).rejects.toThrow(/not a finite number/);
    await expect(store.zadd('z', { a: Number.NEGATIVE_INFINITY })).rejects.toThrow(/not a finite number/);
    expect(await store.zrange('z', 10)).toEqual([]);
    await store.zadd('z', { a: 1 });
    await expect(store.zrange('z', -1)).rejects.toThrow(/not be negative/);
    await expect(store.zrange('z', 1.5)).rejects.toThrow(/not an integer/);
    await expect(store.zclaim('z', Number.NaN, 1_000, 10)).rejects.toThrow(/not a finite number/);
    await expect(store.zclaim('z', Number.POSITIVE_INFINITY, 1_000, 10)).rejects.toThrow(/not a finite number/);
    await expect(store.zclaim('z', 10, 0, 10)).rejects.toThrow(/invalid expire time/);
    await expect(store.zclaim('z', 10, 1.5, 10)).rejects.toThrow(/invalid expire time/);
    await expect(store.zclaim('z', 10, 1_000, -1)).rejects.toThrow(/not be negative/);
    await expect(store.zclaim('z', 10, 1_000, 0.5)).rejects.toThrow(/not an integer/);
    expect(await store.zrange('z', 10)).toEqual([{ member: 'a', score: 1 }]);
  });

  it('throws WRONGTYPE when an operation meets a key of another type', async () => {
    await store.hset('h', { f: 'v' });
    await store.set('s', 'v');
    await store.rpush('l', 'x');
    await expect(store.get('h')).rejects.toThrow(WRONGTYPE);
    await expect(store.take('h')).rejects.toThrow(WRONGTYPE);
    await expect(store.incr('h')).rejects.toThrow(WRONGTYPE);
    await expect(store.incr('h', 1, { ttlMs: 1_000 })).rejects.toThrow(WRONGTYPE);
    await expect(store.hget('s', 'f')).rejects.toThrow(WRONGTYPE);
    await expect(store.hset('s', {})).rejects.toThrow(WRONGTYPE);
    await expect(store.hincr('l', 'f')).rejects.toThrow(WRONGTYPE);
    await expect(store.sadd('s', 'x')).rejects.toThrow(WRONGTYPE);
    await expect(store.sadd('s')).rejects.toThrow(WRONGTYPE);
    await expect(store.smembers('h')).rejects.toThrow(WRONGTYPE);
    await expect(store.rpush('h', 'x')).rejects.toThrow(WRONGTYPE);
    await expect(store.rpush('h')).rejects.toThrow(WRONGTYPE);
    await expect(store.lrange('s', 0, -1)).rejects.toThrow(WRONGTYPE);
    await expect(store.ltrim('h', 0, 1)).rejects.toThrow(WRONGTYPE);
    await expect(store.zadd('s', { m: 1 })).rejects.toThrow(WRONGTYPE);
    await expect(store.zadd('s', {})).rejects.toThrow(WRONGTYPE);
    await expect(store.zrem('h', 'm')).rejects.toThrow(WRONGTYPE);
    await expect(store.zrem('h')).rejects.toThrow(WRONGTYPE);
    await expect(store.zrange('l', 10)).rejects.toThrow(WRONGTYPE);
    await expect(store.zrange('l', 0)).rejects.toThrow(WRONGTYPE);
    await expect(store.zclaim('s', 1_000, 1_000, 10)).rejects.toThrow(WRONGTYPE);
    await expect(store.zclaim('s', 1_000, 1_000, 0)).rejects.toThrow(WRONGTYPE);
    await store.zadd('z', { m: 1 });
    await expect(store.get('z')).rejects.toThrow(WRONGTYPE);
    await expect(store.hgetall('z')).rejects.toThrow(WRONGTYPE);
    await expect(store.sadd('z', 'x')).rejects.toThrow(WRONGTYPE);
    await expect(store.lrange('z', 0, -1)).rejects.toThrow(WRONGTYPE);
    expect(await store.zrange('z', 10)).toEqual([{ member: 'm', score: 1 }]);
    // The failed calls changed nothing; SET replaces a key of any type.
    expect(await store.hgetall('h')).toEqual({ f: 'v' });
    expect(await store.set('h', 'plain')).toBe(true);
    expect(await store.get('h')).toBe('plain');
  });

  it('del removes keys of any type and counts those that existed', async () => {
    await store.set('a', '1');
    await store.hset('h', { f: 'v' });
    await store.sadd('s', 'm');
    await store.rpush('l', 'x');
    await store.zadd('z', { m: 1 });
    expect(await store.del()).toBe(0);
    expect(await store.del('a', 'h', 's', 'l', 'z', 'missing')).toBe(5);
    expect(await store.get('a')).toBeNull();
    expect(await store.hgetall('h')).toEqual({});
    expect(await store.smembers('s')).toEqual([]);
    expect(await store.lrange('l', 0, -1)).toEqual([]);
    expect(await store.zrange('z', 10)).toEqual([]);
    expect(await store.zclaim('z', 10, 1_000, 10)).toEqual([]);
    expect(await store.zadd('z', { m: 2 })).toBe(1); // the member is new again
    expect(await store.del('a')).toBe(0);
  });

  it('notify reaches every listener of the channel until it unsubscribes; a throwing listener is logged', async () => {
    const lines: string[] = [];
    const logged = await open(createLogger('error', { write: (line: string) => void lines.push(line) }));
    const a: string[] = [];
    const b: string[] = [];
    const stopA = await logged.listen('ch', (m) => a.push(m));
    await logged.listen('ch', () => {
      throw new Error('listener broke');
    });
    await logged.listen('ch', (m) => b.push(m));
    await logged.listen('other', (m) => b.push(`other:${m}`));

    await logged.notify('ch', 'one');
    await waitFor(() => a.length === 1 && b.length === 1);
    expect(a).toEqual(['one']);
    expect(b).toEqual(['one']);
    await waitFor(() => lines.some((line) => line.includes('listener broke')));

    await stopA();
    await stopA(); // twice is harmless
    await logged.notify('ch', 'two');
    await logged.notify('other', 'three');
    await waitFor(() => b.length === 3);
    expect(a).toEqual(['one']);
    expect(b).toEqual(['one', 'two', 'other:three']);
    await logged.notify('nobody-listens', 'x');
  });

  it('a channel can be left and listened to again', async () => {
    const got: string[] = [];
    const stop = await store.listen('ch', (m) => got.push(`first:${m}`));
    await stop();
    await store.listen('ch', (m) => got.push(`second:${m}`));
    await store.notify('ch', 'x');
    await waitFor(() => got.length === 1);
    await sleep(30);
    expect(got).toEqual(['second:x']);
  });

  it('every operation throws after close; close and unsubscribing stay safe', async () => {
    const closing = await open();
    const stop = await closing.listen('ch', () => undefined);
    await closing.set('k', 'v');
    await closing.ping();
    await closing.close();
    await closing.close(); // idempotent
    await expect(closing.ping()).rejects.toThrow(/closed/);
    await expect(closing.get('k')).rejects.toThrow(/closed/);
    await expect(closing.set('k', 'v')).rejects.toThrow(/closed/);
    await expect(closing.del('k')).rejects.toThrow(/closed/);
    await expect(closing.hgetall('h')).rejects.toThrow(/closed/);
    await expect(closing.sadd('s', 'x')).rejects.toThrow(/closed/);
    await expect(closing.rpush('l', 'x')).rejects.toThrow(/closed/);
    await expect(closing.zadd('z', { m: 1 })).rejects.toThrow(/closed/);
    await expect(closing.zclaim('z', 1, 1_000, 10)).rejects.toThrow(/closed/);
    await expect(closing.quotaTake([{ key: 'q', limit: 1, cost: 1 }], 1_000)).rejects.toThrow(/closed/);
    await expect(closing.notify('ch', 'x')).rejects.toThrow(/closed/);
    await expect(closing.listen('ch', () => undefined)).rejects.toThrow(/closed/);
    await stop();
  });
});

describe('RedisStore specifics', () => {
  const stores: RedisStore[] = [];
  const prefixes: string[] = [];
  async function open(): Promise<RedisStore> {
    const keyPrefix = `${uniqueName()}:`;
    prefixes.push(keyPrefix);
    const store = await RedisStore.open({ url: await redisUrl(), keyPrefix, logger: silentLogger() });
    stores.push(store);
    return store;
  }
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
    for (const prefix of prefixes.splice(0)) await deleteKeys(prefix);
  });

  it('keeps nothing of a finished command alive (no growth with every call)', async () => {
    const store = await open();
    await store.hset('h', { a: '1' });
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const refs: WeakRef<Record<string, string>>[] = [];
    for (let i = 0; i < 20; i++) refs.push(new WeakRef(await store.hgetall('h')));
    for (let i = 0; i < 5 && refs.some((r) => r.deref() !== undefined); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      gc();
    }
    expect(refs.filter((r) => r.deref() !== undefined)).toHaveLength(0);
  });

  it('keys and channels carry the prefix, so two deployments never meet', async () => {
    const [one, two] = [await open(), await open()];
    await one.set('k', 'one');
    await two.set('k', 'two');
    expect(await one.get('k')).toBe('one');
    expect(await (await rawRedis()).get(`${prefixes[0]}k`)).toBe('one');

    const heardByTwo: string[] = [];
    const heardByOne: string[] = [];
    await two.listen('ch', (m) => heardByTwo.push(m));
    await one.listen('ch', (m) => heardByOne.push(m));
    await one.notify('ch', 'for one');
    await waitFor(() => heardByOne.length === 1);
    await two.notify('ch', 'for two');
    await waitFor(() => heardByTwo.length === 1);
    expect(heardByOne).toEqual(['for one']);
    expect(heardByTwo).toEqual(['for two']);
  });

  it('errors from Redis do not carry the values of the command', async () => {
    const store = await open();
    await store.set('s', 'v');
    const err: unknown = await store.rpush('s', 'secret-value').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(WRONGTYPE);
    expect(JSON.stringify({ ...(err as object) })).not.toContain('secret-value');
  });

  it('open fails with a clear error when nothing listens', async () => {
    const started = Date.now();
    await expect(RedisStore.open({ url: 'redis://127.0.0.1:1', logger: silentLogger() })).rejects.toThrow(
      /Redis at 127\.0\.0\.1:1 cannot be reached/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
