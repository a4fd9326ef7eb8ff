import type { Subscription } from '../../bus/bus.ts';
import type { EnvelopeBus } from '../../bus/envelope-bus.ts';
import { senderQueue } from '../../bus/topology.ts';
import type { Logger } from '../../core/logger.ts';
import type { Store } from '../../store/store.ts';
import { telegramClient } from './telegram-client.ts';
import { TelegramDelivery } from './telegram-delivery.ts';

export interface TelegramSenderOptions {
  readonly bus: EnvelopeBus;
  readonly store: Store;
  readonly token: string;
  /** The Bot API root (tests point it at a fake). */
  readonly apiRoot: string;
  readonly maxChunks: number;
  readonly prefetch: number;
  readonly logger: Logger;
}

/** The `sender:telegram` role: takes envelopes for `telegram:<chatId>` off `out.telegram` and delivers them. */
export class TelegramSender {
  private subscription: Subscription | undefined;
  private readonly delivery: TelegramDelivery;

  constructor(private readonly options: TelegramSenderOptions) {
    this.delivery = new TelegramDelivery({
      telegram: telegramClient(options.token, options.apiRoot),
      store: options.store,
      logger: options.logger,
      maxChunks: options.maxChunks,
    });
  }

  async start(): Promise<void> {
    this.subscription = await this.options.bus.consume(
      senderQueue('telegram'),
      async (envelope) => {
        await this.delivery.deliver(envelope);
      },
      { prefetch: this.options.prefetch },
    );
  }

  async stop(): Promise<void> {
    await this.subscription?.cancel();
    await this.delivery.close();
  }

  async abort(): Promise<void> {
    await this.subscription?.abort();
    this.subscription = undefined;
    await this.delivery.close();
  }
}
