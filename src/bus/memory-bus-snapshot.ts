import { mkdir, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { z } from 'zod';
import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { StoredMessage } from './memory-queue.ts';

/** One queue's messages on disk: ready ones in order, then the ones that were unacked. */
export interface QueueSnapshot {
  readonly ready: readonly StoredMessage[];
  readonly unacked: readonly StoredMessage[];
}

export type BusSnapshot = Map<string, QueueSnapshot>;

const messageSchema = z.object({
  messageId: z.string(),
  exchange: z.string(),
  routingKey: z.string(),
  headers: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  body: z.base64(),
  deliveries: z.number().int().nonnegative(),
});

const snapshotSchema = z.object({
  version: z.literal(1),
  savedAt: z.string(),
  queues: z.record(z.string(), z.object({ ready: z.array(messageSchema), unacked: z.array(messageSchema) })),
});

type SnapshotMessageJson = z.infer<typeof messageSchema>;

const toJson = (m: StoredMessage): SnapshotMessageJson => ({
  messageId: m.messageId,
  exchange: m.exchange,
  routingKey: m.routingKey,
  headers: { ...m.headers },
  body: m.body.toString('base64'),
  deliveries: m.deliveries,
});

const fromJson = (m: SnapshotMessageJson): StoredMessage => ({
  ...m,
  headers: Object.freeze({ ...m.headers }),
  body: Buffer.from(m.body, 'base64'),
});

/**
 * Reads a snapshot. A missing file is an empty bus; a corrupt one is logged and moved aside to
 * `<file>.corrupt-<timestamp>` so the bus still starts (and the bad file can be inspected).
 */
export async function readSnapshot(file: string, logger: Logger): Promise<BusSnapshot> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  let parsed: z.infer<typeof snapshotSchema>;
  try {
    parsed = snapshotSchema.parse(JSON.parse(text));
  } catch (err) {
    const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    await rename(file, aside);
    logger.error({ file, movedTo: aside, error: errorMessage(err) }, 'bus snapshot is corrupt; starting empty');
    return new Map();
  }
  const snapshot: BusSnapshot = new Map();
  for (const [queue, { ready, unacked }] of Object.entries(parsed.queues)) {
    snapshot.set(queue, { ready: ready.map(fromJson), unacked: unacked.map(fromJson) });
  }
  return snapshot;
}

/**
 * Writes the bus state to a file atomically: at most `delayMs` after a change (a crash loses at
 * most that much), one write at a time, and a final write on close.
 */
export class SnapshotWriter {
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly file: string,
    private readonly logger: Logger,
    private readonly collect: () => BusSnapshot,
    private readonly delayMs = 200,
  ) {}

  /** Schedule a write; a change while one is scheduled joins it (no starvation under load). */
  changed(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.write().catch((err: unknown) => {
        this.logger.error({ file: this.file, error: errorMessage(err) }, 'bus snapshot write failed');
      });
    }, this.delayMs);
  }

  /** Stop scheduling and write the final state; rejects when that write fails. */
  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.write();
  }

  private write(): Promise<void> {
    const next = this.writing.catch(() => undefined).then(() => this.writeNow());
    this.writing = next;
    return next;
  }

  private async writeNow(): Promise<void> {
    const queues: Record<string, { ready: SnapshotMessageJson[]; unacked: SnapshotMessageJson[] }> = {};
    for (const [name, { ready, unacked }] of this.collect()) {
      if (ready.length + unacked.length === 0) continue;
      queues[name] = { ready: ready.map(toJson), unacked: unacked.map(toJson) };
    }
    const data = JSON.stringify({ version: 1, savedAt: new Date().toISOString(), queues });
    await mkdir(dirname(this.file), { recursive: true });
    await writeFileAtomic(this.file, data);
  }
}
