/**
 * The parts of the memory store that are not its methods: the entry types it keeps, the snapshot
 * file format (checked with zod on load), and a
 * writer that coalesces writes into one atomic file replacement at a time.
 */
import { mkdir, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { z } from 'zod';
import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';

/** One key of the memory store. `expiresAt` is absolute, in epoch milliseconds of the store's clock. */
export type Entry =
  | { type: 'string'; value: string; expiresAt?: number }
  | { type: 'hash'; value: Map<string, string>; expiresAt?: number }
  | { type: 'set'; value: Set<string>; expiresAt?: number }
  | { type: 'list'; value: string[]; expiresAt?: number }
  /** A sorted set: member → score. */
  | { type: 'zset'; value: Map<string, number>; expiresAt?: number };

export type EntryType = Entry['type'];

const expiresAt = z.number().int().optional();
// Hash fields and sorted-set members are kept as pairs, not an object, so "__proto__" survives the round trip.
const entrySchema = z.discriminatedUnion('type', [
  z.object({ key: z.string(), type: z.literal('string'), value: z.string(), expiresAt }),
  z.object({
    key: z.string(),
    type: z.literal('hash'),
    value: z.array(z.tuple([z.string(), z.string()])),
    expiresAt,
  }),
  z.object({ key: z.string(), type: z.literal('set'), value: z.array(z.string()), expiresAt }),
  z.object({ key: z.string(), type: z.literal('list'), value: z.array(z.string()), expiresAt }),
  // Added later under the same version: older files have no such entries and load as before. zod's
  // number is finite, so a score of 1e999 (Infinity once parsed) makes the file corrupt.
  z.object({
    key: z.string(),
    type: z.literal('zset'),
    value: z.array(z.tuple([z.string(), z.number()])),
    expiresAt,
  }),
]);

const snapshotSchema = z.object({
  version: z.literal(1),
  savedAt: z.number(),
  entries: z.array(entrySchema),
});

type SnapshotEntry = z.infer<typeof entrySchema>;

/** Serialises the live (not expired, not empty) entries. */
export function serializeSnapshot(data: ReadonlyMap<string, Entry>, now: number): string {
  const entries: SnapshotEntry[] = [];
  for (const [key, entry] of data) {
    if (entry.expiresAt !== undefined && entry.expiresAt <= now) continue;
    const ttl = entry.expiresAt === undefined ? {} : { expiresAt: entry.expiresAt };
    switch (entry.type) {
      case 'string':
        entries.push({ key, type: 'string', value: entry.value, ...ttl });
        break;
      case 'hash':
        entries.push({ key, type: 'hash', value: [...entry.value], ...ttl });
        break;
      case 'set':
        entries.push({ key, type: 'set', value: [...entry.value], ...ttl });
        break;
      case 'list':
        entries.push({ key, type: 'list', value: [...entry.value], ...ttl });
        break;
      case 'zset':
        entries.push({ key, type: 'zset', value: [...entry.value], ...ttl });
        break;
    }
  }
  return JSON.stringify({ version: 1, savedAt: now, entries });
}

function toEntry(item: SnapshotEntry): Entry | undefined {
  const ttl = item.expiresAt === undefined ? {} : { expiresAt: item.expiresAt };
  switch (item.type) {
    case 'string':
      return { type: 'string', value: item.value, ...ttl };
    case 'hash':
      return item.value.length === 0 ? undefined : { type: 'hash', value: new Map(item.value), ...ttl };
    case 'set':
      return item.value.length === 0 ? undefined : { type: 'set', value: new Set(item.value), ...ttl };
    case 'list':
      return item.value.length === 0 ? undefined : { type: 'list', value: [...item.value], ...ttl };
    case 'zset':
      return item.value.length === 0 ? undefined : { type: 'zset', value: new Map(item.value), ...ttl };
  }
}

/**
 * Reads a snapshot. A missing file gives an empty store. A file that is not valid JSON or does not
 * match the schema is logged, moved aside to `<file>.corrupt-<epoch ms>` and also gives an empty
 * store. Other read errors (permissions, a directory in the way) are thrown: starting empty there
 * would overwrite good data on the next flush.
 */
export async function loadSnapshot(file: string, logger: Logger, now: number): Promise<Map<string, Entry>> {
  const data = new Map<string, Entry>();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return data;
    throw new Error(`memory store: cannot read snapshot ${file}: ${errorMessage(err)}`, { cause: err });
  }

  let parsed: z.infer<typeof snapshotSchema>;
  try {
    parsed = snapshotSchema.parse(JSON.parse(text));
  } catch (err) {
    const aside = `${file}.corrupt-${Date.now()}`;
    logger.error({ file, movedTo: aside, err: errorMessage(err) }, 'memory store snapshot is corrupt; starting empty');
    try {
      await rename(file, aside);
    } catch (renameErr) {
      logger.error({ file, err: errorMessage(renameErr) }, 'could not move the corrupt snapshot aside');
    }
    return data;
  }

  let skipped = 0;
  for (const item of parsed.entries) {
    const entry = toEntry(item);
    if (entry === undefined || (entry.expiresAt !== undefined && entry.expiresAt <= now)) {
      skipped += 1;
      continue;
    }
    data.set(item.key, entry);
  }
  logger.info({ file, keys: data.size, skipped }, 'memory store snapshot loaded');
  return data;
}

const MAX_RETRY_DELAY_MS = 30_000;

/**
 * Writes the snapshot at most `delayMs` after the first change following a write (changes made
 * meanwhile ride along, so a steady stream of writes still reaches disk). Writes are chained, never
 * concurrent, and each one serialises the state as it is when that write starts. A failed write is
 * logged and retried with backoff.
 */
export class SnapshotWriter {
  private dirty = false;
  private closed = false;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly delayMs: number,
    private readonly logger: Logger,
    private readonly serialize: () => string,
  ) {}

  markDirty(): void {
    this.dirty = true;
    this.schedule();
  }

  /** Cancels the timer, writes what is pending and waits for it. Rejects if the final write fails. */
  async close(): Promise<void> {
    this.closed = true;
    this.clearTimer();
    await this.flush();
  }

  private schedule(): void {
    if (this.closed || this.timer !== undefined) return;
    const delay = this.failures === 0 ? this.delayMs : Math.min(MAX_RETRY_DELAY_MS, this.delayMs * 2 ** this.failures);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush().then(
        () => {
          this.failures = 0;
        },
        (err: unknown) => {
          this.failures += 1;
          const details = { file: this.file, err: errorMessage(err), failures: this.failures };
          this.logger.error(details, 'memory store snapshot write failed');
          this.schedule();
        },
      );
    }, delay);
    // A retry after failures must not hold the process open forever; a normal flush may.
    if (this.failures > 0) this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private flush(): Promise<void> {
    const run = async (): Promise<void> => {
      if (!this.dirty) return;
      this.dirty = false;
      const text = this.serialize();
      try {
        await mkdir(dirname(this.file), { recursive: true });
        await writeFileAtomic(this.file, text);
      } catch (err) {
        this.dirty = true;
        throw err;
      }
    };
    const next = this.chain.then(run);
    this.chain = next.catch(() => undefined);
    return next;
  }
}
