import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { EnvelopeBus } from '../../src/bus/envelope-bus.ts';
import type { Envelope } from '../../src/core/envelope.ts';
import { createLogger } from '../../src/core/logger.ts';
import { fetchFeed, type Validators } from '../../src/platforms/rss/feed-fetcher.ts';
import { RssPoller } from '../../src/platforms/rss/poller.ts';
import { Subscriptions } from '../../src/platforms/rss/subscriptions.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { RedisStore } from '../../src/store/redis-store.ts';
import type { Store } from '../../src/store/store.ts';
import { FeedServer } from '../fakes/feed-server.ts';
import { deleteRedisPrefix } from '../helpers/cleanup.ts';
import { redisUrl, uniqueName } from '../helpers/services.ts';

const logger = createLogger('silent');
const fetch = (url: string, validators: Validators) =>
  fetchFeed(url, validators, { timeoutMs: 5_000, maxBytes: 1_000_000, allowPrivate: true });

/** A poller with a 100 ms interval that looks every 20 ms. */
function fastPoller(
  store: Store,
  bus: EnvelopeBus,
  subscriptions: Subscriptions,
  options: { leaseMs?: number; maxFailures?: number } = {},
): RssPoller {
  return new RssPoller({
    store,
    bus,
    subscriptions,
    fetch,
    intervalMs: 100,
    maxFailures: 5,
    fetchTimeoutMs: 5_000,
    logger,
    tickMs: 20,
    ...options,
  });
}

const stores: { name: string; open: () => Promise<{ store: Store; cleanup: () => Promise<void> }> }[] = [
  { name: 'memory', open: async () => ({ store: await MemoryStore.open({ logger, sweepIntervalMs: 0 }), cleanup: async () => undefined }) },
  {
    name: 'redis',
    open: async () => {
      const keyPrefix = `${uniqueName('rss')}:`;
      const url = await redisUrl();
      return { store: await RedisStore.open({ url, keyPrefix, logger }), cleanup: () => deleteRedisPrefix(url, keyPrefix) };
    },
  },
];

