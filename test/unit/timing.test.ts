import { describe, expect, it } from 'vitest';
import { allDone, sleep } from '../../src/core/timing.ts';

describe('allDone', () => {
  it('resolves once every promise has resolved', async () => {
    const order: string[] = [];
    await allDone([sleep(30).then(() => order.push('slow')), Promise.resolve().then(() => order.push('fast'))]);
    expect(order).toEqual(['fast', 'slow']);
  });

  it('does not reject before the others have finished, so nothing keeps running behind the caller', async () => {
    let slowFinished = false;
    const slow = sleep(40).then(() => {
      slowFinished = true;
    });
    await expect(allDone([Promise.reject(new Error('early failure')), slow])).rejects.toThrow('early failure');
    expect(slowFinished).toBe(true);
  });

  it('rejects with the first failure in argument order, not in time', async () => {
    const late = sleep(20).then(() => {
      throw new Error('first argument');
    });
    const early = Promise.reject(new Error('second argument'));
    await expect(allDone([late, early])).rejects.toThrow('first argument');
  });
});
