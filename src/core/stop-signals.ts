import { constants } from 'node:os';
import type { Logger } from './logger.ts';

export interface StopSignals {
  /** Resolves with the first SIGTERM or SIGINT. */
  readonly received: Promise<NodeJS.Signals>;
  /** Removes the listeners. */
  dispose(): void;
}

/**
 * Waits for SIGTERM or SIGINT to stop gracefully; a second one exits at once (128 + its number).
 * The listeners stay installed while the process stops: signal-exit (used by write-file-atomic
 * while a snapshot is written) kills the process with the signal again when it finds itself the
 * only listener left, which cut graceful stops short when ours removed itself.
 */
export function stopSignals(logger: Logger): StopSignals {
  let first: NodeJS.Signals | undefined;
  let resolve: (signal: NodeJS.Signals) => void = () => undefined;
  const received = new Promise<NodeJS.Signals>((r) => (resolve = r));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (first !== undefined) {
      logger.warn({ signal }, 'second signal: exiting without finishing');
      process.exit(128 + constants.signals[signal]);
    }
    first = signal;
    logger.info({ signal }, 'signal received');
    resolve(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return {
    received,
    dispose: () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}
