/** Latency percentiles in milliseconds. */
export function percentile(sortedMs: readonly number[], p: number): number {
  if (sortedMs.length === 0) return 0;
  const index = Math.min(sortedMs.length - 1, Math.max(0, Math.ceil((p / 100) * sortedMs.length) - 1));
  return Math.round((sortedMs[index] ?? 0) * 100) / 100;
}

export interface Throughput {
  readonly count: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export function summarise(latenciesMs: number[], seconds: number): Throughput {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return {
    count: latenciesMs.length,
    seconds: Math.round(seconds * 1000) / 1000,
    perSecond: Math.round((latenciesMs.length / seconds) * 10) / 10,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
  };
}
