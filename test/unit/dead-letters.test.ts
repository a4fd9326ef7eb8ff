import { afterEach, describe, expect, it } from 'vitest';
import { DeadLetters, deadLetterView } from '../../src/bus/dead-letters.ts';
import { MemoryBus } from '../../src/bus/memory-bus.ts';
import { ValidationError } from '../../src/core/errors.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';

const EX = 'switchboard.inbound';
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

async function setup(max: number): Promise<{ bus: MemoryBus; store: MemoryStore; deadLetters: DeadLetters }> {
  const bus = await MemoryBus.open({ logger: silentLogger() });
  const store = await MemoryStore.open({ logger: silentLogger() });
  closers.push(
    () => bus.close(),
    () => store.close(),
  );
  await bus.declare({ exchanges: [EX], queues: [{ name: 'work', bindings: [{ exchange: EX, pattern: '#' }] }] });
  await bus.consume(
    'work',
    async (msg) => {
      throw new ValidationError(`bad ${msg.body.toString()}`);
    },
    { prefetch: 1 },
  );
  const deadLetters = new DeadLetters(bus, store, silentLogger(), { max });
  await deadLetters.start();
  closers.unshift(() => deadLetters.stop());
  return { bus, store, deadLetters };
}

async function waitFor(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200 && !(await check()); i++) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe('dead letters', () => {
  it('keeps the newest DEAD_LETTERS_MAX, oldest first, with the reason and the body as text', async () => {
    const { bus, deadLetters } = await setup(2);
    for (const n of [1, 2, 3]) {
      await bus.publish(EX, 'agent.0.http', Buffer.from(`m${n}`), { messageId: `id-${n}` });
      await waitFor(async () => (await deadLetters.list()).some((d) => d.messageId === `id-${n}`));
    }
    const views = (await deadLetters.list()).map(deadLetterView);
    expect(views.map((v) => v.messageId)).toEqual(['id-2', 'id-3']);
    expect(views[1]).toMatchObject({ reason: 'bad m3', body: 'm3', queue: 'work', routingKey: 'agent.0.http' });
  });

  it('replays to the original exchange and routing key, once', async () => {
    const { bus, deadLetters } = await setup(10);
    await bus.publish(EX, 'agent.0.http', Buffer.from('again'), { messageId: 'id-r' });
    await waitFor(async () => (await deadLetters.list()).length === 1);
    expect(await deadLetters.replay('id-r')).toBe(true);
    expect(await deadLetters.replay('id-r')).toBe(false);
    // It fails again on its queue and comes back.
    await waitFor(async () => (await deadLetters.list()).length === 1);
    expect((await deadLetters.list()).map((d) => d.messageId)).toEqual(['id-r']);
  });

  it('skips a record it cannot read and keeps working', async () => {
    const { bus, store, deadLetters } = await setup(2);
    await store.hset('dead-letters', { 'from-an-old-version': '{"not":"a record"}' });
    await bus.publish(EX, 'agent.0.http', Buffer.from('m1'), { messageId: 'id-1' });
    await waitFor(async () => (await deadLetters.list()).length === 1);
    expect((await deadLetters.list()).map((d) => d.messageId)).toEqual(['id-1']);
    await bus.publish(EX, 'agent.0.http', Buffer.from('m2'), { messageId: 'id-2' });
    await waitFor(async () => (await deadLetters.list()).length === 2);
    // Over the bound, the unreadable record is the first to go.
    expect(await store.hget('dead-letters', 'from-an-old-version')).toBeNull();
    expect((await deadLetters.list()).map((d) => d.messageId)).toEqual(['id-1', 'id-2']);
  });
});
