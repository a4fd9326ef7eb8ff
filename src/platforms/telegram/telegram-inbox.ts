import type { Telegram } from 'telegraf';
import { v5 as uuidv5 } from 'uuid';
import type { EnvelopeBus } from '../../bus/envelope-bus.ts';
import { newMessageEnvelope, type Envelope } from '../../core/envelope.ts';
import { zodIssues } from '../../core/errors.ts';
import { sha256Hex } from '../../core/ids.ts';
import type { Logger } from '../../core/logger.ts';
import type { Metrics } from '../../core/metrics.ts';
import type { Store } from '../../store/store.ts';
import { MIGRATION_TTL_MS, migratedKey } from './chat-migrations.ts';
import { chatAddress, readUpdate, type BotIdentity, type Inbound } from './inbound.ts';
import { TelegramUpdateSchema } from './update-schema.ts';

/** How long an update is remembered as published: Telegram keeps an unconfirmed update for 24 h. */
const PUBLISHED_TTL_MS = 48 * 3_600_000;
/** uuid v5 namespace of the "I was offline" notices. */
const NOTICE_NAMESPACE = '9e4b2a61-0c7d-4b8e-8f15-3d6a2c9e7b14';

export interface TelegramInboxOptions {
  readonly bus: EnvelopeBus;
  readonly store: Store;
  readonly telegram: Telegram;
  readonly bot: BotIdentity;
  /** Updates older than this get one "I was offline" notice per chat instead of an answer. */
  readonly maxUpdateAgeMs: number;
  /** Whether a command name is one of ours (a bare `/cmd` in a group may be for another bot). */
  readonly knownCommand?: (name: string) => boolean;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  readonly now?: () => number;
}

type Outcome = 'published' | 'ignored' | 'duplicate' | 'stale' | 'malformed';

/**
 * Turns Telegram updates into envelopes, once each. An update is handled when its envelope is
 * confirmed by the bus; only then may its offset be committed (polling) or Telegram be answered
 * (webhook). Updates already published are remembered in the store, so an update Telegram sends
 * again after a crash is not published twice (its envelope id is derived from the update as well,
 * so even a crash between publishing and remembering is recognised downstream).
 */
export class TelegramInbox {
  private readonly now: () => number;

  constructor(private readonly options: TelegramInboxOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Handles one update; resolves when it is safe to forget it, throws when it must come again. */
  async handle(raw: unknown): Promise<void> {
    const outcome = await this.outcomeOf(raw);
    this.options.metrics?.telegramUpdates.inc({ outcome });
  }

  private async outcomeOf(raw: unknown): Promise<Outcome> {
    const { logger } = this.options;
    const parsed = TelegramUpdateSchema.safeParse(raw);
    if (!parsed.success) {
      logger.warn({ updateId: updateIdOf(raw), issues: zodIssues(parsed.error) }, 'skipped a malformed Telegram update');
      return 'malformed';
    }
    const inbound = readUpdate(parsed.data, this.options.bot, this.options.knownCommand);
    if (inbound.kind === 'migrated') {
      await this.options.store.set(migratedKey(inbound.chatId), String(inbound.to), { ttlMs: MIGRATION_TTL_MS });
      logger.info({ from: inbound.chatId, to: inbound.to }, 'a group became a supergroup; its answers go to the new chat');
      return 'ignored';
    }
    if (inbound.kind === 'ignored') {
      logger.debug({ updateId: parsed.data.update_id, reason: inbound.reason }, 'ignored a Telegram update');
      await this.answerButton(inbound.callbackQueryId);
      return 'ignored';
    }
    const mark = `tg:in:${sha256Hex(inbound.key, 32)}`;
    if ((await this.options.store.get(mark)) !== null) {
      logger.info({ updateId: parsed.data.update_id }, 'a Telegram update came again after it was published: skipped');
      await this.answerButton(inbound.callbackQueryId);
      return 'duplicate';
    }
    const stale = inbound.sentAt !== undefined && this.now() - inbound.sentAt > this.options.maxUpdateAgeMs;
    if (stale) await this.offlineNotice(inbound);
    else await this.options.bus.publish(newMessageEnvelope(inbound.message));
    await this.options.store.set(mark, '1', { ttlMs: PUBLISHED_TTL_MS });
    await this.answerButton(inbound.callbackQueryId);
    return stale ? 'stale' : 'published';
  }

  /**
   * One short notice per chat for a backlog too old to answer: the first stale update of a chat
   * sends it, the others of the same backlog (within the age limit) are skipped.
   */
  private async offlineNotice(inbound: Extract<Inbound, { kind: 'message' }>): Promise<void> {
    const { store, bus, maxUpdateAgeMs } = this.options;
    const noticed = `tg:offline:${inbound.chatId}`;
    // Claimed atomically (webhook updates of one chat can arrive at once); a retry of the update that
    // claimed it (after a crash) sends the same notice again, which the sender recognises.
    const claimed = await store.set(noticed, inbound.key, { ttlMs: maxUpdateAgeMs, ifAbsent: true });
    if (!claimed && (await store.get(noticed)) !== inbound.key) return;
    const address = chatAddress(inbound.chatId);
    const base = newMessageEnvelope({ from: address, user: null, text: '', to: [address] });
    const notice: Envelope = {
      ...base,
      // Derived from the update, so a notice published again after a crash is sent once.
      id: uuidv5(inbound.key, NOTICE_NAMESPACE),
      chainId: uuidv5(inbound.key, NOTICE_NAMESPACE),
      body: { kind: 'reply', text: offlineText(maxUpdateAgeMs), format: 'plain' },
    };
    await bus.publish(notice);
    this.options.logger.info({ chatId: inbound.chatId }, 'told a chat that its messages from the downtime were skipped');
  }

  /** Stops the spinner on a pressed button; a query too old to answer is no error. */
  private async answerButton(callbackQueryId: string | undefined): Promise<void> {
    if (callbackQueryId === undefined) return;
    try {
      await this.options.telegram.answerCbQuery(callbackQueryId);
    } catch (err) {
      this.options.logger.debug({ err, callbackQueryId }, 'could not answer a button press');
    }
  }
}

function offlineText(maxUpdateAgeMs: number): string {
  const minutes = Math.round(maxUpdateAgeMs / 60_000);
  const age = minutes >= 1 ? `${minutes} min` : `${Math.round(maxUpdateAgeMs / 1000)} s`;
  return `Sorry, I was offline and skipped the messages sent here more than ${age} ago. Please send again anything you still need.`;
}

function updateIdOf(raw: unknown): unknown {
  return typeof raw === 'object' && raw !== null && 'update_id' in raw ? raw.update_id : undefined;
}
