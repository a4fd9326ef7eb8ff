import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { startApp, type RunningApp } from '../../src/app.ts';
import { loadConfig, type Config } from '../../src/core/config.ts';
import { createLogger } from '../../src/core/logger.ts';
import { ROLE_NAMES, type RoleName } from '../../src/roles.ts';
import { deleteAmqpNamespace, deleteRedisPrefix } from './cleanup.ts';
import { amqpUrl, redisUrl, uniqueName } from './services.ts';

/** Where a suite runs: the embedded bus and store, or RabbitMQ and Redis. */
export type Mode = 'embedded' | 'distributed';
export const MODES: readonly Mode[] = ['embedded', 'distributed'];

export const CLIENTS = {
  alice: 'alice-secret-123',
  bob: 'bob-secret-456',
  ops: 'ops-secret-789',
} as const;
export type ClientName = keyof typeof CLIENTS;

export interface Harness {
  readonly url: string;
  readonly app: RunningApp;
  readonly dataDir: string;
  /** Every log line the app wrote, as text. */
  readonly logs: string[];
  request(client: ClientName | null, method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  /** POSTs a task and waits until it is done or failed; returns its final view. */
  run(client: ClientName, body: Record<string, unknown>): Promise<TaskViewJson>;
  waitForTask(client: ClientName, taskId: string, timeoutMs?: number): Promise<TaskViewJson>;
  /** Polls a task until it has this status (or is done/failed, which ends the wait too). */
  waitForStatus(client: ClientName, taskId: string, status: string, timeoutMs?: number): Promise<TaskViewJson>;
  /** POSTs a task and returns its id at once. */
  post(client: ClientName, body: Record<string, unknown>): Promise<string>;
  stop(): Promise<void>;
  /** Stops and starts again on the same data directory. */
  restart(): Promise<Harness>;
}

export interface TaskViewJson {
  taskId: string;
  chainId: string;
  status: string;
  replies: { text: string; at: string }[];
  error?: string;
  confirmation?: { formId: string; expiresAt: string; tools: { name: string; args: unknown }[] };
}

export interface HarnessOptions {
  readonly mode?: Mode;
  readonly env?: Record<string, string>;
  readonly dataDir?: string;
  /** RabbitMQ namespace and Redis prefix (distributed mode); fresh per harness unless given. */
  readonly namespace?: string;
  /** Roles of this process (default: all). */
  readonly roles?: readonly RoleName[];
  /** The clock of the daily quotas. */
  readonly clock?: () => Date;
}

/** The environment that points a process at RabbitMQ and Redis under a namespace of its own. */
export async function distributedEnv(namespace: string): Promise<Record<string, string>> {
  return { AMQP_URL: await amqpUrl(), REDIS_URL: await redisUrl(), BUS_NAMESPACE: namespace, REDIS_PREFIX: `${namespace}:` };
}

/** Removes what a namespace left on RabbitMQ and Redis. */
export async function cleanupNamespace(namespace: string, shards = 8): Promise<void> {
  await deleteAmqpNamespace(await amqpUrl(), namespace, shards);
  await deleteRedisPrefix(await redisUrl(), `${namespace}:`);
}

/** Starts every role in one process on a fresh data directory, with API clients alice, bob and ops (admin). */
export async function startSwitchboard(options: HarnessOptions = {}): Promise<Harness> {
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'switchboard-test-')));
  const mode = options.mode ?? 'embedded';
  const namespace = options.namespace ?? uniqueName('sb');
  const env: Record<string, string> = {
    ...(mode === 'distributed' ? await distributedEnv(namespace) : {}),
    HTTP_PORT: '0',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'debug',
    API_KEYS: Object.entries(CLIENTS)
      .map(([name, secret]) => `${name}:${secret}`)
      .join(','),
    ADMIN_USERS: 'http:ops',
    LLM_MAX_RETRIES: '0',
    SHUTDOWN_TIMEOUT_MS: '2000',
    ...options.env,
  };
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(chunk.toString('utf8'));
      done();
    },
  });
  let config: Config;
  let app: RunningApp;
  try {
    config = loadConfig(env);
    app = await startApp({
      config,
      roles: options.roles ?? [...ROLE_NAMES],
      logger: createLogger(config.logLevel, sink),
      callbackMinDelayMs: 20,
      ...(options.clock ? { clock: options.clock } : {}),
    });
  } catch (err) {
    // A start that fails (as some tests expect) leaves no data directory behind.
    if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  const url = app.url ?? '';

  const request: Harness['request'] = (client, method, route, body, headers = {}) =>
    fetch(`${url}${route}`, {
      method,
      headers: {
        ...(client ? { authorization: `Bearer ${CLIENTS[client]}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  const waitForStatus: Harness['waitForStatus'] = async (client, taskId, status, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const response = await request(client, 'GET', `/v1/tasks/${taskId}`);
      const view = (await response.json()) as TaskViewJson;
      if (view.status === status || view.status === 'done' || view.status === 'failed') return view;
      if (Date.now() > deadline) throw new Error(`task ${taskId} still ${view.status} after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const waitForTask: Harness['waitForTask'] = (client, taskId, timeoutMs) => waitForStatus(client, taskId, 'done', timeoutMs);
  const post: Harness['post'] = async (client, body) => {
    const response = await request(client, 'POST', '/v1/tasks', body);
    if (response.status !== 202) throw new Error(`POST /v1/tasks answered ${response.status}: ${await response.text()}`);
    return ((await response.json()) as { taskId: string }).taskId;
  };

  const harness: Harness = {
    url,
    app,
    dataDir,
    logs,
    request,
    waitForTask,
    waitForStatus,
    post,
    async run(client, body) {
      return waitForTask(client, await post(client, body));
    },
    async stop() {
      await app.stop();
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
      if (mode === 'distributed' && !options.namespace) await cleanupNamespace(namespace, config.bus.shards);
    },
    async restart() {
      await app.stop();
      const next = await startSwitchboard({ ...options, dataDir, namespace });
      // The restarted harness owns the data: clean up what this one created when it stops.
      return {
        ...next,
        async stop() {
          await next.stop();
          if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
          if (mode === 'distributed' && !options.namespace) await cleanupNamespace(namespace, config.bus.shards);
        },
      };
    },
  };
  return harness;
}
