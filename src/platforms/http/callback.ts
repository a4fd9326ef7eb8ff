import { createHmac } from 'node:crypto';
import pRetry, { AbortError } from 'p-retry';
import { PermanentError } from '../../core/errors.ts';

export interface CallbackOptions {
  readonly attempts: number;
  /** First wait between attempts; doubles each time. */
  readonly minDelayMs?: number;
  readonly timeoutMs?: number;
}

/** HMAC-SHA256 of the exact body, keyed by the client's secret, as `sha256=<hex>`. */
export function signBody(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * POSTs a JSON body to a client's callback URL, signed with `X-Switchboard-Signature`, retrying
 * network errors, 408, 429 and 5xx with backoff. A final failure is a PermanentError, so the
 * envelope is dead-lettered with the reason (and can be replayed) instead of retried forever.
 */
export async function postCallback(
  url: string,
  payload: unknown,
  secret: string,
  deliveryId: string,
  options: CallbackOptions,
): Promise<void> {
  const body = JSON.stringify(payload);
  const headers = {
    'content-type': 'application/json',
    'user-agent': 'switchboard-webhook/1',
    'x-switchboard-signature': signBody(body, secret),
    'x-switchboard-delivery': deliveryId,
  };
  try {
    await pRetry(
      async () => {
        const response = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(options.timeoutMs ?? 10_000) });
        await response.body?.cancel();
        if (response.ok) return;
        const error = new Error(`callback answered HTTP ${response.status}`);
        const retryable = response.status === 408 || response.status === 429 || response.status >= 500;
        throw retryable ? error : new AbortError(error);
      },
      { retries: options.attempts - 1, factor: 2, minTimeout: options.minDelayMs ?? 500, maxTimeout: 30_000 },
    );
  } catch (err) {
    throw new PermanentError(`callback to ${url} failed after ${options.attempts} attempt(s): ${(err as Error).message}`, { cause: err });
  }
}
