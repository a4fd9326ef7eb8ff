import { errorMessage, PermanentError } from '../core/errors.ts';
import { backoff } from '../core/timing.ts';
import type { BusMessage } from './bus.ts';

const REQUEUE_MIN_DELAY_MS = 50;
const REQUEUE_MAX_DELAY_MS = 5_000;

export type Settlement =
  | { readonly action: 'ack' }
  /** Hand back for redelivery after `delayMs`, so a passing outage does not use up every delivery at once. */
  | { readonly action: 'requeue'; readonly error: string; readonly delayMs: number }
  | { readonly action: 'dead-letter'; readonly reason: string };

/**
 * The one place that turns a handler's outcome into ack, retry or dead-letter. Every bus adapter
 * calls it, so both modes treat failures the same way.
 */
export function settle(error: unknown | undefined, msg: BusMessage, deliveryLimit: number): Settlement {
  if (error === undefined) return { action: 'ack' };
  if (error instanceof PermanentError) return { action: 'dead-letter', reason: error.message };
  const message = errorMessage(error);
  if (msg.deliveryCount >= deliveryLimit) {
    return { action: 'dead-letter', reason: `delivery limit ${deliveryLimit} reached; last error: ${message}` };
  }
  return { action: 'requeue', error: message, delayMs: backoff(msg.deliveryCount, REQUEUE_MIN_DELAY_MS, REQUEUE_MAX_DELAY_MS) };
}

/** Topic-exchange matching: '*' is exactly one word, '#' is zero or more words. */
export function topicMatches(pattern: string, routingKey: string): boolean {
  const p = pattern.split('.');
  const k = routingKey === '' ? [] : routingKey.split('.');
  const match = (i: number, j: number): boolean => {
    if (i === p.length) return j === k.length;
    const word = p[i];
    if (word === '#') {
      for (let next = j; next <= k.length; next++) if (match(i + 1, next)) return true;
      return false;
    }
    if (j === k.length) return false;
    return (word === '*' || word === k[j]) && match(i + 1, j + 1);
  };
  return match(0, 0);
}
