/**
 * Subscribing chats to feeds, for the commands, the tools and the HTTP API alike. A subscription is a
 * route feed → chat in the store (both directions changed at once, at most RSS_MAX_SUBSCRIPTIONS per
 * chat). Subscribing fetches the feed first: it must parse as RSS or Atom. The chat then gets the
 * newest RSS_INITIAL_ITEMS items, not the backlog.
 */
import type { EnvelopeBus } from '../../bus/envelope-bus.ts';
import { SwitchboardError } from '../../core/errors.ts';
import { Routes } from '../../store/routes.ts';
import type { Store } from '../../store/store.ts';
import { FeedError } from './feed-error.ts';
import { parseFeedUrl, type Feed, type FeedItem, type FetchResult, type Validators } from './feed-fetcher.ts';
import { itemEnvelope, itemKey } from './feed-items.ts';
import { FeedStates } from './feed-state.ts';
import { SubscriptionSchema, type Subscription } from './subscription.ts';
import { sha256Hex } from '../../core/ids.ts';

/** Fetches a feed (fetchFeed with the operator's limits). */
export type FeedSource = (url: string, validators: Validators) => Promise<FetchResult>;

export interface SubscriptionsOptions {
  readonly store: Store;
  readonly bus: EnvelopeBus;
  readonly fetch: FeedSource;
  readonly maxPerChat: number;
  readonly initialItems: number;
  /** When a new feed is first polled after subscribing. */
  readonly intervalMs: number;
}

export interface SubscribeRequest {
  readonly feedUrl: string;
  readonly to: string;
  readonly instruction?: string | undefined;
  readonly createdBy: string | null;
  readonly chatType?: 'private' | 'group';
}

/** Why a subscription cannot be made or found, in words for the person. */
export class SubscriptionError extends SwitchboardError {
  constructor(
    readonly reason: 'limit' | 'not_found',
    message: string,
  ) {
    super(reason === 'limit' ? 'SUBSCRIPTION_LIMIT' : 'SUBSCRIPTION_NOT_FOUND', message);
  }
}

/** The sorted set of feeds by when they are next due (the poller claims from it). */
export const DUE_KEY = 'rss:due';

export class Subscriptions {
  private readonly routes: Routes;
  readonly states: FeedStates;

  constructor(private readonly options: SubscriptionsOptions) {
    this.routes = new Routes(options.store);
    this.states = new FeedStates(options.store);
  }

  /**
   * Subscribes a chat (again: only the instruction changes). @throws FeedError when the feed cannot be
   * fetched or read, SubscriptionError when the chat has its maximum.
   */
  async subscribe(request: SubscribeRequest): Promise<{ subscription: Subscription; created: boolean }> {
    const feedUrl = parseFeedUrl(request.feedUrl).toString();
    const result = await this.options.fetch(feedUrl, {});
    if (result.status !== 'ok') throw new FeedError('http', 'the feed answered "not modified" to a plain request');
    const { feed } = result;
    const subscription: Subscription = SubscriptionSchema.parse({
      id: subscriptionId(feedUrl, request.to),
      feedUrl,
      to: request.to,
      ...(request.instruction?.trim() ? { instruction: request.instruction.trim() } : {}),
      createdBy: request.createdBy,
      chatType: request.chatType ?? 'private',
      ...(feed.title ? { feedTitle: feed.title } : {}),
      createdAt: new Date().toISOString(),
    });
    const added = await this.routes.add(
      { id: subscription.id, source: feedUrl, target: request.to, value: JSON.stringify(subscription) },
      this.options.maxPerChat,
    );
    if (added === 'full') {
      throw new SubscriptionError(
        'limit',
        `This chat already has ${this.options.maxPerChat} subscriptions, the most allowed (RSS_MAX_SUBSCRIPTIONS).`,
      );
    }
    if (added === 'updated') return { subscription, created: false };

    // A feed nobody polled yet: what is in it now is the baseline, not news.
    const keyed = keyedItems(feed);
    if (!(await this.states.hasBaseline(feedUrl))) {
      await this.states.markSeen(
        feedUrl,
        [...keyed].reverse().map(([key]) => key),
      );
      await this.states.succeeded(feedUrl, { validators: result.validators, title: feed.title, ttlMinutes: feed.ttlMinutes });
      await this.options.store.zadd(DUE_KEY, { [feedUrl]: Date.now() + this.options.intervalMs });
    }
    const at = Date.now();
    for (const [i, [key, item]] of newest(keyed, this.options.initialItems).reverse().entries()) {
      await this.options.bus.publish(itemEnvelope(subscription, feed.title, item, key, new Date(at + i)));
    }
    return { subscription, created: true };
  }

  /** Removes a chat's subscription, by its id or its feed URL. @throws SubscriptionError when there is none. */
  async unsubscribe(idOrUrl: string, to: string, isAdmin = false): Promise<Subscription> {
    const subscription = await this.find(idOrUrl, to, isAdmin);
    await this.routes.remove({ id: subscription.id, source: subscription.feedUrl, target: subscription.to });
    return subscription;
  }

  /** A subscription by id or feed URL that `to` may see (an admin sees every one by id). */
  async find(idOrUrl: string, to: string, isAdmin = false): Promise<Subscription> {
    const trimmed = idOrUrl.trim();
    let id = trimmed;
    if (/^https?:\/\//i.test(trimmed)) {
      try {
        id = subscriptionId(parseFeedUrl(trimmed).toString(), to);
      } catch {
        id = trimmed;
      }
    }
    const found = await this.get(id);
    if (found === null || (found.to !== to && !isAdmin)) {
      throw new SubscriptionError('not_found', `This chat has no subscription ${trimmed}. /subscriptions lists them.`);
    }
    return found;
  }

  async get(id: string): Promise<Subscription | null> {
    const route = await this.routes.get(id);
    return route === null ? null : SubscriptionSchema.parse(JSON.parse(route.value));
  }

  /** A chat's subscriptions. */
  async of(to: string): Promise<Subscription[]> {
    return (await this.routes.to(to)).map((route) => SubscriptionSchema.parse(JSON.parse(route.value)));
  }

  /** A feed's subscribers. */
  async subscribersOf(feedUrl: string): Promise<Subscription[]> {
    return (await this.routes.from(feedUrl)).map((route) => SubscriptionSchema.parse(JSON.parse(route.value)));
  }

  /** Every feed with a subscriber. */
  feeds(): Promise<string[]> {
    return this.routes.sources();
  }
}

/** The same chat and feed always make the same id, so subscribing twice is one subscription. */
export function subscriptionId(feedUrl: string, to: string): string {
  return sha256Hex(`${feedUrl}\n${to}`, 12);
}

/** The items that have a key, in the feed's order. */
export function keyedItems(feed: Feed): [string, FeedItem][] {
  return feed.items.flatMap((item): [string, FeedItem][] => {
    const key = itemKey(item);
    return key === undefined ? [] : [[key, item]];
  });
}

/** The newest n items: by date when every item has one, else the feed's order (newest first). */
function newest(items: [string, FeedItem][], n: number): [string, FeedItem][] {
  if (n === 0) return [];
  const dated = items.every(([, item]) => item.publishedAt !== undefined);
  const sorted = dated ? [...items].sort(([, a], [, b]) => Date.parse(b.publishedAt ?? '') - Date.parse(a.publishedAt ?? '')) : items;
  return sorted.slice(0, n);
}
