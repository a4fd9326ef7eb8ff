import { Telegram } from 'telegraf';

/** A Bot API client for one bot token, against `apiRoot` (Telegram's, a local Bot API server, or a fake in tests). */
export function telegramClient(token: string, apiRoot: string): Telegram {
  return new Telegram(token, { apiRoot });
}

/** telegraf types its `signal` option with the old abort-controller shim; node-fetch takes Node's own. */
export type ApiSignal = NonNullable<NonNullable<Parameters<Telegram['callApi']>[2]>['signal']>;
export function apiSignal(signal: AbortSignal): ApiSignal {
  return signal as unknown as ApiSignal;
}