describe.each(stores)('feed pollers on the $name store', ({ open }) => {
  let feeds: FeedServer;
  const teardown: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    feeds = await FeedServer.start();
  });
  afterAll(async () => {
    await feeds.close();
  });
  afterEach(async () => {
    for (const step of teardown.splice(0).reverse()) await step();
  });

  it('when the active poller dies holding its lease, another takes over and nothing is delivered twice', async () => {
    const { store, cleanup } = await open();
    teardown.push(async () => {
      await store.close();
      await cleanup();
    });
    const published: Envelope[] = [];
    // Only publish is used by the subscriptions and the pollers.
    const bus = { publish: async (envelope: Envelope) => void published.push(envelope) } as unknown as EnvelopeBus;
    const subscriptions = new Subscriptions({ store, bus, fetch, maxPerChat: 10, initialItems: 1, intervalMs: 100 });
    const poller = (): RssPoller => fastPoller(store, bus, subscriptions, { leaseMs: 400 });

    const path = `/takeover-${uniqueName('f')}.xml`;
    const url = feeds.serve(path, { format: 'rss', title: 'Takeover', entries: [{ id: 'i1', title: 'one' }] });
    await subscriptions.subscribe({ feedUrl: url, to: 'http:alice', createdBy: 'http:alice' });
    const first = poller();
    const second = poller();
    first.start();
    await expect.poll(() => feeds.requestsTo(path).length, { timeout: 5_000 }).toBeGreaterThanOrEqual(2);
    second.start();
    teardown.push(() => second.stop());
    feeds.add(path, { id: 'i2', title: 'two' });
    await expect.poll(() => published.length, { timeout: 5_000 }).toBe(2);

    await first.abort(); // dies without giving the lease up
    const diedAt = Date.now();
    feeds.add(path, { id: 'i3', title: 'three' });
    await expect.poll(() => published.length, { timeout: 5_000 }).toBe(3);
    expect(Date.now() - diedAt).toBeGreaterThanOrEqual(300); // not before the lease ran out
    feeds.add(path, { id: 'i4', title: 'four' });
    await expect.poll(() => published.length, { timeout: 5_000 }).toBe(4);
    const before = feeds.requestsTo(path).length;
    await expect.poll(() => feeds.requestsTo(path).length, { timeout: 5_000 }).toBeGreaterThanOrEqual(before + 3);

    expect(published.map((e) => (e.body.kind === 'reply' ? e.body.text.split(']')[0] : ''))).toEqual([
      '**[one',
      '**[two',
      '**[three',
      '**[four',
    ]);
    expect(new Set(published.map((e) => e.id)).size).toBe(4);
  });

  it("honours a feed's <ttl> and Cache-Control max-age: such feeds are polled less often", async () => {
    const { store, cleanup } = await open();
    teardown.push(async () => {
      await store.close();
      await cleanup();
    });
    const bus = { publish: async () => undefined } as unknown as EnvelopeBus;
    const subscriptions = new Subscriptions({ store, bus, fetch, maxPerChat: 10, initialItems: 0, intervalMs: 100 });
    const id = uniqueName('c');
    const plain = feeds.serve(`/plain-${id}.xml`, { format: 'rss', title: 'Plain', entries: [{ id: 'p', title: 'p' }] });
    const ttl = feeds.serve(`/ttl-${id}.xml`, { format: 'rss', title: 'TTL', ttl: 1, entries: [{ id: 't', title: 't' }] });
    const cached = feeds.serve(`/cached-${id}.xml`, { format: 'atom', title: 'Cached', maxAge: 60, entries: [{ id: 'c', title: 'c' }] });
    for (const feedUrl of [plain, ttl, cached]) await subscriptions.subscribe({ feedUrl, to: 'http:alice', createdBy: null });
    const poller = fastPoller(store, bus, subscriptions);
    poller.start();
    teardown.push(() => poller.stop());
    await expect.poll(() => feeds.requestsTo(`/plain-${id}.xml`).length, { timeout: 5_000 }).toBeGreaterThanOrEqual(8);
    // Each: the check when subscribing and the first poll; after that the feed asked to be left alone.
    expect(feeds.requestsTo(`/ttl-${id}.xml`)).toHaveLength(2);
    expect(feeds.requestsTo(`/cached-${id}.xml`)).toHaveLength(2);
  });

  it('a broken feed is reported once, and once more when it works again', async () => {
    const { store, cleanup } = await open();
    teardown.push(async () => {
      await store.close();
      await cleanup();
    });
    const notices: string[] = [];
    const bus = {
      publish: async (envelope: Envelope) => void (envelope.body.kind === 'reply' && notices.push(envelope.body.text)),
    } as unknown as EnvelopeBus;
    const subscriptions = new Subscriptions({ store, bus, fetch, maxPerChat: 10, initialItems: 0, intervalMs: 100 });
    const path = `/flaky-${uniqueName('f')}.xml`;
    const url = feeds.serve(path, { format: 'rss', title: 'Flaky', entries: [{ id: 'x', title: 'x' }] });
    await subscriptions.subscribe({ feedUrl: url, to: 'http:alice', createdBy: null });
    feeds.feed(path).status = 503;
    const poller = fastPoller(store, bus, subscriptions, { maxFailures: 2 });
    poller.start();
    teardown.push(() => poller.stop());
    await expect.poll(() => feeds.requestsTo(path).filter((r) => r.status === 503).length, { timeout: 5_000 }).toBeGreaterThanOrEqual(4);
    expect(notices).toEqual([expect.stringContaining('“Flaky”')]);
    expect(notices[0]).toContain('failed 2 times in a row: the server answered HTTP 503');

    feeds.feed(path).status = undefined;
    await expect.poll(() => notices.length, { timeout: 10_000 }).toBe(2);
    expect(notices[1]).toContain('works again');
    await polledTimes(path, 2);
    expect(notices).toHaveLength(2);
  });

  /** Waits until the feed server has answered `count` more requests to a path. */
  async function polledTimes(path: string, count: number): Promise<void> {
    const target = feeds.requestsTo(path).length + count;
    await expect.poll(() => feeds.requestsTo(path).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(target);
  }
});
