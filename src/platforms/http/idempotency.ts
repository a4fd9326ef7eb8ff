import { z } from 'zod';
import type { Store } from '../../store/store.ts';
import { ApiError } from './errors.ts';
import { sha256Hex } from '../../core/ids.ts';

const ClaimSchema = z.object({ taskId: z.string(), bodyHash: z.string() });

/** `Idempotency-Key`: a retried POST returns the task the first one created instead of a second. */
export class IdempotencyKeys {
  constructor(
    private readonly store: Store,
    private readonly ttlMs: number,
  ) {}

  private key = (client: string, key: string): string => `idem:${client}:${sha256Hex(key)}`;

  static hashBody(body: unknown): string {
    return sha256Hex(JSON.stringify(body));
  }

  /**
   * Claims `key` for `taskId`. Returns the task that owns the key: ours (`replayed: false`) or the one
   * an earlier request created. The same key with a different body is refused.
   */
  async claim(client: string, key: string, bodyHash: string, taskId: string): Promise<{ taskId: string; replayed: boolean }> {
    const storeKey = this.key(client, key);
    const value = JSON.stringify({ taskId, bodyHash });
    if (await this.store.set(storeKey, value, { ttlMs: this.ttlMs, ifAbsent: true })) return { taskId, replayed: false };
    const raw = await this.store.get(storeKey);
    if (raw === null) return this.claim(client, key, bodyHash, taskId); // expired in between
    const earlier = ClaimSchema.parse(JSON.parse(raw));
    // A SET NX resent after a dropped connection answers "exists" for our own write.
    if (earlier.taskId === taskId) return { taskId, replayed: false };
    if (earlier.bodyHash !== bodyHash) throw new ApiError('IDEMPOTENCY_KEY_REUSED', undefined, 'Idempotency-Key');
    return { taskId: earlier.taskId, replayed: true };
  }

  async release(client: string, key: string): Promise<void> {
    await this.store.del(this.key(client, key));
  }
}
