import { conversationKey, emitted, ReplyBodySchema, type Envelope, type EnvelopeOf, type ReplyBody } from '../core/envelope.ts';
import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { Metrics } from '../core/metrics.ts';
import type { Subscription } from '../bus/bus.ts';
import type { EnvelopeBus } from '../bus/envelope-bus.ts';
import { agentQueue } from '../bus/topology.ts';
import type { Store } from '../store/store.ts';
import type { CommandRegistry } from './command-registry.ts';
import type { ConversationHistory } from './history.ts';
import { KeyedSerial } from './keyed-serial.ts';
import { LlmError, type ChatMessage, type Completion, type LlmClient } from './llm.ts';

export interface AgentWorkerOptions {
  readonly bus: EnvelopeBus;
  readonly store: Store;
  /** Undefined when no LLM is configured: commands still work, chat gets a clear answer. */
  readonly llm: LlmClient | undefined;
  readonly commands: CommandRegistry;
  readonly history: ConversationHistory;
  readonly systemPrompt: string;
  readonly adminUsers: ReadonlySet<string>;
  readonly shards: number;
  readonly prefetch: number;
  readonly logger: Logger;
  readonly metrics?: Metrics;
}

/** How long a node's answer is remembered, so a redelivered node re-sends it instead of asking the LLM again. */
const NODE_MEMO_TTL_MS = 86_400_000;

/**
 * The agent: takes messages off its shard queues, answers each with a command or the LLM, and
 * publishes the replies. Messages of one conversation run in order; conversations run concurrently.
 */
export class AgentWorker {
  private readonly serial = new KeyedSerial();
  private subscriptions: Subscription[] = [];
  private inFlight = 0;

  constructor(private readonly options: AgentWorkerOptions) {}

  async start(): Promise<void> {
    const { bus, shards, prefetch } = this.options;
    for (let shard = 0; shard < shards; shard++) {
      this.subscriptions.push(await bus.consume(agentQueue(shard), (env) => this.receive(env), { prefetch }));
    }
  }

  /** Stop taking messages and finish what is in flight. */
  async stop(): Promise<void> {
    await Promise.all(this.subscriptions.map((s) => s.cancel()));
    this.subscriptions = [];
  }

  /** Abandon what is in flight (it is redelivered): for shutdowns that ran out of time. Works during stop(). */
  async abort(): Promise<void> {
    await Promise.all(this.subscriptions.map((s) => s.abort()));
    this.subscriptions = [];
  }

  get chainsInFlight(): number {
    return this.inFlight;
  }

  private receive(envelope: Envelope): Promise<void> {
    if (envelope.body.kind !== 'message') {
      this.options.logger.warn({ envelopeId: envelope.id, kind: envelope.body.kind }, 'agent ignores a non-message envelope');
      return Promise.resolve();
    }
    const message = envelope as EnvelopeOf<'message'>;
    return this.serial.run(conversationKey(message), async () => {
      this.inFlight++;
      this.options.metrics?.chainsInFlight.inc();
      try {
        await this.handle(message);
      } finally {
        this.inFlight--;
        this.options.metrics?.chainsInFlight.dec();
      }
    });
  }

  private async handle(envelope: EnvelopeOf<'message'>): Promise<void> {
    const log = this.options.logger.child({ chainId: envelope.chainId, envelopeId: envelope.id, taskId: envelope.ref });
    const memoKey = `node:${envelope.id}:reply`;
    const memo = await this.options.store.get(memoKey);
    let reply: ReplyBody;
    if (memo !== null) {
      log.info('node was answered before; re-sending its reply');
      reply = ReplyBodySchema.parse(JSON.parse(memo));
    } else {
      reply = await this.answer(envelope, log);
      await this.options.store.set(memoKey, JSON.stringify(reply), { ttlMs: NODE_MEMO_TTL_MS });
    }
    await this.sendReply(envelope, reply);
    log.info({ status: reply.status, error: reply.error }, 'chain node finished');
  }

  private async answer(envelope: EnvelopeOf<'message'>, log: Logger): Promise<ReplyBody> {
    const { command } = envelope.body;
    if (command) return this.runCommand(envelope, command.name, command.args, log);
    return this.askLlm(envelope, log);
  }

