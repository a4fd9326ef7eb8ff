import { audience, emitted, type Body, type Envelope } from '../core/envelope.ts';
import type { EnvelopeBus } from '../bus/envelope-bus.ts';

/**
 * What one node says, numbered in the order it says it: the n-th output of a node always gets the
 * same envelope id, so a redelivered node re-emits what senders already recognise.
 */
export class Outbox {
  private next = 0;

  constructor(
    private readonly bus: EnvelopeBus,
    private readonly node: Envelope,
  ) {}

  /** Everyone the node's output goes to (see `audience`). */
  get everyone(): string[] {
    return audience(this.node);
  }

  /** The person who wrote the chain's message (questions such as /confirm go only to them). */
  get origin(): string[] {
    return [this.node.from];
  }

  async emit(body: Body, addresses: readonly string[] = this.everyone): Promise<void> {
    const first = this.next;
    this.next += addresses.length;
    await Promise.all(addresses.map((to, i) => this.bus.publish(emitted(this.node, first + i, to, body))));
  }
}
