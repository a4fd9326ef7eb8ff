import type { Channel, Message } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { ChannelAcks } from '../../src/bus/amqp-acks.ts';

/** The ack frames a channel was asked to send ([deliveryTag, multiple]) and the tags it requeued. */
function fakeChannel(): { channel: Channel; frames: [number, boolean][]; requeued: number[]; closed: { value: boolean } } {
  const frames: [number, boolean][] = [];
  const requeued: number[] = [];
  const closed = { value: false };
  const channel = {
    ack(message: Message, allUpTo = false) {
      if (closed.value) throw new Error('Channel closed');
      frames.push([message.fields.deliveryTag, allUpTo]);
    },
    nack(message: Message, allUpTo = false, requeue = true) {
      if (closed.value) throw new Error('Channel closed');
      if (!allUpTo && requeue) requeued.push(message.fields.deliveryTag);
    },
  } as unknown as Channel;
  return { channel, frames, requeued, closed };
}

const delivery = (tag: number): Message => ({ fields: { deliveryTag: tag } }) as unknown as Message;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('ChannelAcks', () => {
  it('sends the acks of one turn in order as a single multiple ack, on the next turn', async () => {
    const { channel, frames } = fakeChannel();
    const acks = new ChannelAcks(channel);
    const messages = [1, 2, 3, 4, 5].map(delivery);
    for (const m of messages) acks.delivered(m);
    for (const m of messages) acks.ack(m);
    expect(frames).toEqual([]);
    await nextTurn();
    expect(frames).toEqual([[5, true]]);
  });

  it('never lets a multiple ack pass a delivery that is still running', async () => {
    const { channel, frames } = fakeChannel();
    const acks = new ChannelAcks(channel);
    const [one, two, three] = [1, 2, 3].map(delivery) as [Message, Message, Message];
    for (const m of [one, two, three]) acks.delivered(m);
    acks.ack(two);
    acks.ack(three);
    await nextTurn();
    expect(frames).toEqual([
      [2, false],
      [3, false],
    ]);
    acks.ack(one);
    await nextTurn();
    // 2 and 3 are acked already: a multiple ack up to 1 covers only 1.
    expect(frames.slice(2)).toEqual([[1, true]]);
  });

  it('passes a delivery it requeued, but not one left unsettled', async () => {
    const { channel, frames, requeued } = fakeChannel();
    const acks = new ChannelAcks(channel);
    const m = [1, 2, 3, 4].map(delivery) as [Message, Message, Message, Message];
    for (const x of m) acks.delivered(x);
    acks.requeue(m[1]); // at once, not at the end of the turn: no longer outstanding on the broker
    expect(requeued).toEqual([2]);
    acks.ack(m[0]);
    acks.ack(m[2]);
    await nextTurn();
    expect(frames).toEqual([[3, true]]);
    // 4 was delivered while cancelling and is never settled: later acks do not reach past it.
    const five = delivery(5);
    acks.delivered(five);
    acks.ack(five);
    await nextTurn();
    expect(frames.slice(1)).toEqual([[5, false]]);
  });

  it('flush() sends at once; acks on a closed channel are dropped without throwing from the timer', async () => {
    const { channel, frames, closed } = fakeChannel();
    const acks = new ChannelAcks(channel);
    const [one, two] = [1, 2].map(delivery) as [Message, Message];
    acks.delivered(one);
    acks.delivered(two);
    acks.ack(one);
    acks.flush();
    expect(frames).toEqual([[1, true]]);
    closed.value = true;
    acks.ack(two);
    await nextTurn(); // would be an uncaught exception if the timer let it through
    expect(frames).toEqual([[1, true]]);
    const three = delivery(3);
    acks.delivered(three);
    acks.ack(three);
    expect(() => acks.flush()).toThrow('Channel closed');
  });
});
