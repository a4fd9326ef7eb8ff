import type { QueueSpec, Topology } from './bus.ts';

/** Where people's messages and the next nodes of chains go; the agent's shard queues read it. */
export const INBOUND_EXCHANGE = 'switchboard.inbound';
/** Where replies go; each platform's sender reads its own queue. */
export const OUTBOUND_EXCHANGE = 'switchboard.outbound';

export const agentQueue = (shard: number): string => `agent.${shard}`;
export const senderQueue = (platform: string): string => `out.${platform}`;
export const inboundRoutingKey = (shard: number, platform: string): string => `agent.${shard}.${platform}`;
export const outboundRoutingKey = (platform: string, kind: string): string => `${platform}.${kind}`;

/**
 * The shard of a conversation: every message of one conversation lands in one shard queue, which
 * has a single active consumer, so a conversation is handled in order by one worker at a time.
 * FNV-1a: stable across processes and versions.
 */
export function shardOf(conversationKey: string, shards: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < conversationKey.length; i++) {
    hash ^= conversationKey.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % shards;
}

export function agentQueues(shards: number): QueueSpec[] {
  return Array.from({ length: shards }, (_, shard) => ({
    name: agentQueue(shard),
    bindings: [{ exchange: INBOUND_EXCHANGE, pattern: `agent.${shard}.#` }],
    singleActiveConsumer: true,
  }));
}

export function senderQueueSpec(platform: string): QueueSpec {
  return { name: senderQueue(platform), bindings: [{ exchange: OUTBOUND_EXCHANGE, pattern: `${platform}.#` }] };
}

/** Platforms that have a sender; each gets an `out.<platform>` queue. */
export const SENDER_PLATFORMS: readonly string[] = ['http', 'telegram'];

/** Everything every role declares: both exchanges, the agent's shard queues and the senders' queues. */
export function switchboardTopology(shards: number, platforms: readonly string[]): Topology {
  return {
    exchanges: [INBOUND_EXCHANGE, OUTBOUND_EXCHANGE],
    queues: [...agentQueues(shards), ...platforms.map(senderQueueSpec)],
  };
}
