import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../src/core/logger.ts';
import { MemoryStore, type MemoryStoreOptions } from '../../src/store/memory-store.ts';

const WRONGTYPE = /^WRONGTYPE/;

/** A clock the test moves by hand. */
function manualClock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(check: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(5);
  }
}

const opened: MemoryStore[] = [];
async function open(options: Partial<MemoryStoreOptions> = {}): Promise<MemoryStore> {
  const store = await MemoryStore.open({ logger: silentLogger(), ...options });
  opened.push(store);
  return store;
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close()));
});

describe('MemoryStore strings and TTLs', () => {
  it('expires a key by the injected clock', async () => {
    const clock = manualClock();
    const store = await open({ now: clock.now });
    await store.set('k', 'v', { ttlMs: 1_000 });
    clock.advance(999);
    expect(await store.get('k')).toBe('v');
    clock.advance(1);
    expect(await store.get('k')).toBeNull();
    expect(await store.set('k', 'again', { ifAbsent: true })).toBe(true);
  });

  it('set without a TTL clears an old TTL, like Redis SET', async () => {
    const clock = manualClock();
    const store = await open({ now: clock.now });
    await store.set('k', 'old', { ttlMs: 100 });
    await store.set('k', 'new');
    clock.advance(10_000);
    expect(await store.get('k')).toBe('new');
  });

  it('set ifAbsent writes only when the key is missing', async () => {
    const store = await open();
    expect(await store.set('k', 'first', { ifAbsent: true })).toBe(true);
    expect(await store.set('k', 'second', { ifAbsent: true })).toBe(false);
    expect(await store.get('k')).toBe('first');
    expect(await store.set('k', 'third')).toBe(true);
    expect(await store.get('k')).toBe('third');
  });

  it('incr starts at 0 and applies its TTL only when it creates the counter', async () => {
    const clock = manualClock();
    const store = await open({ now: clock.now });
    expect(await store.incr('n', 1, { ttlMs: 1_000 })).toBe(1);
    clock.advance(600);
    expect(await store.incr('n', 5, { ttlMs: 1_000 })).toBe(6); // does not extend the TTL
    clock.advance(400);
    expect(await store.get('n')).toBeNull();
    expect(await store.incr('n')).toBe(1);
    expect(await store.incr('n', -3)).toBe(-2);
  });

  it('incr keeps an existing TTL and rejects values that are not integers', async () => {
    const clock = manualClock();
    const store = await open({ now: clock.now });
    await store.set('n', '10', { ttlMs: 100 });
    expect(await store.incr('n')).toBe(11);
    clock.advance(100);
    expect(await store.get('n')).toBeNull();
    await store.set('word', 'abc');
    await expect(store.incr('word')).rejects.toThrow(/not an integer/);
    await store.set('float', '1.5');
    await expect(store.incr('float')).rejects.toThrow(/not an integer/);
    expect(await store.get('word')).toBe('abc');
  });

  it('expire sets a TTL on existing keys of any type and reports missing ones', async () => {
    const clock = manualClock();
    const store = await open({ now: clock.now });
    expect(await store.expire('missing', 1_000)).toBe(false);
    await store.sadd('s', 'a');
    expect(await store.expire('s', 1_000)).toBe(true);
    clock.advance(1_000);
    expect(await store.smembers('s')).toEqual([]);
    expect(await store.sadd('s', 'b')).toBe(1);
  });

  it('take gives the value to exactly one of 50 concurrent callers', async () => {
    const store = await open();
    await store.set('stash:1', 'payload');
    const results = await Promise.all(Array.from({ length: 50 }, () => store.take('stash:1')));
    expect(results.filter((r) => r === 'payload')).toHaveLength(1);
    expect(results.filter((r) => r === null)).toHaveLength(49);
    expect(await store.get('stash:1')).toBeNull();
  });

  it('del removes keys of any type and counts those that existed', async () => {
    const store = await open();
    await store.set('a', '1');
    await store.hset('h', { f: 'v' });
    await store.rpush('l', 'x');
    expect(await store.del('a', 'h', 'l', 'missing')).toBe(3);
    expect(await store.hgetall('h')).toEqual({});
  });

  it('sweeps expired keys out of memory on its timer', async () => {
    const clock = manualClock();
    const store = await open({ now: clock.now, sweepIntervalMs: 5 });
    await store.set('a', '1', { ttlMs: 10 });
    await store.set('b', '2');
    expect(store.size).toBe(2);
    clock.advance(10);
    await waitFor(() => store.size === 1);
    expect(await store.get('b')).toBe('2');
  });
});

