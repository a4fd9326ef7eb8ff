import { topicMatches } from '../../src/bus/settle.ts';
import { inboundRoutingKey, shardOf } from '../../src/bus/topology.ts';

export { shardOf };

/** Whether a shard's inbound routing key reaches that shard's queue binding. */
export function topicMatchesFor(shard: number): boolean {
  return (
    topicMatches(`agent.${shard}.#`, inboundRoutingKey(shard, 'http')) &&
    !topicMatches(`agent.${shard + 1}.#`, inboundRoutingKey(shard, 'http'))
  );
}
