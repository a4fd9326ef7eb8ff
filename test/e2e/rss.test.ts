import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EnvelopeBus } from '../../src/bus/envelope-bus.ts';
import { createLogger } from '../../src/core/logger.ts';
import { fetchFeed } from '../../src/platforms/rss/feed-fetcher.ts';
import { RssPoller } from '../../src/platforms/rss/poller.ts';
import { Subscriptions } from '../../src/platforms/rss/subscriptions.ts';
import { FakeOpenAi, lastUserText } from '../fakes/fake-openai.ts';
import { FeedServer, type FeedSpec } from '../fakes/feed-server.ts';
import { MODES, startSwitchboard, type ClientName, type Harness, type HarnessOptions } from '../helpers/switchboard.ts';

const FAST = { RSS_ALLOW_PRIVATE: '1', RSS_INTERVAL: '1' };

describe.each(MODES)('RSS subscriptions, %s mode', (mode) => {
  let feeds: FeedServer;
  let llm: FakeOpenAi;
  const harnesses: Harness[] = [];
  let n = 0;

  beforeAll(async () => {
    [feeds, llm] = await Promise.all([FeedServer.start(), FakeOpenAi.start()]);
  });
  afterAll(async () => {
    await Promise.all([feeds.close(), llm.close()]);
  });
  afterEach(async () => {
    await Promise.all(harnesses.splice(0).map((h) => h.stop()));
    llm.requests.length = 0;
  });

  async function start(env: Record<string, string> = {}, options: Omit<HarnessOptions, 'mode' | 'env'> = {}): Promise<Harness> {
    const sb = await startSwitchboard({
      mode,
      env: { ...FAST, OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: llm.baseURL, OPENAI_MODEL: 'fake', ...env },
      ...options,
    });
    harnesses.push(sb);
    return sb;
  }

  /** A fresh feed path with three entries (a1 oldest … a3 newest). */
  function newFeed(spec: Partial<FeedSpec> = {}): { path: string; url: string } {
    const path = `/feed-${mode}-${++n}.xml`;
    const url = feeds.serve(path, {
      format: 'rss',
      title: `Feed ${n}`,
      entries: [
        { id: 'a1', title: 'First post' },
        { id: 'a2', title: 'Second post' },
        { id: 'a3', title: 'Third post', summary: 'The newest one' },
      ],
      ...spec,
    });
    return { path, url };
  }

  async function subscribe(sb: Harness, client: ClientName, body: Record<string, unknown>): Promise<Response> {
    return sb.request(client, 'POST', '/v1/subscriptions', body);
  }

  async function inbox(sb: Harness, client: ClientName): Promise<string[]> {
    const response = await sb.request(client, 'GET', '/v1/messages');
    return ((await response.json()) as { messages: { text: string }[] }).messages.map((m) => m.text);
  }

  /** Waits until the feed server has answered `count` more requests to a path. */
  async function polled(path: string, count: number): Promise<void> {
    const target = feeds.requestsTo(path).length + count;
    await expect.poll(() => feeds.requestsTo(path).length, { timeout: 15_000, interval: 50 }).toBeGreaterThanOrEqual(target);
  }

  it('two chats on one feed: each gets the newest item on subscribing, then each new item exactly once', async () => {
    const sb = await start();
    const { path, url } = newFeed();
    const created = await subscribe(sb, 'alice', { feedUrl: url });
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ feedUrl: url, to: 'http:alice', feedTitle: `Feed ${n}` });
    expect((await sb.run('bob', { text: `/subscribe ${url}` })).replies[0]?.text).toMatch(/^Subscribed this chat to “Feed \d+”/);

    for (const client of ['alice', 'bob'] as const) {
      await expect.poll(() => inbox(sb, client), { timeout: 5_000 }).toHaveLength(1);
      expect((await inbox(sb, client))[0]).toContain('Third post');
    }
    feeds.add(path, { id: 'a4', title: 'Fourth post' }, { id: 'a5', title: 'Fifth post' });
    for (const client of ['alice', 'bob'] as const) {
      await expect.poll(() => inbox(sb, client), { timeout: 10_000 }).toHaveLength(3);
    }
    await polled(path, 2);
    for (const client of ['alice', 'bob'] as const) {
      const texts = await inbox(sb, client);
      expect(texts).toHaveLength(3);
      expect(texts[1]).toContain('Fourth post');
      expect(texts[2]).toContain('Fifth post');
    }
    // One poll per interval for the feed, however many chats subscribe.
    const gets = feeds.requestsTo(path).filter((r) => r.ifNoneMatch === undefined);
    expect(gets.length).toBeLessThanOrEqual(3); // the two subscriptions' checks and the first poll after a change

    const listed = (await (await sb.request('alice', 'GET', '/v1/subscriptions')).json()) as { subscriptions: { id: string }[] };
    expect(listed.subscriptions).toHaveLength(1);
  });

  it('an Atom feed works the same, and 304 answers deliver nothing again', async () => {
    const sb = await start();
    const { path, url } = newFeed({ format: 'atom' });
    expect((await subscribe(sb, 'alice', { feedUrl: url })).status).toBe(201);
    await expect.poll(() => inbox(sb, 'alice'), { timeout: 5_000 }).toHaveLength(1);
    await polled(path, 3);
    expect(
      feeds
        .requestsTo(path)
        .slice(1)
        .every((r) => r.status === 304),
    ).toBe(true);
    expect(await inbox(sb, 'alice')).toHaveLength(1);
  });

  it('a restarted poller repeats nothing and picks up what came meanwhile', async () => {
    let sb = await start();
    const { path, url } = newFeed();
    await subscribe(sb, 'alice', { feedUrl: url });
    await expect.poll(() => inbox(sb, 'alice'), { timeout: 5_000 }).toHaveLength(1);
    sb = await sb.restart();
    harnesses.splice(0, harnesses.length, sb);
    feeds.add(path, { id: 'a4', title: 'Posted while down' });
    await expect.poll(() => inbox(sb, 'alice'), { timeout: 10_000 }).toHaveLength(2);
    await polled(path, 2);
    expect(await inbox(sb, 'alice')).toHaveLength(2);
  });

  it('two pollers running at once deliver each item once', async () => {
    const sb = await start();
    const { path, url } = newFeed();
    await subscribe(sb, 'alice', { feedUrl: url });
    await subscribe(sb, 'bob', { feedUrl: url });
    const bus = new EnvelopeBus(sb.app.bus, 8);
    const fetch = (feedUrl: string, validators: object) =>
      fetchFeed(feedUrl, validators, { timeoutMs: 5_000, maxBytes: 1_000_000, allowPrivate: true });
    const subscriptions = new Subscriptions({ store: sb.app.store, bus, fetch, maxPerChat: 50, initialItems: 1, intervalMs: 1_000 });
    const second = new RssPoller({
      store: sb.app.store,
      bus,
      subscriptions,
      fetch,
      intervalMs: 1_000,
      maxFailures: 5,
      fetchTimeoutMs: 5_000,
      logger: createLogger('silent'),
      tickMs: 50,
    });
    second.start();
    try {
      for (let i = 4; i <= 8; i++) {
        feeds.add(path, { id: `a${i}`, title: `Post ${i}` });
        await polled(path, 1);
      }
      await expect.poll(() => inbox(sb, 'alice'), { timeout: 10_000 }).toHaveLength(6);
      await polled(path, 2);
    } finally {
      await second.stop();
    }
    for (const client of ['alice', 'bob'] as const) {
      const texts = await inbox(sb, client);
      expect(texts).toHaveLength(6);
      expect(new Set(texts).size).toBe(6);
    }
  });

  it('a feed that starts failing backs off and is reported once; other feeds go on; unsubscribing stops delivery', async () => {
    const sb = await start({ RSS_MAX_FAILURES: '2' });
    const failing = newFeed();
    const healthy = newFeed();
    await subscribe(sb, 'alice', { feedUrl: failing.url });
    await subscribe(sb, 'alice', { feedUrl: healthy.url });
    await expect.poll(() => inbox(sb, 'alice'), { timeout: 5_000 }).toHaveLength(2);

    feeds.feed(failing.path).status = 500;
    const before = feeds.requestsTo(failing.path).length;
    await expect.poll(() => feeds.requestsTo(failing.path).length, { timeout: 15_000 }).toBeGreaterThanOrEqual(before + 3);
    const failed = feeds.requestsTo(failing.path).slice(before);
    const gaps = failed.slice(1).map((r, i) => r.at - (failed[i]?.at ?? 0));
    expect(gaps[1]).toBeGreaterThan((gaps[0] ?? 0) * 1.5); // backing off: about 1 s, then 2 s, …

    feeds.add(healthy.path, { id: 'h4', title: 'Healthy news' });
    await expect.poll(async () => (await inbox(sb, 'alice')).join('\n'), { timeout: 10_000 }).toContain('Healthy news');
    const notices = (await inbox(sb, 'alice')).filter((t) => t.includes('failed 2 times in a row'));
    expect(notices).toHaveLength(1);
    expect(notices[0]).toContain('HTTP 500');

    // Malformed XML: the feed's polls fail, the rest go on.
    feeds.feed(failing.path).status = undefined;
    feeds.feed(failing.path).body = '<rss><channel><item>unclosed';
    const id = (
      (await (await sb.request('alice', 'GET', '/v1/subscriptions')).json()) as { subscriptions: { id: string; feedUrl: string }[] }
    ).subscriptions.find((s) => s.feedUrl === healthy.url)?.id;
    expect((await sb.request('alice', 'DELETE', `/v1/subscriptions/${id}`)).status).toBe(204);
    expect((await sb.request('bob', 'DELETE', `/v1/subscriptions/${id}`)).status).toBe(404);
    const count = (await inbox(sb, 'alice')).length;
    feeds.add(healthy.path, { id: 'h5', title: 'After unsubscribing' });
    await polled(failing.path, 1);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await inbox(sb, 'alice')).toHaveLength(count);
  });

  it('subscribing checks the feed: malformed XML, an oversized body, a 404 and a private address give clear errors', async () => {
    const sb = await start({ RSS_MAX_BYTES: '2048' });
    const malformed = newFeed({ body: '<rss><channel><title>x</title><item>' });
    const big = newFeed({ entries: Array.from({ length: 50 }, (_, i) => ({ id: `b${i}`, title: `Post ${i}`, summary: 'x'.repeat(100) })) });
    const expectError = async (feedUrl: string, status: number, message: RegExp): Promise<void> => {
      const response = await subscribe(sb, 'alice', { feedUrl });
      expect(response.status).toBe(status);
      expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(message);
    };
    await expectError(malformed.url, 422, /not an RSS or Atom feed/);
    await expectError(big.url, 422, /larger than 2 KiB \(RSS_MAX_BYTES\)/);
    await expectError(`${feeds.baseURL}/missing.xml`, 422, /HTTP 404/);
    await expectError('ftp://example.com/feed', 400, /http:\/\/ or https:\/\//);
    expect((await sb.run('alice', { text: `/subscribe ${malformed.url}` })).replies[0]?.text).toMatch(
      /^I could not subscribe to .*: this is not an RSS or Atom feed/,
    );

    const strict = await start({ RSS_ALLOW_PRIVATE: '0' });
    const { url } = newFeed();
    const refused = await subscribe(strict, 'alice', { feedUrl: url });
    expect(refused.status).toBe(422);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(
      /127\.0\.0\.1.*private, loopback or link-local/,
    );
    const byName = await subscribe(strict, 'alice', { feedUrl: url.replace('127.0.0.1', 'localhost') });
    expect(((await byName.json()) as { error: { message: string } }).error.message).toMatch(/localhost resolves to .*private, loopback/);
  });

  it('a subscription with an instruction sends each item through the agent for that subscriber', async () => {
    llm.respond((request) => ({
      text: `summary: ${
        lastUserText(request)
          .split('\n')
          .find((l) => l.startsWith('Title:')) ?? '?'
      }`,
    }));
    const sb = await start();
    const { path, url } = newFeed();
    expect((await subscribe(sb, 'alice', { feedUrl: url, instruction: 'Summarise in two lines, in Chinese' })).status).toBe(201);
    await expect.poll(() => inbox(sb, 'alice'), { timeout: 5_000 }).toEqual(['summary: Title: Third post']);
    feeds.add(path, { id: 'a4', title: 'Fourth post' });
    await expect.poll(() => inbox(sb, 'alice'), { timeout: 10_000 }).toEqual(['summary: Title: Third post', 'summary: Title: Fourth post']);
    expect(lastUserText(llm.requests[0] ?? { path: '', authorization: undefined, body: { model: '', messages: [] } })).toContain(
      'Summarise in two lines, in Chinese',
    );
    expect(llm.requests).toHaveLength(2);
  });

  it('an API client manages only its own address; an admin any, up to the per-chat limit', async () => {
    const sb = await start({ RSS_MAX_SUBSCRIPTIONS: '1' });
    const first = newFeed();
    const second = newFeed();
    expect((await subscribe(sb, 'alice', { feedUrl: first.url, to: 'http:bob' })).status).toBe(403);
    expect((await sb.request('alice', 'GET', '/v1/subscriptions?to=http:bob')).status).toBe(403);
    expect((await subscribe(sb, 'ops', { feedUrl: first.url, to: 'http:bob' })).status).toBe(201);
    expect((await subscribe(sb, 'ops', { feedUrl: first.url, to: 'http:bob' })).status).toBe(200); // again: the same one
    const full = await subscribe(sb, 'ops', { feedUrl: second.url, to: 'http:bob' });
    expect(full.status).toBe(409);
    expect(((await full.json()) as { error: { code: string } }).error.code).toBe('SUBSCRIPTION_LIMIT');
    const listed = (await (await sb.request('bob', 'GET', '/v1/subscriptions')).json()) as { subscriptions: { feedUrl: string }[] };
    expect(listed.subscriptions.map((s) => s.feedUrl)).toEqual([first.url]);
    expect((await sb.run('bob', { text: '/subscriptions' })).replies[0]?.text).toContain(first.url);
    expect((await sb.run('bob', { text: `/unsubscribe ${first.url}` })).replies[0]?.text).toMatch(/^Unsubscribed this chat from/);
    expect((await sb.run('bob', { text: '/subscriptions' })).replies[0]?.text).toBe(
      'This chat has no subscriptions. /subscribe <url> adds one.',
    );
  });
});
