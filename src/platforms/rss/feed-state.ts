import { z } from 'zod';
import type { Store } from '../../store/store.ts';
import { feedId } from './feed-items.ts';
import type { Validators } from './feed-fetcher.ts';

/** Item keys remembered per feed (the newest); older ones are forgotten. */
export const SEEN_MAX = 1000;

const StateSchema = z.object({
  etag: z.string().optional(),
  lastModified: z.string().optional(),
  failures: z.coerce.number().int().default(0),
  broken: z.string().optional(),
  lastError: z.string().optional(),
  title: z.string().optional(),
  ttlMinutes: z.coerce.number().int().optional(),
});

export interface FeedStatus {
  readonly validators: Validators;
  readonly failures: number;
  readonly broken: boolean;
  readonly lastError: string | undefined;
  readonly title: string | undefined;
  /** The feed's <ttl> when it was last read (a 304 carries no body to read it from). */
  readonly ttlMinutes: number | undefined;
}

/**
 * What the poller remembers of a feed, in the store so a restarted or another poller goes on from
 * there: the validators of the last answer, failures in a row, whether subscribers were told it is
 * broken, and the keys of the items already delivered (at most SEEN_MAX, newest kept).
 */
export class FeedStates {
  constructor(private readonly store: Store) {}

  async status(url: string): Promise<FeedStatus> {
    const raw = StateSchema.parse(await this.store.hgetall(stateKey(url)));
    return {
      validators: { etag: raw.etag, lastModified: raw.lastModified },
      failures: raw.failures,
      broken: raw.broken === '1',
      lastError: raw.lastError,
      title: raw.title,
      ttlMinutes: raw.ttlMinutes,
    };
  }

  /** A good answer: new validators (when the feed was fetched), failures back to 0. */
  async succeeded(
    url: string,
    update: { validators?: Validators; title?: string | undefined; ttlMinutes?: number | undefined },
  ): Promise<void> {
    const fields: Record<string, string> = { failures: '0' };
    if (update.ttlMinutes !== undefined) fields.ttlMinutes = String(update.ttlMinutes);
    if (update.validators?.etag) fields.etag = update.validators.etag;
    if (update.validators?.lastModified) fields.lastModified = update.validators.lastModified;
    if (update.title) fields.title = update.title;
    await this.store.hset(stateKey(url), fields);
    // No longer broken; and a fetched feed says afresh what it has: validators or a ttl it no longer sends go.
    const stale = update.validators ? ['etag', 'lastModified', 'ttlMinutes'].filter((name) => !(name in fields)) : [];
    await this.store.hdel(stateKey(url), 'broken', ...stale);
  }

  /** A failed poll; returns the failures in a row. */
  async failed(url: string, error: string): Promise<number> {
    await this.store.hset(stateKey(url), { lastError: error });
    return this.store.hincr(stateKey(url), 'failures');
  }

  /** Marks the feed broken; true for the one caller that changed it (who tells the subscribers). Atomic. */
  markBroken(url: string): Promise<boolean> {
    return this.store.hsetnx(stateKey(url), 'broken', '1');
  }

  /** The keys of the items already delivered (empty before the first poll: see hasBaseline). */
  async seen(url: string): Promise<ReadonlySet<string>> {
    return new Set((await this.store.zrange(seenKey(url), SEEN_MAX * 2)).map((entry) => entry.member));
  }

  /** Whether anything was ever recorded for the feed (a first poll only takes note of what is there). */
  async hasBaseline(url: string): Promise<boolean> {
    return (await this.store.zrange(seenKey(url), 1)).length > 0;
  }

  /** Remembers delivered items, keeping the newest SEEN_MAX. */
  async markSeen(url: string, keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    const now = Date.now();
    // Later keys of one call are newer (callers pass them oldest first).
    await this.store.zadd(seenKey(url), Object.fromEntries(keys.map((key, i) => [key, now + i])));
    const all = await this.store.zrange(seenKey(url), SEEN_MAX * 2);
    if (all.length > SEEN_MAX) await this.store.zrem(seenKey(url), ...all.slice(0, all.length - SEEN_MAX).map((entry) => entry.member));
  }

  /** Forgets a feed nobody subscribes to any more. */
  async forget(url: string): Promise<void> {
    await this.store.del(stateKey(url), seenKey(url));
  }
}

function stateKey(url: string): string {
  return `rss:feed:${feedId(url)}`;
}

function seenKey(url: string): string {
  return `rss:seen:${feedId(url)}`;
}
