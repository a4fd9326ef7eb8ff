import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EnvelopeBus } from '../../src/bus/envelope-bus.ts';
import { Confirmations, type Stash } from '../../src/agent/confirmations.ts';
import { newMessageEnvelope, nextNode, type Envelope } from '../../src/core/envelope.ts';
import { createLogger } from '../../src/core/logger.ts';
import { z } from '../../src/plugins/sdk.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import type { Store } from '../../src/store/store.ts';

/** A bus that records what is published and can be told to fail. */
class RecordingBus {
  readonly published: Envelope[] = [];
  failNext = 0;
  async publish(envelope: Envelope): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('bus down');
    }
    this.published.push(envelope);
  }
}

const tools = {
  tool: (name: string) => (name === 'deploy' ? { tool: { name, args: z.object({ target: z.string().min(1) }) } } : undefined),
};

function stash(formId: string, expiresInMs = 60_000): Stash {
  const node = newMessageEnvelope({ from: 'http:alice', user: { id: 'http:alice' }, text: 'deploy it' });
  return {
    formId,
    chainId: node.chainId,
    nodeId: node.id,
    userId: 'http:alice',
    expiresAt: new Date(Date.now() + expiresInMs).toISOString(),
    calls: [{ id: 'c1', name: 'deploy', args: { target: 'prod' } }],
    next: nextNode(node, { kind: 'step', text: 'deploy it', transcript: [] }, 'resume'),
  };
}

describe('confirmations (the stash)', () => {
  let store: Store;
  let bus: RecordingBus;
  let confirmations: Confirmations;

  beforeEach(async () => {
    store = await MemoryStore.open({ logger: createLogger('silent') });
    bus = new RecordingBus();
    // The registry lookup only needs `tool(name).tool.args`.
    confirmations = new Confirmations(store, bus as unknown as EnvelopeBus, tools as never, undefined, 60_000);
  });
  afterEach(async () => {
    await store.close();
  });

  it('decides once: the same /confirm delivered again gets the same answer; anyone else gets "already decided"', async () => {
    await confirmations.park(stash('f1'));
    const input = { formId: 'f1', userId: 'http:alice', decision: 'approve', requestId: 'confirm-node-1' } as const;
    expect(await confirmations.decide(input)).toMatchObject({ ok: true, decision: 'approve' });
    expect(await confirmations.decide(input)).toMatchObject({ ok: true, decision: 'approve' });
    expect(await confirmations.decide({ ...input, requestId: 'confirm-node-2' })).toMatchObject({ ok: false, code: 'FORM_GONE' });
    expect(await confirmations.decide({ ...input, decision: 'reject', requestId: undefined })).toMatchObject({
      ok: false,
      code: 'FORM_GONE',
    });
    expect(new Set(bus.published.map((e) => e.id)).size).toBe(1);
    expect(bus.published[0]?.body).toMatchObject({ kind: 'step', pending: { formId: 'f1', callIds: ['c1'], decision: 'approve' } });
  });

  it('only the user who started the chain decides, and edited arguments are checked first', async () => {
    await confirmations.park(stash('f2'));
    expect(await confirmations.decide({ formId: 'f2', userId: 'http:bob', decision: 'approve' })).toMatchObject({ code: 'FORM_FORBIDDEN' });
    expect(await confirmations.decide({ formId: 'f2', userId: 'http:alice', decision: 'approve', args: { target: '' } })).toMatchObject({
      code: 'INVALID_ARGS',
    });
    expect(bus.published).toHaveLength(0);
    expect(await confirmations.decide({ formId: 'f2', userId: 'http:alice', decision: 'approve', args: { target: 'dev' } })).toMatchObject({
      ok: true,
    });
    expect(bus.published[0]?.body).toMatchObject({ pending: { args: { target: 'dev' } } });
  });

  it('a decision whose publish fails leaves the form open', async () => {
    await confirmations.park(stash('f3'));
    bus.failNext = 1;
    await expect(confirmations.decide({ formId: 'f3', userId: 'http:alice', decision: 'approve' })).rejects.toThrow('bus down');
    expect(await confirmations.decide({ formId: 'f3', userId: 'http:alice', decision: 'reject' })).toMatchObject({
      ok: true,
      decision: 'reject',
    });
  });

  it('a decision that was published stays decided even when tidying up fails', async () => {
    await confirmations.park(stash('f4'));
    const del = store.del.bind(store);
    store.del = async () => {
      throw new Error('store blip');
    };
    expect(await confirmations.decide({ formId: 'f4', userId: 'http:alice', decision: 'approve' })).toMatchObject({ ok: true });
    store.del = del;
    expect(await confirmations.decide({ formId: 'f4', userId: 'http:alice', decision: 'reject' })).toMatchObject({ code: 'FORM_GONE' });
    // The stash left behind: its expiry publishes the same continuation, with the approval.
    await confirmations.expire('f4');
    expect(bus.published.map((e) => (e.body.kind === 'step' ? e.body.pending?.decision : undefined))).toEqual(['approve', 'approve']);
    expect(new Set(bus.published.map((e) => e.id)).size).toBe(1);
  });

  it('expiry continues the chain as "expired" and a late decision is refused', async () => {
    await confirmations.park(stash('f5', 1));
    await new Promise((resolve) => setTimeout(resolve, 10));
    await confirmations.expire('f5');
    expect(bus.published[0]?.body).toMatchObject({ pending: { decision: 'expired' } });
    expect(await confirmations.decide({ formId: 'f5', userId: 'http:alice', decision: 'approve' })).toMatchObject({ code: 'FORM_GONE' });
  });

  it('a redelivered node parks under the same form and keeps its first expiry', async () => {
    const first = stash('f6', 60_000);
    await confirmations.park(first);
    const again = await confirmations.park({ ...first, expiresAt: new Date(Date.now() + 120_000).toISOString() });
    expect(again?.expiresAt).toBe(first.expiresAt);
    await confirmations.decide({ formId: 'f6', userId: 'http:alice', decision: 'approve' });
    expect(await confirmations.park(first)).toBeNull();
  });
});
