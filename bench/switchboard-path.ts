import { Worker } from 'node:worker_threads';
import { FakeOpenAi } from '../test/fakes/fake-openai.ts';
import { startApp, type RunningApp } from '../src/app.ts';
import { loadConfig } from '../src/core/config.ts';
import { createLogger } from '../src/core/logger.ts';
import type { RoleName } from '../src/roles.ts';
import type { BenchTask, LoadJob, LoadResult } from './load-generator.ts';
import { freshNamespace, removeNamespace } from './namespaces.ts';
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
 * End-to-end tasks through api → RabbitMQ → worker → RabbitMQ → sender:http: from the POST to the
 * moment the http sender has recorded the final reply on the task (what GET would now return).
 * The clients run on a worker thread (bench/load-generator.ts); `env` says where the store is.
 * Only `tasks` are measured, after the `warmup` ones.
 */
export async function driveTasks(
  apiUrl: string,
  env: Pick<BenchEnv, 'redisUrl' | 'namespace'>,
  load: { readonly warmup?: readonly BenchTask[]; readonly tasks: readonly BenchTask[]; readonly concurrency: number },
): Promise<Throughput> {
  const job: LoadJob = { apiUrl, apiKey: BENCH_KEY, redisUrl: env.redisUrl, keyPrefix: `${env.namespace}:`, warmup: [], ...load };
  // The thread runs TypeScript like this process: tsx is registered in it before the module loads.
  const entry = new URL('./load-generator.ts', import.meta.url).href;
  const worker = new Worker(`import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(entry)}); });`, {
    eval: true,
    workerData: job,
  });
  try {
    const reply = await new Promise<{ ok: true; result: LoadResult } | { ok: false; error: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the load generator exited with ${code} before answering`)));
    });
    if (!reply.ok) throw new Error(`load generator failed: ${reply.error}`);
    return summarise(reply.result.latenciesMs, reply.result.seconds);
  } finally {
    await worker.terminate();
  }
}

export interface FastPathLoad {
  readonly amqpUrl: string;
  readonly redisUrl: string;
  /** Measured tasks, after `warmup` unmeasured ones, over 200 conversations. */
  readonly count: number;
  readonly warmup: number;
  /** Requests in flight. */
  readonly concurrency: number;
}

/**
 * Sends `load` to the API at `apiUrl` over 200 conversations, the i-th task saying `text(i)`, and
 * measures the tasks after the warm-up.
 */
export function driveLoad(apiUrl: string, namespace: string, load: FastPathLoad, text: (i: number) => string): Promise<Throughput> {
  const tasks = Array.from({ length: load.warmup + load.count }, (_, i) => ({ text: text(i), conversation: `c${i % 200}` }));
  return driveTasks(
    apiUrl,
    { redisUrl: load.redisUrl, namespace },
    { warmup: tasks.slice(0, load.warmup), tasks: tasks.slice(load.warmup), concurrency: load.concurrency },
  );
}

/**
 * (a) or (b): api, worker and sender:http in this process, in a namespace of their own, driven
 * with `/help` (the command path) or with chat messages a fake LLM answers at once.
 */
export async function measureFastPath(kind: 'command' | 'llm', load: FastPathLoad): Promise<Throughput> {
  const namespace = freshNamespace();
  let llm: FakeOpenAi | undefined;
  let app: RunningApp | undefined;
  try {
    llm = kind === 'llm' ? await FakeOpenAi.start() : undefined;
    app = await startBenchApp(benchEnv({ amqpUrl: load.amqpUrl, redisUrl: load.redisUrl, namespace, llmBaseUrl: llm?.baseURL }), [
      'api',
      'worker',
      'sender:http',
    ]);
    return await driveLoad(app.url ?? '', namespace, load, kind === 'command' ? () => '/help' : (i) => `question ${i}`);
  } finally {
    await app?.stop();
    await llm?.close();
    await removeNamespace(namespace);
  }
}
