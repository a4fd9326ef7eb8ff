import type { FastifyInstance } from 'fastify';
import { adapterMode, openAdapters } from './adapters.ts';
import { makeWorker, openAgentServices, type AgentServices } from './agent/agent-services.ts';
import { fetchFeed } from './platforms/rss/feed-fetcher.ts';
import { RssPoller } from './platforms/rss/poller.ts';
import { TelegramReceiver } from './platforms/telegram/telegram-receiver.ts';
import { TelegramSender } from './platforms/telegram/telegram-sender.ts';
import { defaultWebhookSecret, telegramWebhookRoute } from './platforms/telegram/telegram-webhook.ts';
import { Subscriptions, type FeedSource } from './platforms/rss/subscriptions.ts';
import type { QuotaClock } from './agent/quotas.ts';
import type { Bus } from './bus/bus.ts';
import { DeadLetters } from './bus/dead-letters.ts';
import { EnvelopeBus } from './bus/envelope-bus.ts';
import { InstrumentedBus } from './bus/instrumented-bus.ts';
import { SENDER_PLATFORMS, switchboardTopology } from './bus/topology.ts';
import type { Config } from './core/config.ts';
import { ConfigError } from './core/errors.ts';
import type { Logger } from './core/logger.ts';
import { Metrics } from './core/metrics.ts';
import { serveMetrics } from './core/metrics-server.ts';
import { buildApi } from './platforms/http/api.ts';
import { HttpSender } from './platforms/http/sender.ts';
import { TaskEventHub } from './platforms/http/task-event-hub.ts';
import { TaskStore } from './platforms/http/tasks.ts';
import { ROLE_NAMES, type RoleName } from './roles.ts';
import type { Store } from './store/store.ts';

export interface AppOptions {
  readonly config: Config;
  readonly roles: readonly RoleName[];
  readonly logger: Logger;
  /** The clock of the daily quotas (tests move it across midnight). */
  readonly clock?: QuotaClock;
  /** First wait between callback attempts (tests shorten it). */
  readonly callbackMinDelayMs?: number;
}

export interface RunningApp {
  readonly mode: 'embedded' | 'distributed';
  /** The API's base URL when the api role runs. */
  readonly url: string | undefined;
  readonly bus: Bus;
  readonly store: Store;
  readonly metrics: Metrics;
  /** Stop taking work, finish or hand back what is in flight, flush the store. */
  stop(): Promise<void>;
}

interface Stoppable {
  stop(): Promise<void>;
  abort?(): Promise<void>;
}

/** The composition root: opens the adapters and starts the roles. Nothing else knows which adapters run. */
export async function startApp(options: AppOptions): Promise<RunningApp> {
  const { config, roles, logger } = options;
  if (adapterMode(config) === 'embedded' && roles.length !== ROLE_NAMES.length) {
    throw new ConfigError(
      `--role ${roles.join(',')}: without AMQP_URL and REDIS_URL every role runs in one process on the embedded bus and store; use --role all`,
    );
  }
  const adapters = await openAdapters(config, logger);
  const metrics = new Metrics();
  const bus = new InstrumentedBus(adapters.bus, metrics);
  const { store } = adapters;
  const envelopes = new EnvelopeBus(bus, config.bus.shards);
  const tasks = new TaskStore(store, config.limits.taskTtlMs);
  const deadLetters = new DeadLetters(bus, store, logger.child({ component: 'dead-letters' }), { max: config.bus.deadLettersMax, metrics });
  const fetch: FeedSource = (url, validators) => fetchFeed(url, validators, config.rss);
  const subscriptions = new Subscriptions({
    store,
    bus: envelopes,
    fetch,
    maxPerChat: config.rss.maxSubscriptions,
    initialItems: config.rss.initialItems,
    intervalMs: config.rss.intervalMs,
  });
  const running: Stoppable[] = [];
  let api: FastifyInstance | undefined;
  let metricsServer: { close(): Promise<void> } | undefined;

  try {
    await bus.declare(switchboardTopology(config.bus.shards, SENDER_PLATFORMS));
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
    const agent =
      roles.includes('worker') || roles.includes('api') || roles.includes('receiver:telegram')
        ? await openAgentServices({
            config,
            store,
            bus: envelopes,
            logger,
            subscriptions,
            ...(options.clock ? { clock: options.clock } : {}),
          })
        : undefined;
    if (agent && roles.includes('worker')) {
      const worker = makeWorker(agent, {
        config,
        store,
        bus: envelopes,
        logger: logger.child({ role: 'worker' }),
        metrics,
      });
      await worker.start();
      running.push(worker);
      agent.timers.start();
      running.push(agent.timers);
      await deadLetters.start();
      running.push(deadLetters);
    }
    if (roles.includes('sender:telegram')) {
      const token = telegramToken(options, 'sender:telegram');
      if (token !== undefined) {
        const sender = new TelegramSender({
          bus: envelopes,
          store,
          token,
          apiRoot: config.telegram.apiRoot,
          maxChunks: config.telegram.maxChunks,
          prefetch: config.bus.prefetch,
          logger: logger.child({ role: 'sender:telegram' }),
        });
        await sender.start();
        running.push(sender);
      }
    }
    const telegramReceiver =
      agent && roles.includes('receiver:telegram') ? makeTelegramReceiver(options, agent, envelopes, store, metrics) : undefined;
    if (roles.includes('receiver:rss')) {
      const poller = new RssPoller({
        store,
        bus: envelopes,
        subscriptions,
        fetch,
        intervalMs: config.rss.intervalMs,
        maxFailures: config.rss.maxFailures,
        fetchTimeoutMs: config.rss.timeoutMs,
        logger: logger.child({ role: 'receiver:rss' }),
      });
      poller.start();
      running.push(poller);
    }
    if (agent && roles.includes('api')) {
      const hub = new TaskEventHub(store, logger.child({ component: 'task-events' }));
      running.push(hub);
      api = await buildApi({
        bus: envelopes,
        store,
        tasks,
        hub,
        deadLetters,
        agent,
        subscriptions,
        metrics,
        logger,
        extraRoutes: telegramReceiver?.route ? [telegramReceiver.route] : [],
        config: {
          apiKeys: config.apiKeys,
          adminUsers: config.adminUsers,
          messageMaxChars: config.limits.messageMaxChars,
          taskTtlMs: config.limits.taskTtlMs,
        },
      });
      await api.listen({ host: config.http.host, port: config.http.port });
    } else if (config.metricsPort !== undefined) {
      metricsServer = await serveMetrics(metrics, config.http.host, config.metricsPort);
    }
    // Last: updates flow in only when everything that handles them runs (and the webhook route listens).
    if (telegramReceiver) {
      await telegramReceiver.receiver.start();
      running.push(telegramReceiver.receiver);
    }
  } catch (err) {
    await Promise.allSettled([api?.close(), metricsServer?.close(), ...running.map((r) => r.stop())]);
    await Promise.allSettled([bus.close(), store.close()]);
    throw err;
  }

  const address = api?.server.address();
  const url = address && typeof address === 'object' ? `http://${formatHost(address.address)}:${address.port}` : undefined;
  logger.info({ roles, url, mode: adapters.mode }, 'switchboard started');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      logger.info('stopping: no new work; finishing what is in flight');
      await api?.close();
      await metricsServer?.close();
      await finishOrHandBack(running, config.shutdownTimeoutMs, logger);
      await bus.close();
      await store.close();
      logger.info('stopped');
    })();
    return stopping;
  };
  return { mode: adapters.mode, url, bus, store, metrics, stop };
}

