import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/core/logger.ts';
import { stopSignals, type StopSignals } from '../../src/core/stop-signals.ts';

/**
 * What signal-exit (under write-file-atomic, while a snapshot is written) does on a signal: when it
 * finds itself the only listener left, it kills the process with the same signal again.
 */
function signalExitLike(kill: (signal: NodeJS.Signals) => void, othersBefore: number): () => void {
  // `othersBefore`: listeners the test runner itself may have, which a real process does not.
  const listener = (signal: NodeJS.Signals): void => {
    if (process.listeners(signal).length === othersBefore + 1) kill(signal);
  };
  process.on('SIGINT', listener);
  process.on('SIGTERM', listener);
  return () => {
    process.off('SIGINT', listener);
    process.off('SIGTERM', listener);
  };
}

describe('stopSignals', () => {
  const disposers: (() => void)[] = [];
  afterEach(() => {
    for (const dispose of disposers.splice(0)) dispose();
    vi.restoreAllMocks();
  });
  const listen = (): StopSignals => {
    const signals = stopSignals(silentLogger());
    disposers.push(() => signals.dispose());
    return signals;
  };

  it('resolves with the first signal and keeps listening, so no other listener thinks it is alone', async () => {
    const runner = process.listenerCount('SIGINT');
    const signals = listen();
    const killed: NodeJS.Signals[] = [];
    // Registered after ours, as write-file-atomic's is while it writes: it runs after our listener.
    disposers.push(signalExitLike((signal) => killed.push(signal), runner));
    process.emit('SIGINT', 'SIGINT');
    expect(await signals.received).toBe('SIGINT');
    expect(killed).toEqual([]);
  });

  it('a second signal exits at once with 128 + its number', async () => {
    const signals = listen();
    const exit = vi.spyOn(process, 'exit').mockImplementation(() => undefined as never);
    process.emit('SIGTERM', 'SIGTERM');
    await signals.received;
    expect(exit).not.toHaveBeenCalled();
    process.emit('SIGTERM', 'SIGTERM');
    expect(exit).toHaveBeenCalledWith(143);
  });

  it('dispose removes its listeners', () => {
    const before = process.listenerCount('SIGINT');
    const signals = stopSignals(silentLogger());
    expect(process.listenerCount('SIGINT')).toBe(before + 1);
    signals.dispose();
    expect(process.listenerCount('SIGINT')).toBe(before);
  });
});
