import type { Store } from '../../store/store.ts';

export interface TypingIndicatorsOptions {
  readonly store: Store;
  /** Telegram shows "typing" for about 5 s: send it again this often (default 4.5 s). */
  readonly repeatMs?: number;
  /** Give up after this long even without an end (a reply delivered elsewhere that was lost, a stuck chain); default 2 min. */
  readonly maxMs?: number;
}

/**
 * "typing…" for as long as a chain runs. Started by the chain's `running` status, repeated until the
 * chain answers or waits for the person. The end is kept in the store (as the time of the envelope
 * that ended it), so a reply delivered by another sender process stops this one's repetition too;
 * a chain that runs again later (after /confirm) starts a new indicator, as its status is newer.
 */
export class TypingIndicators {
  /** One loop per chain; a loop owns its entry, so a replaced loop's late tick stops instead of going on. */
  private readonly loops = new Map<string, { timer?: NodeJS.Timeout }>();
  private readonly repeatMs: number;
  private readonly maxMs: number;

  constructor(private readonly options: TypingIndicatorsOptions) {
    this.repeatMs = options.repeatMs ?? 4500;
    this.maxMs = options.maxMs ?? 120_000;
  }

  /**
   * For a `running` status made at `since`: calls `show` now and every repeatMs until the chain ends,
   * unless it has ended already (its answer overtook the status on the way here). Returns what the
   * first `show` returned; undefined when the chain had ended.
   */
  async start<T>(chainId: string, since: string, show: () => Promise<T>): Promise<T | undefined> {
    const startedAt = Date.parse(since);
    if (await this.ended(chainId, startedAt)) return undefined;
    const first = await show();
    if (this.loops.has(chainId)) return first;
    const loop: { timer?: NodeJS.Timeout } = {};
    const tick = async (): Promise<void> => {
      if (this.loops.get(chainId) !== loop) return;
      if (Date.now() - startedAt > this.maxMs || (await this.ended(chainId, startedAt))) {
        if (this.loops.get(chainId) === loop) this.loops.delete(chainId);
        return;
      }
      if (this.loops.get(chainId) !== loop) return;
      await show();
      if (this.loops.get(chainId) === loop) loop.timer = later(tick, this.repeatMs);
    };
    this.loops.set(chainId, loop);
    loop.timer = later(tick, this.repeatMs);
    return first;
  }

  /** The chain answered or waits for the person (at `at`): no more typing for it, here or in other senders. */
  async end(chainId: string, at: string): Promise<void> {
    clearTimeout(this.loops.get(chainId)?.timer);
    this.loops.delete(chainId);
    await this.options.store.set(endKey(chainId), String(Date.parse(at)), { ttlMs: this.maxMs + this.repeatMs });
  }

  close(): void {
    for (const loop of this.loops.values()) clearTimeout(loop.timer);
    this.loops.clear();
  }

  /** Whether the chain ended at or after `since` (a store that cannot answer counts as not ended). */
  private async ended(chainId: string, since: number): Promise<boolean> {
    const ended = await this.options.store.get(endKey(chainId)).catch(() => null);
    return ended !== null && Number(ended) >= since;
  }
}

function endKey(chainId: string): string {
  return `tg:typing-end:${chainId}`;
}

function later(tick: () => Promise<void>, ms: number): NodeJS.Timeout {
  // A tick that fails (the store or Telegram away) just ends the repetition.
  const timer = setTimeout(() => void tick().catch(() => undefined), ms);
  timer.unref();
  return timer;
}
