import type { EnvelopeBus } from '../bus/envelope-bus.ts';
import type { Config } from '../core/config.ts';
import type { Logger } from '../core/logger.ts';
import type { Metrics } from '../core/metrics.ts';
import { SecretBox } from '../core/secret-box.ts';
import { Fuse } from '../plugins/fuse.ts';
import { BUNDLED_PLUGINS_DIR, loadPlugins, selected } from '../plugins/loader.ts';
import { PluginRegistry } from '../plugins/registry.ts';
import { rssPlugin } from '../platforms/rss/rss-plugin.ts';
import type { Subscriptions } from '../platforms/rss/subscriptions.ts';
import type { Store } from '../store/store.ts';
import { ChainLog } from './chain-log.ts';
import { CommandNode } from './command-node.ts';
import { Confirmations } from './confirmations.ts';
import { ConversationHistory } from './history.ts';
import { LlmGateway } from './llm-gateway.ts';
import { LlmNode } from './llm-node.ts';
import { LlmRouter } from './llm-router.ts';
import { Logins } from './logins.ts';
import { loadModelCatalog } from './models.ts';
import { Quotas, type QuotaClock } from './quotas.ts';
import { ScheduledMessages } from './scheduled-messages.ts';
import { systemPlugin } from './system/system-plugin.ts';
import { Timers } from './timers.ts';
import { ToolRunner } from './tool-runner.ts';
import { UserEnv } from './user-env.ts';
import { AgentWorker } from './worker.ts';

/** How long node memos and tool-call records are kept (a redelivery comes long before). */
const MEMO_TTL_MS = 86_400_000;
const TIMER_POLL_MS = 250;
const TIMER_LEASE_MS = 30_000;

/** The agent's parts that the api role needs too (confirmations, chain views). */
export interface AgentServices {
  readonly registry: PluginRegistry;
  readonly confirmations: Confirmations;
  readonly chains: ChainLog;
  readonly timers: Timers;
  readonly runner: ToolRunner;
  readonly fuse: Fuse;
  readonly history: ConversationHistory;
  readonly router: LlmRouter;
  readonly quotas: Quotas;
}

export interface AgentServicesOptions {
  readonly config: Config;
  readonly store: Store;
  readonly bus: EnvelopeBus;
  readonly logger: Logger;
  /** The quotas' clock (tests move it across midnight). */
  readonly clock?: QuotaClock;
  /** Feed subscriptions, served by the built-in rss plugin. */
  readonly subscriptions: Subscriptions;
}

/** Loads the plugins and builds the services around them. */
export async function openAgentServices({
  config,
  store,
  bus,
  logger,
  clock,
  subscriptions,
}: AgentServicesOptions): Promise<AgentServices> {
  const { plugins: settings } = config;
  const loaded = await loadPlugins({
    dirs: [BUNDLED_PLUGINS_DIR, ...settings.dirs],
    enabled: settings.enabled,
    disabled: settings.disabled,
    env: config.env,
    logger: logger.child({ component: 'plugins' }),
  });
  const timers = new Timers({ store, logger: logger.child({ component: 'timers' }), pollMs: TIMER_POLL_MS, leaseMs: TIMER_LEASE_MS });
  const scheduled = new ScheduledMessages(timers, bus);
  const fuse = new Fuse(store, settings.failureLimit);
  const history = new ConversationHistory(store, config.limits.historyMaxTurns);
  const box = config.secretKey ? new SecretBox(config.secretKey) : undefined;
  const userEnv = box ? new UserEnv(store, box) : undefined;
  const router = new LlmRouter({
    catalog: await loadModelCatalog(config),
    logins: new Logins(store, box),
    store,
    publicLimits: {
      ...(config.quotas.publicRequestsPerDay !== undefined ? { requestsPerDay: config.quotas.publicRequestsPerDay } : {}),
      ...(config.quotas.publicTokensPerDay !== undefined ? { tokensPerDay: config.quotas.publicTokensPerDay } : {}),
    },
    timeoutMs: config.llm.timeoutMs,
    maxRetries: config.llm.maxRetries,
    ownDefaultModel: config.llm.model,
  });
  const quotas = new Quotas(store, { timeZone: config.quotas.timeZone, ...(clock ? { now: clock } : {}) });
  let registry: PluginRegistry | undefined;
  const lazyRegistry = (): PluginRegistry => {
    if (!registry) throw new Error('the plugin registry is not built yet');
    return registry;
  };
  // The registry validates edited arguments for confirmations; confirmations serve a built-in command.
  const confirmations = new Confirmations(store, bus, { tool: (name) => lazyRegistry().tool(name) }, timers, settings.confirmTtlMs);
  const system = systemPlugin({ registry: lazyRegistry, history, fuse, userEnv, confirmations, router, quotas });
  const rss = rssPlugin(subscriptions);
  const builtIn = [system, ...(selected(rss.manifest.name, settings) ? [rss] : [])];
  registry = new PluginRegistry([...builtIn, ...loaded.plugins], loaded.failures);
  const runner = new ToolRunner({
    store,
    registry,
    fuse,
    userEnv,
    adminUsers: config.adminUsers,
    scheduler: (node, requestId) => scheduled.for(node, requestId),
    defaultTimeoutMs: settings.toolTimeoutMs,
    resultMaxChars: settings.toolResultMaxChars,
    recordTtlMs: MEMO_TTL_MS,
    logger: logger.child({ component: 'tools' }),
  });
  return { registry, confirmations, chains: new ChainLog(store, config.limits.taskTtlMs), timers, runner, fuse, history, router, quotas };
}

export interface WorkerOptions {
  readonly config: Config;
  readonly store: Store;
  readonly bus: EnvelopeBus;
  readonly logger: Logger;
  readonly metrics?: Metrics;
}

/** The worker role: command and LLM nodes over the agent's services. */
export function makeWorker(services: AgentServices, { config, store, bus, logger, metrics }: WorkerOptions): AgentWorker {
  const { registry, runner, chains, confirmations, fuse, history, router, quotas } = services;
  const { plugins } = config;
  const commands = new CommandNode({ bus, store, registry, runner, chains, adminUsers: config.adminUsers, memoTtlMs: MEMO_TTL_MS });
  const llmNode = new LlmNode({
    bus,
    store,
    llm: new LlmGateway({ router, quotas, store, memoTtlMs: MEMO_TTL_MS, ...(metrics ? { metrics } : {}) }),
    registry,
    runner,
    fuse,
    confirmations,
    history,
    chains,
    systemPrompt: config.llm.systemPrompt,
    adminUsers: config.adminUsers,
    limits: { chainMaxDepth: plugins.chainMaxDepth, toolCallsPerNode: plugins.toolCallsPerNode, toolConcurrency: plugins.toolConcurrency },
    memoTtlMs: MEMO_TTL_MS,
  });
  return new AgentWorker({
    bus,
    commands,
    llm: llmNode,
    shards: config.bus.shards,
    prefetch: config.bus.prefetch,
    logger,
    ...(metrics ? { metrics } : {}),
  });
}
