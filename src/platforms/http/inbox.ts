import { z } from 'zod';
import type { Store } from '../../store/store.ts';

export const InboxMessageSchema = z.object({ id: z.string(), text: z.string(), at: z.string(), chainId: z.string() });
export type InboxMessage = z.infer<typeof InboxMessageSchema>;

const MAX_MESSAGES = 1000;

/**
 * Messages for an API client that belong to no task of its own (an admin delivered to it), read
 * with GET /v1/messages. Keyed by envelope id, so a redelivery is kept once; the oldest go first
 * past 1,000.
 */
export class Inbox {
  constructor(
    private readonly store: Store,
    private readonly ttlMs: number,
  ) {}

  private key = (address: string): string => `inbox:${address}`;

  async put(address: string, id: string, message: Omit<InboxMessage, 'id'>): Promise<void> {
    const key = this.key(address);
    // Written and given its time to live in one step, only when it is new.
    if (!(await this.store.hsetnx(key, id, JSON.stringify({ id, ...message }), { ttlMs: this.ttlMs }))) return;
    if ((await this.store.hlen(key)) <= MAX_MESSAGES) return;
    const ids = (await this.list(address)).map((m) => m.id);
    await this.store.hdel(key, ...ids.slice(0, ids.length - MAX_MESSAGES));
  }

  /** Oldest first (by time, then id: ids of feed items are not time-ordered). */
  async list(address: string): Promise<InboxMessage[]> {
    const raw = await this.store.hgetall(this.key(address));
    return Object.values(raw)
      .map((value) => InboxMessageSchema.parse(JSON.parse(value)))
      .sort(byTime);
  }
}

function byTime(a: InboxMessage, b: InboxMessage): number {
  return a.at < b.at ? -1 : a.at > b.at ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
