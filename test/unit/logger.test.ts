import { Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { createLogger, lazyChild } from '../../src/core/logger.ts';

function capture(level: string): { logger: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  let out = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      out += chunk.toString();
      done();
    },
  });
  const logger = createLogger(level, sink);
  return {
    logger,
    lines: () =>
      out
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe('lazyChild', () => {
  it('writes lines with its bindings, secrets redacted, like a pino child', () => {
    const { logger, lines } = capture('info');
    const log = lazyChild(logger, { chainId: 'c1', envelopeId: 'e1' });
    log.info({ token: 'sk-very-secret', n: 1 }, 'hello');
    log.child({ plugin: 'weather' }).warn('nested');
    expect(lines()).toMatchObject([
      { level: 30, msg: 'hello', chainId: 'c1', envelopeId: 'e1', token: '[redacted]', n: 1 },
      { level: 40, msg: 'nested', chainId: 'c1', envelopeId: 'e1', plugin: 'weather' },
    ]);
    expect(JSON.stringify(lines())).not.toContain('sk-very-secret');
  });

  it('makes the child only when a line is written at a level that is on, and only once', () => {
    const { logger, lines } = capture('warn');
    const child = vi.spyOn(logger, 'child');
    const log = lazyChild(logger, { chainId: 'c2' });
    log.info('not written');
    log.debug({ a: 1 }, 'not written either');
    // fastify checks a request logger's methods; looking at them, or asking for a child, makes nothing.
    for (const method of ['info', 'error', 'debug', 'fatal', 'warn', 'trace', 'child'] as const)
      expect(typeof log[method]).toBe('function');
    const grandchild = log.child({ plugin: 'p' });
    expect(child).not.toHaveBeenCalled();
    expect(log.isLevelEnabled('info')).toBe(false);
    log.warn('first');
    log.error('second');
    expect(child).toHaveBeenCalledTimes(1);
    grandchild.warn('third');
    expect(lines().map((l) => [l.msg, l.chainId, l.plugin])).toEqual([
      ['first', 'c2', undefined],
      ['second', 'c2', undefined],
      ['third', 'c2', 'p'],
    ]);
  });

  it('a level set on it changes it, not its parent', () => {
    const { logger, lines } = capture('warn');
    const log = lazyChild(logger, { chainId: 'c3' });
    log.level = 'debug';
    log.debug('child debug');
    logger.debug('parent debug');
    expect(lines().map((l) => l.msg)).toEqual(['child debug']);
  });
});
