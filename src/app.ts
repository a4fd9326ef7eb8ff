import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { builtinCommands } from './agent/commands/index.ts';
import { CommandRegistry } from './agent/command-registry.ts';
import { ConversationHistory } from './agent/history.ts';
import type { LlmClient } from './agent/llm.ts';
import { OpenAiLlm } from './agent/openai-llm.ts';
import { AgentWorker } from './agent/worker.ts';
import type { Bus } from './bus/bus.ts';
import { EnvelopeBus } from './bus/envelope-bus.ts';
import { MemoryBus } from './bus/memory-bus.ts';
import { switchboardTopology } from './bus/topology.ts';
import type { Config } from './core/config.ts';
import { ConfigError } from './core/errors.ts';
import type { Logger } from './core/logger.ts';
import { buildApi } from './platforms/http/api.ts';
import { HttpSender } from './platforms/http/sender.ts';
import { TaskStore } from './platforms/http/tasks.ts';
import { ROLE_NAMES, type RoleName } from './roles.ts';
import { MemoryStore } from './store/memory-store.ts';
import type { Store } from './store/store.ts';

/** Platforms that have a sender; each gets an `out.<platform>` queue. */
const SENDER_PLATFORMS = ['http'];

export interface AppOptions {
  readonly config: Config;
  readonly roles: readonly RoleName[];
  readonly logger: Logger;
  /** Replaces the LLM chosen from the config (tests, benchmarks). */
  readonly llm?: LlmClient;
  /** First wait between callback attempts (tests shorten it). */
  readonly callbackMinDelayMs?: number;
}

export interface RunningApp {
  /** The API's base URL when the api role runs. */
  readonly url: string | undefined;
  readonly bus: Bus;
  readonly store: Store;
  /** Stop taking work, finish or hand back what is in flight, flush the store. */
  stop(): Promise<void>;
}

interface Stoppable {
  stop(): Promise<void>;
  abort?(): Promise<void>;
}

/** The composition root: picks the adapters and starts the roles. Nothing else knows which adapters run. */
export async function startApp(options: AppOptions): Promise<RunningApp> {
  const { config, roles, logger } = options;
  const { bus, store } = await openAdapters(config, roles, logger);
  const envelopes = new EnvelopeBus(bus, config.bus.shards);
  await bus.declare(switchboardTopology(config.bus.shards, SENDER_PLATFORMS));
  const tasks = new TaskStore(store, config.limits.taskTtlMs);
  const running: Stoppable[] = [];
  let api: FastifyInstance | undefined;

  try {
    if (roles.includes('sender:http')) {
      const sender = new HttpSender({
        bus: envelopes,
        store,
        tasks,
        apiKeys: config.apiKeys,
        callbackAttempts: config.limits.callbackMaxAttempts,
        callbackMinDelayMs: options.callbackMinDelayMs,
        prefetch: config.bus.prefetch,
        ttlMs: config.limits.taskTtlMs,
        logger: logger.child({ role: 'sender:http' }),
      });
      await sender.start();
      running.push(sender);
    }
    if (roles.includes('worker')) {
      const worker = new AgentWorker({
        bus: envelopes,
        store,
        llm: options.llm ?? makeLlm(config),
        commands: new CommandRegistry().register(...builtinCommands),
        history: new ConversationHistory(store, config.limits.historyMaxTurns),
        systemPrompt: config.llm.systemPrompt,
        adminUsers: config.adminUsers,
        shards: config.bus.shards,
        prefetch: config.bus.prefetch,
        logger: logger.child({ role: 'worker' }),
      });
      await worker.start();
      running.push(worker);
    }
    if (roles.includes('api')) {
      api = await buildApi({
        bus: envelopes,
        store,
        tasks,
        logger,
        config: {
          apiKeys: config.apiKeys,
          adminUsers: config.adminUsers,
          messageMaxChars: config.limits.messageMaxChars,
          taskTtlMs: config.limits.taskTtlMs,
        },
      });
      await api.listen({ host: config.http.host, port: config.http.port });
    }
  } catch (err) {
    await Promise.allSettled([api?.close(), ...running.map((r) => r.stop())]);
    await Promise.allSettled([bus.close(), store.close()]);
    throw err;
  }

  const address = api?.server.address();
  const url = address && typeof address === 'object' ? `http://${formatHost(address.address)}:${address.port}` : undefined;
  logger.info({ roles, url, mode: config.amqpUrl ? 'distributed' : 'embedded' }, 'switchboard started');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      logger.info('stopping: no new work; finishing what is in flight');
      await api?.close();
      await finishOrHandBack(running, config.shutdownTimeoutMs, logger);
      await bus.close();
      await store.close();
      logger.info('stopped');
    })();
    return stopping;
  };
  return { url, bus, store, stop };
}

async function openAdapters(config: Config, roles: readonly RoleName[], logger: Logger): Promise<{ bus: Bus; store: Store }> {
  if (config.amqpUrl || config.redisUrl) {
    throw new ConfigError('AMQP_URL / REDIS_URL: the RabbitMQ and Redis adapters are not built yet; unset both to run embedded');
  }
  if (roles.length !== ROLE_NAMES.length) {
    throw new ConfigError(
      `--role ${roles.join(',')}: without AMQP_URL and REDIS_URL every role runs in one process on the embedded bus and store; use --role all`,
    );
  }
  const bus = await MemoryBus.open({
    logger: logger.child({ component: 'memory-bus' }),
    snapshotFile: path.join(config.dataDir, 'bus.json'),
    deliveryLimit: config.bus.deliveryLimit,
  });
  const store = await MemoryStore.open({
    logger: logger.child({ component: 'memory-store' }),
    snapshotFile: path.join(config.dataDir, 'store.json'),
  });
  return { bus, store };
}

function makeLlm(config: Config): LlmClient | undefined {
  const { apiKey, baseURL, model, timeoutMs, maxRetries } = config.llm;
  return apiKey ? new OpenAiLlm({ apiKey, baseURL, model, timeoutMs, maxRetries }) : undefined;
}

/** Waits for in-flight work up to the shutdown timeout, then hands back what is left (it is redelivered). */
async function finishOrHandBack(running: readonly Stoppable[], timeoutMs: number, logger: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const outcome = await Promise.race([Promise.all(running.map((r) => r.stop())).then(() => 'finished' as const), timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    logger.warn({ timeoutMs }, 'shutdown timeout: handing back unfinished messages for redelivery');
    await Promise.all(running.map((r) => r.abort?.()));
  }
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
