import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/core/logger.ts';
import { TaskEventHub } from '../../src/platforms/http/task-event-hub.ts';
import { TASK_EVENTS_CHANNEL, TaskStore, type TaskNotice } from '../../src/platforms/http/tasks.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { RedisStore } from '../../src/store/redis-store.ts';
import type { Store } from '../../src/store/store.ts';
import { deleteRedisPrefix } from '../helpers/cleanup.ts';
import { redisUrl, uniqueName } from '../helpers/services.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const reply = (text: string) => ({ type: 'reply' as const, text, at: '2026-01-01T00:00:00.000Z', status: 'done' as const });

const adapters = [
  { name: 'memory', open: async () => ({ store: await MemoryStore.open({ logger: silentLogger() }), cleanup: async () => undefined }) },
  {
    name: 'redis',
    open: async () => {
      const url = await redisUrl();
      const keyPrefix = `${uniqueName()}:`;
      return { store: await RedisStore.open({ url, keyPrefix, logger: silentLogger() }), cleanup: () => deleteRedisPrefix(url, keyPrefix) };
    },
  },
];

describe.each(adapters)('task event hub on the $name store', (adapter) => {
  const opened: { store: Store; cleanup: () => Promise<void> }[] = [];
  afterEach(async () => {
    for (const handle of opened.splice(0)) {
      await handle.store.close();
      await handle.cleanup();
    }
  });

  /** The store, with a count of its subscriptions to the task-events channel. */
  async function countingStore(): Promise<{ store: Store; active: () => number; made: () => number }> {
    const handle = await adapter.open();
    opened.push(handle);
    const { store } = handle;
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

  it('listens to the store only while a stream is open, and a little after', async () => {
    const { store, active, made } = await countingStore();
    const hub = new TaskEventHub(store, silentLogger(), 300);
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
    await sleep(50);
    expect(active()).toBe(1); // lingers: streams opened one after another share it
    const closeC = await hub.subscribe(
      't3',
      () => undefined,
      () => undefined,
    );
    closeC();
    expect(made()).toBe(1);
    await vi.waitFor(() => expect(active()).toBe(0), { timeout: 3_000 });

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

  it('hands each stream the notices of its own task, also after it stopped listening and started again', async () => {
    const { store, active, made } = await countingStore();
    const tasks = new TaskStore(store, 60_000);
    const hub = new TaskEventHub(store, silentLogger(), 20);
    const heardA: TaskNotice[] = [];
    const heardB: TaskNotice[] = [];
    const closeA = await hub.subscribe(
      'a',
      (n) => heardA.push(n),
      () => undefined,
    );
    const closeB = await hub.subscribe(
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

    // The last stream closes; the hub stops listening, and a new stream makes it listen again.
    closeB();
    await vi.waitFor(() => expect(active()).toBe(0), { timeout: 3_000 });
    const heardC: TaskNotice[] = [];
    await hub.subscribe(
      'c',
      (n) => heardC.push(n),
      () => undefined,
    );
    expect(made()).toBe(2);
    await tasks.record('c', 'e5', reply('for c'));
    await vi.waitFor(() => expect(heardC).toEqual([{ taskId: 'c', eventId: 'e5', status: 'done' }]));
    await hub.stop();
  });

  it('a stream whose subscription failed still opens, and is ended with the others; the next stream tries again', async () => {
    const { store, active } = await countingStore();
    const listen = store.listen.bind(store);
    let failures = 1;
    store.listen = async (channel, onMessage) => {
      if (failures-- > 0) throw new Error('store unreachable');
      return listen(channel, onMessage);
    };
    const hub = new TaskEventHub(store, silentLogger(), 50);
    const ended: string[] = [];
    const closeOne = await hub.subscribe(
      't1',
      () => undefined,
      () => ended.push('t1'),
    ); // polls instead
    expect(active()).toBe(0);
    const closeTwo = await hub.subscribe(
      't2',
      () => undefined,
      () => ended.push('t2'),
    );
    expect(active()).toBe(1);
    hub.endStreams();
    expect(ended).toEqual(['t1', 't2']); // the server's close ends both
    closeOne();
    closeTwo();
    await hub.stop();
  });
});
