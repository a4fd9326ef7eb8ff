import pRetry from 'p-retry';
import { TelegramError, type Telegram } from 'telegraf';
import type { EnvelopeBus } from '../../bus/envelope-bus.ts';
import { ConfigError, TransientError, errorMessage } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { Metrics } from '../../core/metrics.ts';
import type { Store } from '../../store/store.ts';
import { apiSignal, telegramClient, type ApiSignal } from './telegram-client.ts';
import { TelegramInbox } from './telegram-inbox.ts';
import { TelegramPolling } from './telegram-polling.ts';
import { ALLOWED_UPDATES } from './update-schema.ts';

/** A command as the bot's menu shows it. */
export interface MenuCommand {
  readonly name: string;
  readonly description: string;
}

/** The commands a person may use: in private or group chats, as an administrator or not. */
export type CommandMenu = (chatType: 'private' | 'group', isAdmin: boolean) => readonly MenuCommand[];

export interface TelegramReceiverOptions {
  readonly bus: EnvelopeBus;
  readonly store: Store;
  readonly token: string;
  readonly apiRoot: string;
  /** `webhook`: updates arrive through the api's route; start() registers `webhookUrl` with Telegram. */
  readonly mode: 'polling' | 'webhook';
  readonly webhookUrl?: string;
  readonly webhookSecret?: string;
  readonly maxUpdateAgeMs: number;
  readonly commands: CommandMenu;
  /** User ids (`telegram:<id>`) whose private chat shows the administrators' commands. */
  readonly adminUsers: ReadonlySet<string>;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Backoff of the polling loop (tests shorten it). */
  readonly minBackoffMs?: number;
}

/** Time limit of the requests that set the bot up. */
const REQUEST_TIMEOUT_MS = 15_000;

/** Telegram allows at most 100 commands, each described in 1 to 256 characters. */
const MAX_COMMANDS = 100;
const MAX_DESCRIPTION = 256;

/**
 * The `receiver:telegram` role: learns who the bot is, puts the commands in its menu, then takes
 * updates by long polling or through the webhook, into the durable inbox.
 */
export class TelegramReceiver {
  readonly telegram: Telegram;
  private inbox: TelegramInbox | undefined;
  private polling: TelegramPolling | undefined;
  /** Retrying to reach Telegram in the background, when it was not reachable at start. */
  private connecting: Promise<void> | undefined;
  private readonly stopping = new AbortController();

  constructor(private readonly options: TelegramReceiverOptions) {
    this.telegram = telegramClient(options.token, options.apiRoot);
  }

  /**
   * Connects to Telegram and starts taking updates. A token Telegram refuses stops the start with a
   * ConfigError; Telegram being unreachable does not (the other roles of the process go on): the
   * receiver keeps trying in the background.
   */
  async start(): Promise<void> {
    try {
      await this.connect();
    } catch (err) {
      if (err instanceof TelegramError && (err.code === 401 || err.code === 404)) {
        throw new ConfigError(`TELEGRAM_BOT_TOKEN: Telegram refused the token (${err.code} ${err.description})`);
      }
      this.options.logger.warn({ err: errorMessage(err) }, 'Telegram is not reachable; the receiver keeps trying');
      this.connecting = pRetry(() => this.connect(), {
        retries: Number.POSITIVE_INFINITY,
        minTimeout: 1000,
        maxTimeout: 60_000,
        signal: this.stopping.signal,
        shouldRetry: () => !this.stopping.signal.aborted,
        onFailedAttempt: ({ error, attemptNumber }) =>
          this.options.logger.warn({ err: errorMessage(error), attemptNumber }, 'Telegram is still not reachable'),
      }).catch(() => undefined);
    }
  }

  private async connect(): Promise<void> {
    const { options, telegram } = this;
    const signal = (): ApiSignal => apiSignal(AbortSignal.any([this.stopping.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]));
    const me = await telegram.callApi('getMe', {}, { signal: signal() });
    const known = new Set([...options.commands('private', true), ...options.commands('group', true)].map((c) => c.name));
    const inbox = new TelegramInbox({
      bus: options.bus,
      store: options.store,
      telegram,
      bot: { id: me.id, username: me.username },
      maxUpdateAgeMs: options.maxUpdateAgeMs,
      knownCommand: (name) => known.has(name),
      logger: options.logger,
      ...(options.metrics ? { metrics: options.metrics } : {}),
    });
    await this.registerCommands(signal);
    if (options.mode === 'webhook') {
      this.inbox = inbox;
      const webhook = { url: options.webhookUrl ?? '', allowed_updates: [...ALLOWED_UPDATES], secret_token: options.webhookSecret };
      await telegram.callApi('setWebhook', webhook, { signal: signal() });
    } else {
      // getUpdates answers 409 while a webhook is set; the pending updates stay.
      await telegram.callApi('deleteWebhook', { drop_pending_updates: false }, { signal: signal() });
      if (this.stopping.signal.aborted) return;
      this.polling = new TelegramPolling({
        telegram,
        inbox,
        logger: options.logger,
        ...(options.minBackoffMs !== undefined ? { minBackoffMs: options.minBackoffMs } : {}),
      });
      this.polling.start();
    }
    options.logger.info({ bot: me.username, mode: options.mode }, 'Telegram receiver started');
  }

  /** An update posted to the webhook route. */
  async receive(update: unknown): Promise<void> {
    if (!this.inbox) throw new TransientError('the Telegram receiver is not started yet');
    await this.inbox.handle(update);
  }

  /** Finishes the updates in hand and confirms them. A webhook stays set: Telegram keeps updates until we are back. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.connecting;
    await this.polling?.stop();
  }

  async abort(): Promise<void> {
    this.stopping.abort();
    await this.connecting;
    await this.polling?.abort();
  }

  /** The menu: private chats, group chats, and each administrator's private chat. A failure is logged, not fatal. */
  private async registerCommands(signal: () => ApiSignal): Promise<void> {
    const { telegram, options } = this;
    const menu = (chatType: 'private' | 'group', isAdmin: boolean) =>
      options
        .commands(chatType, isAdmin)
        .slice(0, MAX_COMMANDS)
        .map((c) => ({ command: c.name, description: c.description.slice(0, MAX_DESCRIPTION) || c.name }));
    const admins = [...options.adminUsers].flatMap((user) => {
      const id = /^telegram:(\d+)$/.exec(user)?.[1];
      return id === undefined ? [] : [Number(id)];
    });
    const scopes = [
      { commands: menu('private', false) },
      { commands: menu('private', false), scope: { type: 'all_private_chats' as const } },
      { commands: menu('group', false), scope: { type: 'all_group_chats' as const } },
      // An administrator who never wrote to the bot has no chat yet: that one fails alone.
      ...admins.map((chatId) => ({ commands: menu('private', true), scope: { type: 'chat' as const, chat_id: chatId } })),
    ];
    for (const { commands, scope } of scopes) {
      try {
        await telegram.callApi('setMyCommands', { commands, ...(scope ? { scope } : {}) }, { signal: signal() });
      } catch (err) {
        options.logger.warn({ err: errorMessage(err), scope: scope ?? 'default' }, 'could not register the bot commands with Telegram');
      }
    }
  }
}
