/**
 * The `receiver:rss` role: polls each subscribed feed once, however many chats subscribe, and fans
 * every new item out to every subscriber. One poller is active at a time (a lease in the store that
 * another takes over when the holder dies); feeds are claimed from a due-time set, so even a poller
 * that lost its lease mid-poll never polls a feed another poller holds.
 *
 * Per feed: a conditional GET; new items (by guid, link or title) oldest first, one envelope per
 * subscriber with an id derived from the subscription and the item; then the items are remembered.
 * A crash in between sends the same envelopes again, which senders and the worker recognise. The next
 * poll comes after RSS_INTERVAL with jitter, or later when the feed's ttl or HTTP caching says so; after
 * errors it backs off exponentially, and at RSS_MAX_FAILURES in a row subscribers are told once.
 */
import { randomUUID } from 'node:crypto';
import pLimit from 'p-limit';
import type { EnvelopeBus } from '../../bus/envelope-bus.ts';
import { newMessageEnvelope } from '../../core/envelope.ts';
import type { Logger } from '../../core/logger.ts';
import type { Store } from '../../store/store.ts';
import { FeedError } from './feed-error.ts';
import { feedAddress, itemEnvelope } from './feed-items.ts';
import type { Subscription } from './subscription.ts';
import { DUE_KEY, keyedItems, type FeedSource, type Subscriptions } from './subscriptions.ts';

export interface RssPollerOptions {
  readonly store: Store;
  readonly bus: EnvelopeBus;
  readonly subscriptions: Subscriptions;
  readonly fetch: FeedSource;
  readonly intervalMs: number;
  readonly maxFailures: number;
  /** How long one fetch may take: a claimed feed is not handed to another poller before this passes. */
  readonly fetchTimeoutMs: number;
  readonly logger: Logger;
  /** How often the poller looks for due feeds (default: 1 s, or a quarter of the interval if shorter). */
  readonly tickMs?: number;
  /** How long the lease lasts unless renewed (default 15 s): the takeover time when a poller dies. */
  readonly leaseMs?: number;
}

const LEASE_KEY = 'rss:poller';
const MAX_DELAY_MS = 24 * 3_600_000;
const RECONCILE_MS = 60_000;
const FEEDS_PER_TICK = 16;
const CONCURRENT_FEEDS = 4;

export class RssPoller {
  private readonly owner = randomUUID();
  private readonly limit = pLimit(CONCURRENT_FEEDS);
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private active = false;
  private reconciledAt = 0;

  constructor(private readonly options: RssPollerOptions) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops polling and gives the lease up, so another poller takes over at once. */
  async stop(): Promise<void> {
    await this.abort();
    if (this.active) await this.options.store.release(LEASE_KEY, this.owner).catch(() => false);
    this.active = false;
  }

