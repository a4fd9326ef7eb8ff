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
  private readonly loops = new Map<string, NodeJS.Timeout>();
  private readonly repeatMs: number;
  private readonly maxMs: number;

  constructor(private readonly options: TypingIndicatorsOptions) {
    this.repeatMs = options.repeatMs ?? 4500;
    this.maxMs = options.maxMs ?? 120_000;
  }

  /** `show` has just been called for a status made at `since`; calls it again every repeatMs until the chain ends. */
  repeat(chainId: string, since: string, show: () => Promise<void>): void {
    if (this.loops.has(chainId)) return;
    const startedAt = Date.parse(since);
    const tick = async (): Promise<void> => {
      const ended = await this.options.store.get(endKey(chainId)).catch(() => null);
      const current = this.loops.get(chainId);
      if (current === undefined) return;
      if (Date.now() - startedAt > this.maxMs || (ended !== null && Number(ended) >= startedAt)) {
        this.loops.delete(chainId);
        return;
      }
      await show();
      if (this.loops.get(chainId) === current) this.loops.set(chainId, later(tick, this.repeatMs));
    };
    this.loops.set(chainId, later(tick, this.repeatMs));
  }

  /** The chain answered or waits for the person (at `at`): no more typing for it, here or in other senders. */
  async end(chainId: string, at: string): Promise<void> {
    clearTimeout(this.loops.get(chainId));
    this.loops.delete(chainId);
    await this.options.store.set(endKey(chainId), String(Date.parse(at)), { ttlMs: this.maxMs + this.repeatMs });
  }

  close(): void {
    for (const timer of this.loops.values()) clearTimeout(timer);
    this.loops.clear();
  }
}

function endKey(chainId: string): string {
  return `tg:typing-end:${chainId}`;
}

function later(tick: () => Promise<void>, ms: number): NodeJS.Timeout {
  const timer = setTimeout(() => void tick(), ms);
  timer.unref();
  return timer;
}
