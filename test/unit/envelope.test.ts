import { describe, expect, it } from 'vitest';
import { decodeEnvelope } from '../../src/bus/envelope-bus.ts';
import { shardOf, topicMatchesFor } from './topic-helper.ts';
import { parseCommand } from '../../src/core/command.ts';
import { ENVELOPE_VERSION, emitted, newMessageEnvelope } from '../../src/core/envelope.ts';
import { ValidationError } from '../../src/core/errors.ts';

describe('envelopes', () => {
  it('round-trip through JSON and the schema', () => {
    const envelope = newMessageEnvelope({ from: 'http:alice', user: { id: 'http:alice' }, text: 'hi', conversation: 'c' });
    expect(decodeEnvelope(Buffer.from(JSON.stringify(envelope)))).toEqual(envelope);
    expect(envelope.v).toBe(ENVELOPE_VERSION);
    expect(envelope.to).toEqual(['http:alice']);
  });

  it('refuse malformed input with the field that is wrong', () => {
    expect(() => decodeEnvelope(Buffer.from('{not json'))).toThrow(ValidationError);
    const envelope = newMessageEnvelope({ from: 'http:alice', user: null, text: 'hi' });
    const broken = { ...envelope, to: ['no-colon'] };
    expect(() => decodeEnvelope(Buffer.from(JSON.stringify(broken)))).toThrow(/to\.0/);
    const future = { ...envelope, v: 99 };
    expect(() => decodeEnvelope(Buffer.from(JSON.stringify(future)))).toThrow(/^malformed envelope: v:/);
  });

  it('gives emitted envelopes deterministic ids that sort in emit order after the node', () => {
    const node = newMessageEnvelope({ from: 'http:alice', user: null, text: 'hi' });
    const a = emitted(node, 0, 'http:alice', { kind: 'status', status: 'running' });
    const b = emitted(node, 1, 'http:alice', { kind: 'reply', text: 'x', format: 'plain' });
    const b2 = emitted(node, 1, 'http:alice', { kind: 'reply', text: 'x', format: 'plain' });
    expect(b.id).toBe(b2.id);
    expect([b.id, node.id, a.id].sort()).toEqual([node.id, a.id, b.id]);
    expect(b.chainId).toBe(node.chainId);
  });
});

describe('commands', () => {
  it.each([
    ['/help', { name: 'help', args: '' }],
    ['/Clear  ', { name: 'clear', args: '' }],
    ['/remind in 10 minutes\ncall mum', { name: 'remind', args: 'in 10 minutes\ncall mum' }],
    ['/help@switchboard_bot', { name: 'help', args: '', target: 'switchboard_bot' }],
  ])('parses %j', (text, expected) => {
    expect(parseCommand(text)).toEqual(expected);
  });

  it.each(['hello', '/ space', '//double', 'a /help'])('does not take %j for a command', (text) => {
    expect(parseCommand(text)).toBeUndefined();
  });
});

describe('sharding', () => {
  it('puts a conversation in one stable shard and spreads conversations over all shards', () => {
    expect(shardOf('http:alice#c1', 8)).toBe(shardOf('http:alice#c1', 8));
    const used = new Set(Array.from({ length: 200 }, (_, i) => shardOf(`telegram:${i}`, 8)));
    expect(used.size).toBe(8);
    expect(topicMatchesFor(shardOf('x', 8))).toBe(true);
  });
});