  /** Stops polling and keeps the lease (as a crash would): another poller takes over when it runs out. */
  async abort(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One look for due feeds; runs them and returns when they are done. */
  async tick(): Promise<void> {
    const { store, logger } = this.options;
    const leased = await store.lease(LEASE_KEY, this.owner, this.options.leaseMs ?? 15_000);
    if (!leased) {
      if (this.active) logger.info('another feed poller took over');
      this.active = false;
      return;
    }
    if (!this.active) logger.info('this process polls the feeds now');
    const now = Date.now();
    if (!this.active || now - this.reconciledAt > RECONCILE_MS) await this.reconcile();
    this.active = true;
    const claimMs = this.options.fetchTimeoutMs * 2 + 5_000;
    const due = await store.zclaim(DUE_KEY, now, claimMs, FEEDS_PER_TICK);
    await Promise.all(due.map((url) => this.limit(() => this.poll(url))));
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick()
        .catch((err: unknown) => this.options.logger.warn({ err }, 'feed poll round failed; trying again'))
        .finally(() => this.schedule(this.tickMs()));
    }, delayMs);
  }

  private tickMs(): number {
    return this.options.tickMs ?? Math.max(50, Math.min(1_000, this.options.intervalMs / 4));
  }

  /** Every subscribed feed is scheduled; feeds nobody subscribes to any more are dropped. */
  private async reconcile(): Promise<void> {
    const { store, subscriptions } = this.options;
    const feeds = new Set(await subscriptions.feeds());
    const scheduled = new Set((await store.zrange(DUE_KEY, 1_000_000)).map((entry) => entry.member));
    const missing = [...feeds].filter((url) => !scheduled.has(url));
    if (missing.length > 0) await store.zadd(DUE_KEY, Object.fromEntries(missing.map((url) => [url, Date.now()])));
    for (const url of scheduled) if (!feeds.has(url)) await this.drop(url);
    this.reconciledAt = Date.now();
  }

  private async drop(url: string): Promise<void> {
    await this.options.store.zrem(DUE_KEY, url);
    await this.options.subscriptions.states.forget(url);
  }

  private async poll(url: string): Promise<void> {
    const { subscriptions, store, logger } = this.options;
    const { states } = subscriptions;
    const log = logger.child({ feed: url });
    const subscribers = await subscriptions.subscribersOf(url);
    if (subscribers.length === 0) return this.drop(url);
    const status = await states.status(url);
    let next: number;
    try {
      const result = await this.options.fetch(url, status.validators);
      if (result.status === 'not_modified') {
        await states.succeeded(url, {});
        log.debug('not modified');
      } else {
        const { feed } = result;
        const keyed = keyedItems(feed);
        const seen = await states.seen(url);
        if (seen.size > 0) {
          const fresh = keyed.filter(([key]) => !seen.has(key)).reverse(); // oldest first
          const at = Date.now();
          for (const [i, [key, item]] of fresh.entries()) {
            await Promise.all(subscribers.map((s) => this.options.bus.publish(itemEnvelope(s, feed.title, item, key, new Date(at + i)))));
          }
          await states.markSeen(
            url,
            fresh.map(([key]) => key),
          );
          if (fresh.length > 0) log.info({ items: fresh.length, subscribers: subscribers.length }, 'new items delivered');
        } else {
          await states.markSeen(
            url,
            [...keyed].reverse().map(([key]) => key),
          );
        }
        await states.succeeded(url, { validators: result.validators, title: feed.title, ttlMinutes: feed.ttlMinutes });
      }
      if (status.broken) await this.tell(subscribers, (s) => `✅ The feed ${name(s)} works again.`);
      const ttlMinutes = result.status === 'ok' ? result.feed.ttlMinutes : status.ttlMinutes;
      next = Math.max(this.options.intervalMs, (ttlMinutes ?? 0) * 60_000, (result.maxAgeSeconds ?? 0) * 1000);
    } catch (err) {
      const message = err instanceof FeedError ? err.message : (err as Error).message;
      const failures = await states.failed(url, message);
      log.warn({ failures, reason: message }, 'feed poll failed');
      if (failures >= this.options.maxFailures && (await states.markBroken(url))) {
        await this.tell(
          subscribers,
          (s) =>
            `⚠️ The feed ${name(s)} failed ${failures} times in a row: ${message}. I keep trying, less often. /unsubscribe ${s.id} stops it.`,
        );
      }
      next = this.options.intervalMs * 2 ** Math.min(failures - 1, 20);
    }
    await store.zadd(DUE_KEY, { [url]: Date.now() + jitter(Math.min(next, MAX_DELAY_MS)) });
  }

  /** A notice to each subscriber, straight to their chat. */
  private async tell(subscribers: readonly Subscription[], text: (s: Subscription) => string): Promise<void> {
    await Promise.all(
      subscribers.map((s) => {
        const envelope = newMessageEnvelope({ from: feedAddress(s.feedUrl), user: null, text: '', to: [s.to] });
        return this.options.bus.publish({ ...envelope, body: { kind: 'reply', text: text(s), format: 'plain', status: 'done' } });
      }),
    );
  }
}

function name(subscription: Subscription): string {
  return subscription.feedTitle ? `“${subscription.feedTitle}” (${subscription.feedUrl})` : subscription.feedUrl;
}

/** Up to 10% later, so feeds subscribed together drift apart. */
function jitter(ms: number): number {
  return Math.round(ms * (1 + Math.random() * 0.1));
}
