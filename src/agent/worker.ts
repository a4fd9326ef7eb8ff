import { conversationKey, type Envelope, type EnvelopeOf } from '../core/envelope.ts';
import { lazyChild, type Logger } from '../core/logger.ts';
import type { Metrics } from '../core/metrics.ts';
import type { Subscription } from '../bus/bus.ts';
import type { EnvelopeBus } from '../bus/envelope-bus.ts';
import { agentQueue } from '../bus/topology.ts';
import type { CommandNode } from './command-node.ts';
import { KeyedSerial } from '../core/keyed-serial.ts';
import type { LlmNode } from './llm-node.ts';

export interface AgentWorkerOptions {
  readonly bus: EnvelopeBus;
  readonly commands: CommandNode;
  readonly llm: LlmNode;
  readonly shards: number;
  readonly prefetch: number;
  readonly logger: Logger;
  readonly metrics?: Metrics;
}

/**
 * The agent: takes chain nodes off its shard queues (a person's message, or the next step of a
 * chain) and answers each with a command or the LLM. Nodes of one conversation run in order;
 * conversations run concurrently. A node is acked only after what it published is confirmed.
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
    const { kind } = envelope.body;
    if (kind !== 'message' && kind !== 'step') {
      this.options.logger.warn({ envelopeId: envelope.id, kind }, 'agent ignores an envelope that is not a chain node');
      return Promise.resolve();
    }
    return this.serial.run(conversationKey(envelope), async () => {
      this.inFlight++;
      this.options.metrics?.chainsInFlight.inc();
      try {
        await this.handle(envelope as EnvelopeOf<'message' | 'step'>);
      } finally {
        this.inFlight--;
        this.options.metrics?.chainsInFlight.dec();
      }
    });
  }

  private async handle(node: EnvelopeOf<'message' | 'step'>): Promise<void> {
    const log = lazyChild(this.options.logger, { chainId: node.chainId, envelopeId: node.id, taskId: node.ref, depth: node.depth });
    if (node.body.kind === 'message' && node.body.command) {
      await this.options.commands.handle(node as EnvelopeOf<'message'>, node.body.command, log);
    } else {
      await this.options.llm.handle(node, log);
    }
  }
}
