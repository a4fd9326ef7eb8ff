import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../src/core/logger.ts';
import { MemoryStore, type MemoryStoreOptions } from '../../src/store/memory-store.ts';

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

// The behaviour every Store shares is in test/integration/store-contract.test.ts (memory and Redis);
// these are what only the memory adapter has: its clock, its sweeper, its snapshot.
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
    await first.zadd('z', { late: 2_000, early: 1_000.5, ['__proto__']: 1_500 });
    await first.zadd('z-short', { m: 1 });
    await first.expire('z-short', 1_000);
    await first.close();

    clock.advance(5_000);
    const second = await open({ snapshotFile: file, now: clock.now });
    expect(await second.get('str')).toBe('v');
    expect(await second.get('short')).toBeNull();
    expect(await second.zrange('z-short', 10)).toEqual([]);
    expect(second.size).toBe(7); // the expired keys were not loaded at all
    expect(await second.get('long')).toBe('stays');
    expect(await second.hget('h', '__proto__')).toBe('odd field');
    expect(await second.hget('h', 'a')).toBe('1');
    expect((await second.smembers('s')).sort()).toEqual(['x', 'y']);
    expect(await second.lrange('l', 0, -1)).toEqual(['1', '2', '3']);
    expect(await second.incr('n')).toBe(8);
    expect(await second.zrange('z', 10)).toEqual([
      { member: 'early', score: 1_000.5 },
      { member: '__proto__', score: 1_500 },
      { member: 'late', score: 2_000 },
    ]);
    expect(await second.zclaim('z', 1_600, 1_000, 10)).toEqual(['early', '__proto__']);
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
    await writeFile(file, JSON.stringify({ version: 1, savedAt: 0, entries: [{ key: 'k', type: 'stream', value: [] }] }));
    const store = await open({ snapshotFile: file });
    expect(store.size).toBe(0);
    expect((await readdir(dir)).some((name) => name.startsWith('store.json.corrupt-'))).toBe(true);
  });

  it('treats a sorted set with a score that is not a finite number as corrupt', async () => {
    const file = join(dir, 'store.json');
    // 1e999 is valid JSON and parses to Infinity.
    await writeFile(file, '{"version":1,"savedAt":0,"entries":[{"key":"z","type":"zset","value":[["m",1e999]]}]}');
    const store = await open({ snapshotFile: file });
    expect(store.size).toBe(0);
    expect((await readdir(dir)).some((name) => name.startsWith('store.json.corrupt-'))).toBe(true);
  });

  it('loads a snapshot written before sorted sets existed', async () => {
    const file = join(dir, 'store.json');
    const entries = [
      { key: 'str', type: 'string', value: 'v' },
      { key: 'h', type: 'hash', value: [['f', '1']] },
      { key: 's', type: 'set', value: ['a'] },
      { key: 'l', type: 'list', value: ['x', 'y'] },
    ];
    await writeFile(file, JSON.stringify({ version: 1, savedAt: 0, entries }));
    const store = await open({ snapshotFile: file });
    expect(store.size).toBe(4);
    expect(await store.get('str')).toBe('v');
    expect(await store.lrange('l', 0, -1)).toEqual(['x', 'y']);
    expect(await store.zrange('z', 10)).toEqual([]);
  });
});
