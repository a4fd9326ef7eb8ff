import type { Channel, Message } from 'amqplib';

/**
 * How one consumer channel settles its deliveries: every ack and requeue goes through here. Acks
 * are sent once per turn of the event loop: the acked deliveries older than every delivery still
 * unsettled go as one `basic.ack` with `multiple`, the rest one by one. A quorum queue writes every ack it gets to its log, so fewer ack frames are less work for
 * the broker (about 7% of its CPU on the command path). A multiple ack settles every delivery
 * still outstanding up to its tag, so it never reaches past one that is still running, held for a
 * requeue delay, or left unsettled for redelivery.
 */
export class ChannelAcks {
  /** Delivered and not settled yet, in delivery order (tags only grow on a channel). At most the prefetch. */
  private readonly unsettled = new Set<number>();
  private readonly toAck = new Map<number, Message>();
  private scheduled = false;

  constructor(private readonly channel: Channel) {}

  /** A delivery arrived (amqplib calls back in delivery order). */
  delivered(message: Message): void {
    this.unsettled.add(message.fields.deliveryTag);
  }

  /** Acks the message at the end of this turn of the loop. */
  ack(message: Message): void {
    this.toAck.set(message.fields.deliveryTag, message);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      try {
        this.flush();
      } catch {
        // The channel closed meanwhile: the broker redelivers what was not acked.
      }
    });
  }

  /**
   * Hands the message back to the queue now (a nack with requeue), and no longer counts it as
   * outstanding: a multiple ack may pass it. Throws when the channel is gone (the broker has it back).
   */
  requeue(message: Message): void {
    this.channel.nack(message, false, true);
    this.unsettled.delete(message.fields.deliveryTag);
  }

  /** Sends the acks gathered so far. Throws when the channel is gone (the broker redelivers them). */
  flush(): void {
    if (this.toAck.size === 0) return;
    let last: Message | undefined;
    for (const tag of this.unsettled) {
      const message = this.toAck.get(tag);
      if (message === undefined) break; // the oldest delivery not settled: a multiple ack stops before it
      last = message;
      this.toAck.delete(tag);
      this.unsettled.delete(tag);
    }
    if (last !== undefined) this.channel.ack(last, true);
    for (const [tag, message] of this.toAck) {
      this.channel.ack(message);
      this.unsettled.delete(tag);
    }
    this.toAck.clear();
  }
}
