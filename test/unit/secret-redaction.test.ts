import { describe, expect, it } from 'vitest';
import { ScheduledMessages } from '../../src/agent/scheduled-messages.ts';
import { Timers } from '../../src/agent/timers.ts';
import type { EnvelopeBus } from '../../src/bus/envelope-bus.ts';
import { newMessageEnvelope, withoutSecrets } from '../../src/core/envelope.ts';
import { createLogger } from '../../src/core/logger.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';

describe('what is kept for people to read', () => {
  it('a dead-lettered /env message keeps no value', () => {
    const env = newMessageEnvelope({
      from: 'telegram:1',
      user: { id: 'telegram:1' },
      text: '/env GITHUB_TOKEN=ghp_secret',
      command: { name: 'env', args: 'GITHUB_TOKEN=ghp_secret' },
    });
    const kept = withoutSecrets(Buffer.from(JSON.stringify(env))).toString('utf8');
    expect(kept).not.toContain('ghp_secret');
    expect(JSON.parse(kept)).toMatchObject({ id: env.id, body: { text: '/env [redacted]', command: { name: 'env', args: '[redacted]' } } });
    const other = Buffer.from(JSON.stringify(newMessageEnvelope({ from: 'telegram:1', user: null, text: 'hello' })));
    expect(withoutSecrets(other)).toBe(other);
    expect(withoutSecrets(Buffer.from('not json')).toString()).toBe('not json');
  });
});

describe('durable timers', () => {
  it('a timer whose handler keeps failing is dropped after 5 attempts; others still fire', async () => {
    const store = await MemoryStore.open({ logger: createLogger('silent') });
    const timers = new Timers({ store, logger: createLogger('silent'), pollMs: 1_000, leaseMs: 1 });
    let failures = 0;
    const fired: string[] = [];
    timers.on('bad', async () => {
      failures++;
      throw new Error('corrupt');
    });
    timers.on('good', async (id) => {
      fired.push(id);
    });
    await timers.add('bad', 'b1', new Date(Date.now() - 1), '{}');
    await timers.add('good', 'g1', new Date(Date.now() - 1), '{}');
    for (let i = 0; i < 8; i++) {
      await timers.fireDue();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(failures).toBe(5);
    expect(fired).toEqual(['g1']);
    expect(await store.zrange('timers:due', 10)).toEqual([]);
    await store.close();
  });
});

describe('scheduled messages', () => {
  it('a redelivered node schedules the same timers, not new ones', async () => {
    const store = await MemoryStore.open({ logger: createLogger('silent') });
    const timers = new Timers({ store, logger: createLogger('silent'), pollMs: 1_000, leaseMs: 1_000 });
    const scheduled = new ScheduledMessages(timers, { publish: async () => undefined } as unknown as EnvelopeBus);
    const node = newMessageEnvelope({ from: 'telegram:1', user: { id: 'telegram:1' }, text: 'remind me twice' });
    const at = new Date(Date.now() + 60_000);
    const first = scheduled.for(node, `${node.id}/call-1`);
    const ids = [await first.message(at, 'a'), await first.message(at, 'b')];
    const again = scheduled.for(node, `${node.id}/call-1`);
    expect([await again.message(at, 'a'), await again.message(at, 'b')]).toEqual(ids);
    expect(new Set(ids).size).toBe(2);
    expect(await store.zrange('timers:due', 10)).toHaveLength(2);
    await store.close();
  });
});