describe('MemoryStore hashes, sets and lists', () => {
  it('hashes: hset, hsetnx, hget, hgetall, hdel, hincr', async () => {
    const store = await open();
    await store.hset('h', { a: '1', b: '2' });
    expect(await store.hsetnx('h', 'a', 'x')).toBe(false);
    expect(await store.hsetnx('h', 'c', '3')).toBe(true);
    expect(await store.hget('h', 'a')).toBe('1');
    expect(await store.hget('h', 'zz')).toBeNull();
    expect(await store.hgetall('h')).toEqual({ a: '1', b: '2', c: '3' });
    expect(await store.hincr('h', 'a', 5)).toBe(6);
    expect(await store.hincr('h', 'new')).toBe(1);
    expect(await store.hincr('other', 'f', 2)).toBe(2);
    await expect(store.hincr('h', 'b', 0.5)).rejects.toThrow(/not an integer/);
    await store.hset('h', { word: 'abc' });
    await expect(store.hincr('h', 'word')).rejects.toThrow(/not an integer/);
    expect(await store.hdel('h', 'a', 'b', 'missing')).toBe(2);
    expect(await store.hdel('h', 'c', 'new', 'word')).toBe(3);
    // An emptied hash is gone, so the key is free for another type.
    expect(await store.set('h', 'now a string', { ifAbsent: true })).toBe(true);
  });

  it('sets: sadd and srem count changes, emptied sets disappear', async () => {
    const store = await open();
    expect(await store.sadd('s', 'a', 'b', 'a')).toBe(2);
    expect(await store.sadd('s', 'b', 'c')).toBe(1);
    expect((await store.smembers('s')).sort()).toEqual(['a', 'b', 'c']);
    expect(await store.sismember('s', 'a')).toBe(true);
    expect(await store.sismember('s', 'z')).toBe(false);
    expect(await store.srem('s', 'a', 'z')).toBe(1);
    expect(await store.srem('s', 'b', 'c')).toBe(2);
    expect(await store.smembers('s')).toEqual([]);
    expect(await store.del('s')).toBe(0);
  });

  it('lists: rpush and lrange with inclusive and negative indexes', async () => {
    const store = await open();
    expect(await store.rpush('l', 'a', 'b', 'c')).toBe(3);
    expect(await store.rpush('l', 'd', 'e')).toBe(5);
    expect(await store.lrange('l', 0, -1)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(await store.lrange('l', 1, 2)).toEqual(['b', 'c']);
    expect(await store.lrange('l', -2, -1)).toEqual(['d', 'e']);
    expect(await store.lrange('l', -100, 100)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(await store.lrange('l', 3, 1)).toEqual([]);
    expect(await store.lrange('l', 5, 10)).toEqual([]);
    expect(await store.lrange('missing', 0, -1)).toEqual([]);
  });

  it('ltrim keeps the inclusive range and deletes a list it empties', async () => {
    const store = await open();
    await store.rpush('l', 'a', 'b', 'c', 'd', 'e');
    await store.ltrim('l', -3, -1);
    expect(await store.lrange('l', 0, -1)).toEqual(['c', 'd', 'e']);
    await store.ltrim('l', 0, 1);
    expect(await store.lrange('l', 0, -1)).toEqual(['c', 'd']);
    await store.ltrim('l', 5, 10);
    expect(await store.lrange('l', 0, -1)).toEqual([]);
    expect(await store.del('l')).toBe(0);
    await store.ltrim('missing', 0, 1);
  });

  it('throws WRONGTYPE when an operation meets a key of another type', async () => {
    const store = await open();
    await store.hset('h', { f: 'v' });
    await store.set('s', 'v');
    await expect(store.get('h')).rejects.toThrow(WRONGTYPE);
    await expect(store.take('h')).rejects.toThrow(WRONGTYPE);
    await expect(store.incr('h')).rejects.toThrow(WRONGTYPE);
    await expect(store.hget('s', 'f')).rejects.toThrow(WRONGTYPE);
    await expect(store.sadd('s', 'x')).rejects.toThrow(WRONGTYPE);
    await expect(store.rpush('h', 'x')).rejects.toThrow(WRONGTYPE);
    await expect(store.lrange('s', 0, -1)).rejects.toThrow(WRONGTYPE);
    // SET replaces a key of any type.
    expect(await store.set('h', 'plain')).toBe(true);
    expect(await store.get('h')).toBe('plain');
  });
});

describe('MemoryStore notify/listen and lifecycle', () => {
  it('delivers notices asynchronously to every listener until it unsubscribes', async () => {
    const lines: string[] = [];
    const logger = createLogger('error', { write: (line: string) => void lines.push(line) });
    const store = await open({ logger });
    const a: string[] = [];
    const b: string[] = [];
    const stopA = await store.listen('ch', (m) => a.push(m));
    await store.listen('ch', () => {
      throw new Error('listener broke');
    });
    await store.listen('ch', (m) => b.push(m));
    await store.listen('other', (m) => b.push(`other:${m}`));

    const sent = store.notify('ch', 'one');
    expect(a).toEqual([]); // not called synchronously, inside notify
    await sent;
    await waitFor(() => b.length === 1);
    expect(a).toEqual(['one']);
    expect(b).toEqual(['one']);
    expect(lines.some((line) => line.includes('listener broke'))).toBe(true);

    await stopA();
    await store.notify('ch', 'two');
    await waitFor(() => b.length === 2);
    expect(a).toEqual(['one']);
    expect(b).toEqual(['one', 'two']);
  });

  it('every operation throws after close', async () => {
    const store = await MemoryStore.open({ logger: silentLogger() });
    const stop = await store.listen('ch', () => undefined);
    await store.set('k', 'v');
    await store.ping();
    await store.close();
    await store.close(); // idempotent
    await expect(store.ping()).rejects.toThrow(/closed/);
    await expect(store.get('k')).rejects.toThrow(/closed/);
    await expect(store.set('k', 'v')).rejects.toThrow(/closed/);
    await expect(store.hgetall('h')).rejects.toThrow(/closed/);
    await expect(store.notify('ch', 'x')).rejects.toThrow(/closed/);
    await stop(); // unsubscribing stays safe
  });
});

describe('MemoryStore persistence', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memory-store-'));
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
    await rm(dir, { recursive: true, force: true });
  });

  it('restores every type after close and reopen, without expired keys', async () => {
    const clock = manualClock();
    const file = join(dir, 'nested', 'dir', 'store.json'); // the directory does not exist yet
    const first = await MemoryStore.open({ logger: silentLogger(), snapshotFile: file, now: clock.now });
    await first.set('str', 'v');
    await first.set('short', 'gone soon', { ttlMs: 1_000 });
    await first.set('long', 'stays', { ttlMs: 10_000 });
    await first.hset('h', { a: '1', ['__proto__']: 'odd field' });
    await first.sadd('s', 'x', 'y');
    await first.rpush('l', '1', '2', '3');
    await first.incr('n', 7);
    await first.close();

    clock.advance(5_000);
    const second = await open({ snapshotFile: file, now: clock.now });
    expect(await second.get('str')).toBe('v');
    expect(await second.get('short')).toBeNull();
    expect(second.size).toBe(6); // the expired key was not loaded at all
    expect(await second.get('long')).toBe('stays');
    expect(await second.hget('h', '__proto__')).toBe('odd field');
    expect(await second.hget('h', 'a')).toBe('1');
    expect((await second.smembers('s')).sort()).toEqual(['x', 'y']);
    expect(await second.lrange('l', 0, -1)).toEqual(['1', '2', '3']);
    expect(await second.incr('n')).toBe(8);
    clock.advance(5_000);
    expect(await second.get('long')).toBeNull(); // the TTL survived as an absolute time
  });

  it('a debounced snapshot reaches disk without close (a second store sees it)', async () => {
    const file = join(dir, 'store.json');
    const first = await open({ snapshotFile: file, flushDelayMs: 20 });
    await first.set('k', 'v');
    await first.rpush('l', 'a', 'b');
    await sleep(40);
    await waitFor(() => existsSync(file));

    // The first store is still open, as if its process had crashed after the flush.
    const second = await open({ snapshotFile: file });
    expect(await second.get('k')).toBe('v');
    expect(await second.lrange('l', 0, -1)).toEqual(['a', 'b']);
  });

  it('many writes in a burst end up in the file with the last value', async () => {
    const file = join(dir, 'store.json');
    const store = await MemoryStore.open({ logger: silentLogger(), snapshotFile: file, flushDelayMs: 1 });
    for (let i = 0; i < 200; i += 1) {
      await store.set('k', String(i));
      if (i % 20 === 0) await sleep(2);
    }
    await store.close();
    const reopened = await open({ snapshotFile: file });
    expect(await reopened.get('k')).toBe('199');
  });

  it('moves a corrupt file aside, logs it and starts empty', async () => {
    const file = join(dir, 'store.json');
    await writeFile(file, '{"version": 1, "entries": [ broken');
    const lines: string[] = [];
    const logger = createLogger('info', { write: (line: string) => void lines.push(line) });
    const store = await open({ logger, snapshotFile: file });
    expect(await store.get('anything')).toBeNull();
    expect(store.size).toBe(0);

    const files = await readdir(dir);
    const aside = files.find((name) => name.startsWith('store.json.corrupt-'));
    expect(aside).toBeDefined();
    expect(await readFile(join(dir, aside ?? ''), 'utf8')).toContain('broken');
    expect(files).not.toContain('store.json');
    const errors = lines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((l) => l.level >= 50);
    expect(errors.some((l) => l.msg.includes('corrupt'))).toBe(true);

    await store.set('k', 'v');
    await store.close();
    const reopened = await open({ snapshotFile: file });
    expect(await reopened.get('k')).toBe('v');
  });

  it('treats well-formed JSON of the wrong shape as corrupt', async () => {
    const file = join(dir, 'store.json');
    await writeFile(file, JSON.stringify({ version: 1, savedAt: 0, entries: [{ key: 'k', type: 'zset', value: [] }] }));
    const store = await open({ snapshotFile: file });
    expect(store.size).toBe(0);
    expect((await readdir(dir)).some((name) => name.startsWith('store.json.corrupt-'))).toBe(true);
  });
});
