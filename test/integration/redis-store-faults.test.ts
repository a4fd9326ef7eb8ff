import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { RedisStore } from '../../src/store/redis-store.ts';
import { redisUrl, uniqueName } from '../helpers/services.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';

/**
 * The Redis store behind a TCP proxy that cuts every connection, as a network failure would, while
 * the shared Redis server keeps running.
 */

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually<T>(attempt: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

describe('RedisStore through a connection that gets cut', () => {
  let proxy: TcpProxy;
  let raw: Redis;
  let store: RedisStore;
  let prefix: string;
  let lines: string[];

  beforeEach(async () => {
    const target = new URL(await redisUrl());
    proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port || 6379) });
    raw = new Redis(target.href, { maxRetriesPerRequest: 3 });
    prefix = `${uniqueName()}:`;
    lines = [];
    const logger = createLogger('debug', { write: (line: string) => void lines.push(line) });
    store = await RedisStore.open({ url: `redis://127.0.0.1:${proxy.port}`, keyPrefix: prefix, logger });
  });

  afterEach(async () => {
    await store.close();
    await proxy.close();
    let cursor = '0';
    do {
      const [next, keys] = await raw.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      if (keys.length > 0) await raw.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    await raw.quit();
  });

  function logged(level: number, text: string): boolean {
    return lines.some((line) => {
      const entry = JSON.parse(line) as { level: number; msg: string };
      return entry.level === level && entry.msg.includes(text);
    });
  }

  it('commands in flight during a cut all complete after the reconnect, none lost (at least once)', async () => {
    // Big values make one autopipelined batch take long enough to stream through the proxy that the
    // cut lands in its middle: Redis has run part of it, part of the replies never come back.
    const big = 'v'.repeat(100_000);
    const operations: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i += 1) {
      operations.push(store.incr('counter'));
      operations.push(store.set(`key:${i}`, `${i}:${big}`));
    }
    let appliedAtCut = 0;
    const deadline = Date.now() + 5_000;
    while (appliedAtCut < 10 && Date.now() < deadline) appliedAtCut = Number(await raw.get(`${prefix}counter`));
    const cut = proxy.cut(1_000);
    const reopensAt = Date.now() + 1_000;

    let settledAfterReopen = 0;
    const outcomes = await Promise.allSettled(
      operations.map((operation) =>
        operation.finally(() => {
          if (Date.now() >= reopensAt) settledAfterReopen += 1;
        }),
      ),
    );
    await cut;

    expect(appliedAtCut).toBeGreaterThanOrEqual(10);
    expect(appliedAtCut).toBeLessThan(200); // the cut really hit commands in flight
    expect(outcomes.filter((outcome) => outcome.status === 'rejected')).toEqual([]);
    expect(settledAfterReopen).toBeGreaterThan(0); // they waited for the connection instead of failing
    const counter = Number(await store.get('counter'));
    // ioredis sends again what was written but not answered; Redis may have run it already. So the
    // counter is never below 200 (nothing lost) and often above it (some INCRs ran twice).
    expect(counter).toBeGreaterThanOrEqual(200);
    console.info(`redis-store faults: ${appliedAtCut} INCRs applied at the cut, final counter ${counter} (${counter - 200} applied twice)`);
    for (let i = 0; i < 200; i += 10) expect(await store.get(`key:${i}`)).toBe(`${i}:${big}`);
    expect(await raw.exists(...Array.from({ length: 200 }, (_, i) => `${prefix}key:${i}`))).toBe(200);

    expect(logged(40, 'redis connection lost')).toBe(true);
    expect(logged(30, 'redis connection restored')).toBe(true);
    expect(lines.some((line) => line.includes('vvvvvvvvvv'))).toBe(false); // values never reach the log
  });

  it('200 concurrent incr and set issued just before a cut complete after the reconnect', async () => {
    const operations: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i += 1) {
      operations.push(store.incr('counter', 1, { ttlMs: 60_000 }));
      operations.push(store.set(`key:${i}`, String(i)));
    }
    const cut = proxy.cut(1_000);
    const outcomes = await Promise.allSettled(operations);
    await cut;
    expect(outcomes.filter((outcome) => outcome.status === 'rejected')).toEqual([]);
    const counter = Number(await store.get('counter'));
    expect(counter).toBeGreaterThanOrEqual(200);
    console.info(`redis-store faults: counter ${counter} after a cut before the batch was written`);
    expect(await raw.pttl(`${prefix}counter`)).toBeGreaterThan(0);
    expect(await store.get('key:199')).toBe('199');
  });

  it('ping rejects quickly while Redis cannot be reached and succeeds once it can', async () => {
    await store.ping();
    const cut = proxy.cut(1_000);
    let started = Date.now();
    await expect(store.ping()).rejects.toThrow(/Redis/);
    expect(Date.now() - started).toBeLessThan(1_500);
    await sleep(50); // the store has noticed by now
    started = Date.now();
    await expect(store.ping()).rejects.toThrow(/not reachable/);
    expect(Date.now() - started).toBeLessThan(200);
    await cut;
    await eventually(() => store.ping(), 10_000);
  });

  it('a subscription still receives notices after a cut (ioredis subscribes again)', async () => {
    const got: string[] = [];
    await store.listen('news', (message) => got.push(message));
    await store.notify('news', 'before');
    await eventually(async () => expect(got).toContain('before'), 3_000);

    await proxy.cut(300);
    expect(proxy.connections).toBe(0);
    // Pub/sub is fire and forget: a notice published before the subscriber is back is lost. So keep
    // publishing until one arrives.
    let sent = 0;
    await eventually(async () => {
      sent += 1;
      await store.notify('news', `after-${sent}`);
      await sleep(50);
      expect(got.some((message) => message.startsWith('after-'))).toBe(true);
    }, 10_000);
    const stop = await store.listen('news', () => undefined);
    await stop();
    const count = got.length;
    await store.notify('news', 'still there');
    await eventually(async () => expect(got).toHaveLength(count + 1), 3_000);
  });

  it('close does not hang while Redis cannot be reached; waiting commands fail', async () => {
    const cut = proxy.cut(2_000);
    await sleep(50);
    const waiting = store.get('k');
    const started = Date.now();
    await store.close();
    expect(Date.now() - started).toBeLessThan(500);
    await expect(waiting).rejects.toThrow(/closed/i);
    await expect(store.get('k')).rejects.toThrow(/closed/);
    await cut;
  });
});
