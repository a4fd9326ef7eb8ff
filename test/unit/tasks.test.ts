import { describe, expect, it } from 'vitest';
import { TaskStore, streamItems, taskView, type StoredEvent, type TaskRecord } from '../../src/platforms/http/tasks.ts';
import { memoryStores } from '../helpers/memory-stores.ts';

const record: TaskRecord = {
  taskId: 't1',
  chainId: 'c1',
  owner: 'alice',
  address: 'http:alice',
  mode: 'agent',
  createdAt: '2026-01-01T00:00:00.000Z',
};
const events: StoredEvent[] = [
  { id: 'n1.000', event: { type: 'status', status: 'running', at: '2026-01-01T00:00:01.000Z' } },
  { id: 'n1.001', event: { type: 'reply', text: 'hello', at: '2026-01-01T00:00:02.000Z', status: 'done' } },
];

describe('task state', () => {
  it('is queued before anything happened', () => {
    expect(taskView(record, [])).toMatchObject({ status: 'queued', replies: [] });
  });

  it('follows the events in id order, whatever order they were recorded in', () => {
    const view = taskView(record, events);
    expect(view).toMatchObject({ status: 'done', replies: [{ text: 'hello' }], updatedAt: '2026-01-01T00:00:02.000Z' });
    expect(streamItems(events).map((i) => `${i.type}:${'status' in i.data ? i.data.status : i.data.text}`)).toEqual([
      'status:running',
      'reply:hello',
      'status:done',
    ]);
  });

  it('reports the error of a failed chain', () => {
    const failed: StoredEvent[] = [
      { id: 'n1.001', event: { type: 'reply', text: 'sorry', at: 'x', status: 'failed', error: 'LLM_TIMEOUT' } },
    ];
    expect(taskView(record, failed)).toMatchObject({ status: 'failed', error: 'LLM_TIMEOUT' });
  });
});

describe('task records', () => {
  const openStore = memoryStores();

  it('are read from the store once per process by the sender; a deleted one is gone at once', async () => {
    const store = await openStore();
    const reads: string[] = [];
    const get = store.get.bind(store);
    store.get = (key) => {
      reads.push(key);
      return get(key);
    };
    const api = new TaskStore(store, 60_000);
    const sender = new TaskStore(store, 60_000); // another process
    await api.create(record);
    expect(await api.get('t1')).toEqual(record);
    expect(reads).toEqual([]); // the process that created it does not read it back

    expect(await sender.get('t1')).toEqual(record);
    expect(await sender.get('t1')).toEqual(record);
    expect(reads).toEqual(['task:t1', 'task:t1']); // an api read (GET /v1/tasks/:id) is not kept
    expect(await sender.get('t1', { keep: true })).toEqual(record);
    expect(await sender.get('t1', { keep: true })).toEqual(record);
    expect(await sender.get('t1')).toEqual(record);
    expect(reads).toHaveLength(3); // kept by the sender's read, then from memory

    expect(await sender.get('missing', { keep: true })).toBeNull();
    expect(await sender.get('missing', { keep: true })).toBeNull();
    expect(reads.filter((key) => key === 'task:missing')).toHaveLength(2); // absence is never kept

    await api.delete('t1');
    expect(await api.get('t1')).toBeNull();
  });
});
