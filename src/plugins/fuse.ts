import type { Store } from '../store/store.ts';

/** Why a tool is switched off. */
export interface BlownFuse {
  readonly at: string;
  readonly reason: string;
}

/**
 * Switches a tool off after `limit` failures in a row (exceptions or timeouts), for every worker at
 * once (the state is in the store), until an admin resets it with /plugin reset.
 */
export class Fuse {
  constructor(
    private readonly store: Store,
    private readonly limit: number,
  ) {}

  private countKey = (tool: string): string => `fuse:count:${tool}`;
  private readonly blownKey = 'fuse:blown';

  async blown(tool: string): Promise<BlownFuse | null> {
    const raw = await this.store.hget(this.blownKey, tool);
    return raw === null ? null : (JSON.parse(raw) as BlownFuse);
  }

  async allBlown(): Promise<Map<string, BlownFuse>> {
    const raw = await this.store.hgetall(this.blownKey);
    return new Map(Object.entries(raw).map(([tool, value]) => [tool, JSON.parse(value) as BlownFuse]));
  }

  /** Counts a failure; true when this one switched the tool off. */
  async failure(tool: string, reason: string): Promise<boolean> {
    const count = await this.store.incr(this.countKey(tool));
    if (count < this.limit) return false;
    const blown: BlownFuse = { at: new Date().toISOString(), reason: `${count} failures in a row; the last: ${reason}` };
    return this.store.hsetnx(this.blownKey, tool, JSON.stringify(blown));
  }

  async success(tool: string): Promise<void> {
    await this.store.del(this.countKey(tool));
  }

  /** Switches tools back on; returns those that were off. */
  async reset(tools: readonly string[]): Promise<string[]> {
    if (tools.length === 0) return [];
    const blown = await this.allBlown();
    await this.store.hdel(this.blownKey, ...tools);
    await this.store.del(...tools.map(this.countKey));
    return tools.filter((t) => blown.has(t));
  }
}
