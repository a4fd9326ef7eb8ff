import { z } from 'zod';
import { allDone } from '../core/timing.ts';
import type { Store } from '../store/store.ts';

export const HistoryEntrySchema = z.object({
  role: z.enum(['user', 'assistant']),
  content: z.string(),
  /** The envelope this entry came from; a redelivered node never adds its turn twice. */
  nodeId: z.string(),
});
export type HistoryEntry = z.infer<typeof HistoryEntrySchema>;

/**
 * What the LLM remembers of a conversation: per conversation key, never per user, bounded to the
 * last `maxTurns` exchanges.
 */
export class ConversationHistory {
  constructor(
    private readonly store: Store,
    private readonly maxTurns: number,
  ) {}

  private key(conversation: string): string {
    return `history:${conversation}`;
  }

  async load(conversation: string): Promise<HistoryEntry[]> {
    const raw = await this.store.lrange(this.key(conversation), -this.maxTurns * 2, -1);
    const seen = new Set<string>();
    const entries: HistoryEntry[] = [];
    for (const line of raw) {
      const parsed = HistoryEntrySchema.safeParse(parseJson(line));
      if (!parsed.success) continue;
      const id = `${parsed.data.nodeId}/${parsed.data.role}`;
      if (seen.has(id)) continue;
      seen.add(id);
      entries.push(parsed.data);
    }
    return entries;
  }

  async append(conversation: string, entries: readonly HistoryEntry[]): Promise<void> {
    const key = this.key(conversation);
    // One round trip: the store runs a connection's commands in the order they were sent.
    await allDone([this.store.rpush(key, ...entries.map((entry) => JSON.stringify(entry))), this.store.ltrim(key, -this.maxTurns * 2, -1)]);
  }

  async clear(conversation: string): Promise<void> {
    await this.store.del(this.key(conversation));
  }
}

function parseJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}
