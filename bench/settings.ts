import type { FastPathLoad } from './switchboard-path.ts';

/**
 * What every bench reads from the environment: where RabbitMQ and Redis are (AMQP_URL / REDIS_URL,
 * default localhost), and the load of raw, (a) and (b): `BENCH_TASKS` measured tasks (raw:
 * messages) after `BENCH_WARMUP` unmeasured ones, so that every side is measured warm, with 64 in
 * flight on both sides.
 */
export const LOAD: FastPathLoad = {
  amqpUrl: process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
  redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  count: Number(process.env.BENCH_TASKS ?? 5000),
  warmup: Number(process.env.BENCH_WARMUP ?? 2000),
  concurrency: 64,
};

export function log(line: string): void {
  process.stdout.write(`${line}\n`);
}