/**
 * The `receiver:telegram` role, when it has a token (under `--role all` it is skipped without one),
 * and in webhook mode the api route Telegram posts to (the api must run in the same process).
 */
function makeTelegramReceiver(
  { config, roles, logger }: AppOptions,
  agent: AgentServices,
  bus: EnvelopeBus,
  store: Store,
  metrics: Metrics,
): { receiver: TelegramReceiver; route?: (app: FastifyInstance) => void } | undefined {
  const { mode, webhookUrl } = config.telegram;
  const token = telegramToken({ config, roles }, 'receiver:telegram');
  if (token === undefined) return undefined;
  const webhookSecret = config.telegram.webhookSecret ?? defaultWebhookSecret(token);
  let path: string | undefined;
  if (mode === 'webhook') {
    if (webhookUrl === undefined) throw new ConfigError('TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_URL');
    if (!roles.includes('api'))
      throw new ConfigError('TELEGRAM_MODE=webhook: the api serves the webhook, so run receiver:telegram with the api role');
    path = new URL(webhookUrl).pathname;
    if (path === '/' || path.startsWith('/v1/'))
      throw new ConfigError('TELEGRAM_WEBHOOK_URL: give it a path of its own, such as /telegram/webhook');
  }
  const caller = (chatType: 'private' | 'group', isAdmin: boolean) =>
    ({ userId: null, address: 'telegram:0', platform: 'telegram', chatType, isAdmin, conversation: '' }) as const;
  const receiver = new TelegramReceiver({
    bus,
    store,
    token,
    apiRoot: config.telegram.apiRoot,
    mode,
    ...(webhookUrl !== undefined ? { webhookUrl } : {}),
    webhookSecret,
    maxUpdateAgeMs: config.telegram.maxUpdateAgeMs,
    commands: (chatType, isAdmin) =>
      agent.registry
        .commandsFor(caller(chatType, isAdmin))
        .map(({ command }) => ({ name: command.name, description: command.description })),
    adminUsers: config.adminUsers,
    logger: logger.child({ role: 'receiver:telegram' }),
    metrics,
  });
  if (path === undefined) return { receiver };
  return { receiver, route: telegramWebhookRoute({ path, secret: webhookSecret, receive: (update) => receiver.receive(update) }) };
}

/** The bot token a Telegram role needs: without one it is skipped under `--role all`, and refuses to start when named. */
function telegramToken({ config, roles }: Pick<AppOptions, 'config' | 'roles'>, role: RoleName): string | undefined {
  const { token } = config.telegram;
  if (token === undefined && roles.length !== ROLE_NAMES.length) throw new ConfigError(`--role ${role} needs TELEGRAM_BOT_TOKEN`);
  return token;
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
