import { describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/core/logger.ts';
import { TaskEventHub } from '../../src/platforms/http/task-event-hub.ts';
import { TASK_EVENTS_CHANNEL, TaskStore, type TaskNotice } from '../../src/platforms/http/tasks.ts';
import type { Store } from '../../src/store/store.ts';
import { memoryStores } from '../helpers/memory-stores.ts';

const openStore = memoryStores();

/** The store, with a count of its subscriptions to the task-events channel. */
async function countingStore(): Promise<{ store: Store; active: () => number; made: () => number }> {
  const store = await openStore();
  let active = 0;
  let made = 0;
  const listen = store.listen.bind(store);
  store.listen = async (channel, onMessage) => {
    const stop = await listen(channel, onMessage);
    if (channel !== TASK_EVENTS_CHANNEL) return stop;
    active++;
    made++;
    let stopped = false;
    return async () => {
      if (!stopped) active--;
      stopped = true;
      await stop();
    };
  };
  return { store, active: () => active, made: () => made };
}

const reply = (text: string) => ({ type: 'reply' as const, text, at: '2026-01-01T00:00:00.000Z', status: 'done' as const });

describe('task event hub', () => {
  it('listens to the store only while a stream is open, and a little after', async () => {
    const { store, active, made } = await countingStore();
    const hub = new TaskEventHub(store, silentLogger(), 50);
    expect(active()).toBe(0); // an api process with no stream receives no task notices

    const closeA = await hub.subscribe(
      't1',
      () => undefined,
      () => undefined,
    );
    const closeB = await hub.subscribe(
      't2',
      () => undefined,
      () => undefined,
    );
    expect(made()).toBe(1); // streams share one subscription
    closeA();
    closeB();
    expect(active()).toBe(1); // lingers: streams opened one after another share it
    const closeC = await hub.subscribe(
      't3',
      () => undefined,
      () => undefined,
    );
    closeC();
    await vi.waitFor(() => expect(active()).toBe(0), { timeout: 2_000 });
    expect(made()).toBe(1);

    const closeD = await hub.subscribe(
      't4',
      () => undefined,
      () => undefined,
    );
    expect(active()).toBe(1); // listens again for a new stream
    closeD();
    await hub.stop();
    expect(active()).toBe(0);
  });

  it('hands each stream the notices of its own task, from the moment subscribe resolves', async () => {
    const { store } = await countingStore();
    const tasks = new TaskStore(store, 60_000);
    const hub = new TaskEventHub(store, silentLogger(), 50);
    const heardA: TaskNotice[] = [];
    const heardB: TaskNotice[] = [];
    const closeA = await hub.subscribe(
      'a',
      (n) => heardA.push(n),
      () => undefined,
    );
    await hub.subscribe(
      'b',
      (n) => heardB.push(n),
      () => undefined,
    );
    await tasks.record('a', 'e1', reply('for a'));
    await tasks.record('b', 'e2', reply('for b'));
    await tasks.record('a', 'e1', reply('for a')); // recorded before: no second notice
    await vi.waitFor(() => expect(heardB).toHaveLength(1));
    expect(heardA).toEqual([{ taskId: 'a', eventId: 'e1', status: 'done' }]);
    expect(heardB).toEqual([{ taskId: 'b', eventId: 'e2', status: 'done' }]);
    closeA();
    await tasks.record('a', 'e3', reply('later'));
    await tasks.record('b', 'e4', reply('later'));
    await vi.waitFor(() => expect(heardB).toHaveLength(2));
    expect(heardA).toHaveLength(1); // closed: hears nothing more
    await hub.stop();
  });

  it('a failed subscription fails the stream that asked, and the next stream tries again', async () => {
    const { store, active } = await countingStore();
    const listen = store.listen.bind(store);
    let failures = 1;
    store.listen = async (channel, onMessage) => {
      if (failures-- > 0) throw new Error('store unreachable');
      return listen(channel, onMessage);
    };
    const hub = new TaskEventHub(store, silentLogger(), 50);
    const ended: string[] = [];
    await expect(
      hub.subscribe(
        't1',
        () => undefined,
        () => ended.push('t1'),
      ),
    ).rejects.toThrow(/unreachable/);
    const close = await hub.subscribe(
      't2',
      () => undefined,
      () => ended.push('t2'),
    );
    expect(active()).toBe(1);
    hub.endStreams();
    expect(ended).toEqual(['t2']); // the failed stream was forgotten
    close();
    await hub.stop();
  });
});