  private async runCommand(envelope: EnvelopeOf<'message'>, name: string, args: string, log: Logger): Promise<ReplyBody> {
    const { commands, history, adminUsers } = this.options;
    const isAdmin = envelope.user !== null && adminUsers.has(envelope.user.id);
    const definition = commands.get(name);
    if (!definition || (definition.admin && !isAdmin)) {
      return {
        kind: 'reply',
        text: `I don't know the command /${name}. Send /help to see what I can do.`,
        format: 'plain',
        status: 'failed',
        error: 'UNKNOWN_COMMAND',
      };
    }
    try {
      const text = await definition.run({
        envelope,
        args,
        isAdmin,
        conversation: conversationKey(envelope),
        history,
        commands,
        logger: log,
      });
      return { kind: 'reply', text, format: 'markdown', status: 'done' };
    } catch (err) {
      log.error({ err, command: name }, 'command failed');
      return {
        kind: 'reply',
        text: `/${name} failed. Please try again later.`,
        format: 'plain',
        status: 'failed',
        error: errorMessage(err),
      };
    }
  }

  private async askLlm(envelope: EnvelopeOf<'message'>, log: Logger): Promise<ReplyBody> {
    const { llm, history, systemPrompt } = this.options;
    try {
      if (!llm) throw new LlmError('not_configured', 'no LLM is configured (OPENAI_API_KEY is not set)');
      await this.emitStatus(envelope);
      const conversation = conversationKey(envelope);
      const past = await history.load(conversation);
      const messages: ChatMessage[] = [
        { role: 'system', content: systemPrompt },
        ...past.map((entry) => ({ role: entry.role, content: entry.content })),
        { role: 'user', content: envelope.body.text },
      ];
      const completion = await this.timed(() => llm.complete(messages));
      log.info({ model: completion.model, usage: completion.usage }, 'llm answered');
      await history.append(conversation, [
        { role: 'user', content: envelope.body.text, nodeId: envelope.id },
        { role: 'assistant', content: completion.text, nodeId: envelope.id },
      ]);
      return { kind: 'reply', text: completion.text, format: 'markdown', status: 'done' };
    } catch (err) {
      if (!(err instanceof LlmError)) throw err;
      log.warn({ failure: err.failure, reason: err.message }, 'llm call failed');
      return { kind: 'reply', text: err.userMessage, format: 'plain', status: 'failed', error: `${err.code}: ${err.message}` };
    }
  }

  /** Runs one LLM call, recording its latency and tokens. */
  private async timed(call: () => Promise<Completion>): Promise<Completion> {
    const metrics = this.options.metrics;
    const stop = metrics?.llmLatency.startTimer();
    try {
      const completion = await call();
      stop?.({ model: completion.model, outcome: 'ok' });
      metrics?.llmTokens.inc({ model: completion.model, kind: 'prompt' }, completion.usage?.promptTokens ?? 0);
      metrics?.llmTokens.inc({ model: completion.model, kind: 'completion' }, completion.usage?.completionTokens ?? 0);
      return completion;
    } catch (err) {
      stop?.({ model: 'unknown', outcome: err instanceof LlmError ? err.failure : 'error' });
      throw err;
    }
  }

  /** Destinations of a node's output: its `to` addresses, and its origin, which is told how the chain ended. */
  private destinations(envelope: Envelope): string[] {
    return [...new Set([...envelope.to, envelope.from])];
  }

  private async emitStatus(envelope: EnvelopeOf<'message'>): Promise<void> {
    await Promise.all(
      this.destinations(envelope).map((to, i) => this.options.bus.publish(emitted(envelope, i, to, { kind: 'status', status: 'running' }))),
    );
  }

  private async sendReply(envelope: EnvelopeOf<'message'>, reply: ReplyBody): Promise<void> {
    const destinations = this.destinations(envelope);
    const offset = destinations.length;
    await Promise.all(destinations.map((to, i) => this.options.bus.publish(emitted(envelope, offset + i, to, reply))));
  }
}
