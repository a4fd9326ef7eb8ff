import { parseAddress } from '../core/address.ts';
import { EnvelopeSchema, conversationKey, type Envelope } from '../core/envelope.ts';
import { ValidationError, zodIssues } from '../core/errors.ts';
import type { Bus, BusMessage, ConsumeOptions, Subscription } from './bus.ts';
import { INBOUND_EXCHANGE, OUTBOUND_EXCHANGE, inboundRoutingKey, outboundRoutingKey, shardOf } from './topology.ts';

export type EnvelopeHandler = (envelope: Envelope, message: BusMessage) => Promise<void>;

/**
 * Envelopes on the bus: picks the exchange and routing key from the envelope's stage, and parses
 * what comes off the bus with zod (a malformed message is dead-lettered with the zod error).
 */
export class EnvelopeBus {
  constructor(
    readonly bus: Bus,
    private readonly shards: number,
  ) {}

  /** Resolves when the bus has confirmed the envelope. */
  publish(envelope: Envelope): Promise<void> {
    let target: { exchange: string; routingKey: string };
    let body: Buffer;
    try {
      target = this.route(envelope);
      body = Buffer.from(JSON.stringify(envelope));
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.bus.publish(target.exchange, target.routingKey, body, { messageId: envelope.id });
  }

  route(envelope: Envelope): { exchange: string; routingKey: string } {
    if (envelope.body.kind === 'message' || envelope.body.kind === 'step') {
      const shard = shardOf(conversationKey(envelope), this.shards);
      return { exchange: INBOUND_EXCHANGE, routingKey: inboundRoutingKey(shard, parseAddress(envelope.from).platform) };
    }
    const [to] = envelope.to;
    if (to === undefined || envelope.to.length !== 1) {
      throw new ValidationError('an outbound envelope has exactly one destination');
    }
    return { exchange: OUTBOUND_EXCHANGE, routingKey: outboundRoutingKey(parseAddress(to).platform, envelope.body.kind) };
  }

  consume(queue: string, handler: EnvelopeHandler, options: ConsumeOptions): Promise<Subscription> {
    return this.bus.consume(queue, (message) => handler(decodeEnvelope(message.body), message), options);
  }
}

export function decodeEnvelope(body: Buffer): Envelope {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new ValidationError(`malformed envelope: not JSON (${(err as Error).message})`);
  }
  const parsed = EnvelopeSchema.safeParse(json);
  if (!parsed.success) {
    throw new ValidationError(`malformed envelope: ${zodIssues(parsed.error).join('; ')}`);
  }
  return parsed.data;
}
