import { setMaxListeners } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { SwitchboardError } from '../core/errors.ts';

/** Defaults and small helpers shared by the bus adapters (memory and AMQP). */

/** Deliveries before a failing message is dead-lettered, for queues that set none. */
export const DEFAULT_DELIVERY_LIMIT = 5;
/** How long close() lets handlers finish before handing their messages back. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 5000;

/** What every operation on a closed (or closing) bus rejects with. */
export function busClosedError(operation?: string): SwitchboardError {
  return new SwitchboardError('BUS_CLOSED', operation === undefined ? 'bus is closed' : `bus is closed; cannot ${operation}`);
}

export function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new SwitchboardError('BUS_INVALID_OPTION', `${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/**
 * Aborted when waits for it should end at once (a consumer stopping, a channel closing). Any
 * number of pauses may listen to it at a time without Node warning about a listener leak.
 */
export function stopController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}

/**
 * Waits `ms`, or less when `signal` aborts; the timer and the listener go away either way, so
 * a stopped consumer leaves nothing behind that keeps the process alive.
 */
export async function pause(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, { signal });
  } catch {
    // Aborted: the wait is over.
  }
}
