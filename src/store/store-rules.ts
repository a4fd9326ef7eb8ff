import { MAX_QUOTA_COUNTERS, type QuotaCounter } from './store.ts';

/** Redis' rules for values (integers, TTLs, list indexes), which every Store adapter enforces alike. */

export const WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value';

export function checkInteger(value: number, what: string): void {
  if (!Number.isSafeInteger(value)) throw new Error(`ERR ${what} is not an integer or out of range`);
}

/** A sorted-set score (a time in ms): finite, unlike Redis, which would take inf. */
export function checkScore(value: number, what: string): void {
  if (!Number.isFinite(value)) throw new Error(`ERR ${what} is not a finite number`);
}

/** A count of members to return: Redis reads a negative count as "all", which we refuse. */
export function checkLimit(limit: number): void {
  checkInteger(limit, 'limit');
  if (limit < 0) throw new Error('ERR limit must not be negative');
}

export function checkTtl(ttlMs: number | undefined): void {
  if (ttlMs === undefined) return;
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new Error(`ERR invalid expire time: ${ttlMs}`);
}

/** Parses a stored counter the way Redis does: a canonical integer, else an error. */
export function parseCounter(value: string, what: string): number {
  const n = Number(value);
  if (!/^(0|-?[1-9]\d*)$/.test(value) || !Number.isSafeInteger(n)) {
    throw new Error(`ERR ${what} is not an integer or out of range`);
  }
  return n;
}

export function addCounter(current: number, by: number): number {
  const sum = current + by;
  if (!Number.isSafeInteger(sum)) throw new Error('ERR increment or decrement would overflow');
  return sum;
}

/** Turns Redis' inclusive, possibly negative indexes into a slice [from, to); empty when from >= to. */
export function listRange(length: number, start: number, stop: number): [number, number] {
  checkInteger(start, 'value');
  checkInteger(stop, 'value');
  const from = Math.max(0, start < 0 ? length + start : start);
  const last = Math.min(length - 1, stop < 0 ? length + stop : stop);
  return from > last ? [0, 0] : [from, last + 1];
}

/** The counters of one quotaTake: few, distinct, with non-negative integer limits and costs. */
export function checkQuotaCounters(counters: readonly QuotaCounter[]): void {
  if (counters.length > MAX_QUOTA_COUNTERS) throw new Error(`ERR quotaTake takes at most ${MAX_QUOTA_COUNTERS} counters`);
  for (const { limit, cost } of counters) {
    checkLimit(limit);
    checkInteger(cost, 'cost');
    if (cost < 0) throw new Error('ERR cost must not be negative');
  }
  if (new Set(counters.map((counter) => counter.key)).size !== counters.length) {
    throw new Error('ERR quotaTake counters must have distinct keys');
  }
}
