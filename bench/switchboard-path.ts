import { randomUUID } from 'node:crypto';
import { Pool } from 'undici';
import { startApp, type RunningApp } from '../src/app.ts';
import { loadConfig } from '../src/core/config.ts';
import { createLogger } from '../src/core/logger.ts';
import type { RoleName } from '../src/roles.ts';
import { TASK_EVENTS_CHANNEL, type TaskNotice } from '../src/platforms/http/tasks.ts';
import type { Store } from '../src/store/store.ts';
import { summarise, type Throughput } from './stats.ts';

export const BENCH_KEY = 'bench-secret-123456';

export interface BenchEnv {
  readonly amqpUrl: string;
  readonly redisUrl: string;
  readonly namespace: string;
  readonly llmBaseUrl?: string;
}

export function benchEnv(env: BenchEnv, extra: Record<string, string> = {}): Record<string, string> {
  return {
    AMQP_URL: env.amqpUrl,
    REDIS_URL: env.redisUrl,
    BUS_NAMESPACE: env.namespace,
    REDIS_PREFIX: `${env.namespace}:`,
    API_KEYS: `bench:${BENCH_KEY}`,
    HTTP_PORT: '0',
    LOG_LEVEL: 'warn',
    ...(env.llmBaseUrl ? { OPENAI_API_KEY: 'sk-bench', OPENAI_BASE_URL: env.llmBaseUrl, LLM_MAX_RETRIES: '0' } : {}),
    ...extra,
  };
}

export async function startBenchApp(env: Record<string, string>, roles: RoleName[]): Promise<RunningApp> {
  const config = loadConfig(env);
  return startApp({ config, roles, logger: createLogger(config.logLevel) });
}

/**
 * Resolves each task's completion when the http sender records its final event (the task-events
 * channel). The notices are our own, so the sink reads them with JSON.parse only: the load
 * generator's CPU is not part of what is measured, yet it shares the machine's two cores.
 */
export async function taskCompletions(store: Store): Promise<{ waitFor(taskId: string): Promise<number>; close(): Promise<void> }> {
  const waiting = new Map<string, (at: number) => void>();
  const early = new Map<string, number>();
  const stop = await store.listen(TASK_EVENTS_CHANNEL, (message) => {
    const notice = JSON.parse(message) as Pick<TaskNotice, 'taskId' | 'status'>;
    if (notice.status !== 'done' && notice.status !== 'failed') return;
    const at = performance.now();
    const resolve = waiting.get(notice.taskId);
    if (resolve) {
      waiting.delete(notice.taskId);
      resolve(at);
    } else early.set(notice.taskId, at);
  });
  return {
    waitFor(taskId) {
      const at = early.get(taskId);
      if (at !== undefined) {
        early.delete(taskId);
        return Promise.resolve(at);
      }
      return new Promise((resolve) => waiting.set(taskId, resolve));
    },
    close: stop,
  };
}

/**
 * End-to-end tasks through api → RabbitMQ → worker → RabbitMQ → sender:http: from the POST to the
 * moment the http sender has recorded the final reply on the task (what GET would now return).
 */
export async function driveTasks(
  apiUrl: string,
  store: Store,
  tasks: readonly { text: string; conversation: string }[],
  concurrency: number,
): Promise<Throughput & { latenciesMs: number[] }> {
  const sink = await taskCompletions(store);
  // undici's request API on keep-alive connections: the cheapest well-kept client (fetch, through
  // web streams, and node:http each cost the generator more CPU than the API it drives).
  const pool = new Pool(apiUrl, { connections: concurrency });
  const headers = { authorization: `Bearer ${BENCH_KEY}`, 'content-type': 'application/json' };
  const latencies: number[] = [];
  const completions: Promise<void>[] = [];
  const started = performance.now();
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < tasks.length) {
          const task = tasks[next++];
          if (!task) break;
          const sentAt = performance.now();
          const response = await pool.request({ path: '/v1/tasks', method: 'POST', headers, body: JSON.stringify(task) });
          const text = await response.body.text();
          if (response.statusCode !== 202) throw new Error(`POST answered ${response.statusCode}: ${text}`);
          const { taskId } = JSON.parse(text) as { taskId: string };
          completions.push(sink.waitFor(taskId).then((at) => void latencies.push(at - sentAt)));
        }
      }),
    );
    await Promise.all(completions);
  } finally {
    await pool.close();
    await sink.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return { ...summarise(latencies, seconds), latenciesMs: latencies };
}

export function uniqueNamespace(): string {
  return `bench-${randomUUID().slice(0, 8)}`;
}
