/**
 * The core of the `sender:telegram` role: one outbound envelope addressed to `telegram:<chatId>` becomes
 * Telegram messages, faithfully and within Telegram's limits.
 *
 * - A Markdown reply is rendered to Telegram HTML and split into chunks of at most 4096 characters
 *   (format.ts); a chunk Telegram cannot parse ("can't parse entities") is sent again as its plain text.
 *   More chunks than `maxChunks` go as one short message plus the whole answer as a .md document.
 * - Buttons become an inline keyboard under the last message.
 * - A `running` status shows "typing…" (best effort: skipped rather than waited for, never throws).
 * - One chat's messages go strictly in order (a lane per chat); different chats go in parallel. A chat
 *   waits for its own limits (rate-limits.ts) and for its own 429s, so it never holds back another chat.
 * - 429: wait `retry_after`, then the same chunk again. 5xx and network errors: exponential backoff
 *   (p-retry), then a TransientError so the bus redelivers. A chat that cannot be written to (403, or a
 *   400 such as "chat not found"): logged and given up, not retried or dead-lettered, because a blocked
 *   user stays blocked and a dead letter could never be replayed usefully. Any other 4xx is a
 *   PermanentError: the envelope is dead-lettered with Telegram's reason.
 *
 * Idempotent per (envelope, chunk): each chunk Telegram accepted is recorded in the hash
 * `tg:sent:<envelopeId>` (field = chunk index, value = message id) and skipped when the envelope comes
 * again. One window cannot be closed: a crash (or a lost answer) after Telegram accepted a chunk and
 * before it was recorded sends that chunk again on redelivery. Telegram offers no idempotency key, so at
 * most that one chunk is duplicated; nothing is ever lost.
 */
import pRetry from 'p-retry';
import { TelegramError, type Telegram } from 'telegraf';
import type { InlineKeyboardMarkup } from 'telegraf/types';
import { parseAddress } from '../../core/address.ts';
import type { Envelope, ReplyBody } from '../../core/envelope.ts';
import { KeyedSerial } from '../../core/keyed-serial.ts';
import { MIGRATION_TTL_MS, migratedKey } from './chat-migrations.ts';
import { apiSignal, type ApiSignal } from './telegram-client.ts';
import { TypingIndicators } from './typing-indicator.ts';
import { PermanentError, TransientError, ValidationError, errorMessage } from '../../core/errors.ts';
import { lazyChild, type Logger } from '../../core/logger.ts';
import type { Store } from '../../store/store.ts';
import { TELEGRAM_MESSAGE_LIMIT, plainTextChunks, splitTelegramMessage, toMarkdownDocument } from './format.ts';
import { TelegramRateLimiter, type TelegramRateLimits } from './rate-limits.ts';

export const DEFAULT_MAX_CHUNKS = 8;
export const LONG_ANSWER_NOTICE = 'The answer is long; here it is as a file.';
const DAY_MS = 86_400_000;
const CALLBACK_DATA_MAX_BYTES = 64;

export interface TelegramRetryOptions {
  /** Retries of one request after a 5xx or network error (default 4). */
  readonly retries?: number;
  /** First backoff delay; it doubles each retry, randomised (default 500 ms). */
  readonly minTimeoutMs?: number;
  /** Longest backoff delay (default 10 s). */
  readonly maxTimeoutMs?: number;
  /** 429 answers tolerated for one request before the envelope is handed back to the bus (default 10). */
  readonly maxFloodWaits?: number;
}

export interface TelegramDeliveryOptions {
  /** The telegraf client; it does not retry by itself. */
  readonly telegram: Telegram;
  readonly store: Store;
  readonly logger: Logger;
  /** TELEGRAM_MAX_CHUNKS: an answer needing more messages goes as a document (default 8). */
  readonly maxChunks?: number;
  readonly limits?: Partial<TelegramRateLimits>;
  readonly retry?: TelegramRetryOptions;
  /** How long delivered chunks are remembered (default 7 days; longer than any redelivery). */
  readonly sentTtlMs?: number;
  /** One API request's time limit (default 30 s; telegraf's own is 500 s). */
  readonly requestTimeoutMs?: number;
  /** How often "typing" is repeated while a chain runs, and for how long at most. */
  readonly typing?: { readonly repeatMs?: number; readonly maxMs?: number };
}

/** What `deliver` did: `undeliverable` means the chat refused (blocked, not found) and the envelope was given up. */
export interface DeliveryReport {
  readonly outcome: 'delivered' | 'undeliverable' | 'ignored';
  /** Messages (and documents) sent by this call. */
  readonly sent: number;
  /** Chunks an earlier delivery of the same envelope had sent already. */
  readonly skipped: number;
}

interface ChatTarget {
  readonly chatId: number | string;
  /** The chat id as text: the key of its lane and limits. */
  readonly key: string;
  /** Groups and channels also get the per-group limit. */
  readonly group: boolean;
}

/** One message (or document) of a reply; `field` names it in the sent-record hash. */
type Part =
  | { readonly field: string; readonly kind: 'html' | 'plain'; readonly text: string }
  | { readonly field: string; readonly kind: 'document'; readonly filename: string; readonly content: Buffer };

interface Context {
  readonly target: ChatTarget;
  readonly log: Logger;
}

/** Telegram said no for a reason that concerns the chat itself, not the message: retrying cannot help. */
const CHAT_REFUSED =
  /chat not found|user not found|deactivated|blocked|kicked|not a member|upgraded to a supergroup|have no rights|not enough rights|need administrator rights|CHAT_WRITE_FORBIDDEN|CHAT_RESTRICTED|PEER_ID_INVALID|TOPIC_CLOSED|can't initiate conversation/i;

/**
 * Delivers outbound envelopes to Telegram.
 *
 * @example
 * const delivery = new TelegramDelivery({ telegram: new Telegram(token), store, logger, maxChunks: config.telegramMaxChunks });
 * await bus.consume(senderQueue('telegram'), (envelope) => delivery.deliver(envelope), { prefetch: 32 });
 * // on shutdown
 * await delivery.close();
 */
export class TelegramDelivery {
  private readonly limiter: TelegramRateLimiter;
  /** One lane per chat, so one chat's messages never interleave. */
  private readonly lanes = new KeyedSerial();
  private readonly stopping = new AbortController();
  private readonly maxChunks: number;
  private readonly sentTtlMs: number;
  private readonly requestTimeoutMs: number;
  private readonly retry: Required<TelegramRetryOptions>;
  private readonly indicators: TypingIndicators;

  constructor(private readonly options: TelegramDeliveryOptions) {
    this.limiter = new TelegramRateLimiter(options.limits);
    this.indicators = new TypingIndicators({ store: options.store, ...options.typing });
    this.maxChunks = options.maxChunks ?? DEFAULT_MAX_CHUNKS;
    if (!Number.isInteger(this.maxChunks) || this.maxChunks < 1)
      throw new RangeError(`maxChunks must be a positive integer, got ${this.maxChunks}`);
    this.sentTtlMs = options.sentTtlMs ?? 7 * DAY_MS;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.retry = { retries: 4, minTimeoutMs: 500, maxTimeoutMs: 10_000, maxFloodWaits: 10, ...options.retry };
  }

  /**
   * Delivers one envelope. Throws TransientError (redeliver: Telegram or the network failed, or the sender
   * is stopping), PermanentError (dead-letter: Telegram refused the message itself) or ValidationError
   * (not a Telegram reply or status). Resolves when everything was sent, or the chat refused it.
   */
  async deliver(envelope: Envelope): Promise<DeliveryReport> {
    const target = await this.migrated(chatTarget(envelope));
    const log = lazyChild(this.options.logger, { envelopeId: envelope.id, chainId: envelope.chainId, chat: target.key });
    const { body } = envelope;
    switch (body.kind) {
      case 'status':
        if (body.status === 'waiting') {
          await this.indicators.end(envelope.chainId, envelope.at);
          return { outcome: 'ignored', sent: 0, skipped: 0 };
        }
        return this.startTyping(envelope, { target, log });
      case 'reply':
        // The chain's last word (or its question): no "typing" after it.
        if (body.status !== undefined || body.form !== undefined) await this.indicators.end(envelope.chainId, envelope.at);
        return this.lanes.run(target.key, () => this.sendReply(envelope.id, envelope.at, body, { target, log }));
      case 'message':
      case 'step':
        throw new ValidationError(`a ${body.kind} envelope reached the Telegram sender`);
    }
  }

  /** Stops: waits in progress end at once and their deliveries throw TransientError (the bus redelivers them). */
  async close(): Promise<void> {
    this.stopping.abort(new Error('the Telegram sender is stopping'));
    this.indicators.close();
    this.limiter.close();
    await this.lanes.idle();
  }

  // ── replies ──────────────────────────────────────────────────────────────────────────────────────────

  private async sendReply(envelopeId: string, at: string, body: ReplyBody, ctx: Context): Promise<DeliveryReport> {
    const parts = this.plan(body, at);
    if (parts.length === 0) {
      ctx.log.warn('the reply has no visible text; nothing sent');
      return { outcome: 'ignored', sent: 0, skipped: 0 };
    }
    const key = `tg:sent:${envelopeId}`;
    const done = await this.options.store.hgetall(key);
    const markup = inlineKeyboard(body.buttons ?? [], ctx.log);
    let sent = 0;
    let skipped = 0;
    for (const [i, part] of parts.entries()) {
      if (done[part.field] !== undefined) {
        skipped += 1;
        continue;
      }
      let messageId: number;
      try {
        ({ messageId, ctx } = await this.sendFollowingMigration(part, i === parts.length - 1 ? markup : undefined, ctx));
      } catch (err) {
        if (!(err instanceof TelegramError)) throw err;
        if (chatRefused(err)) {
          ctx.log.warn(
            { code: err.code, description: err.description, sent, left: parts.length - i },
            'the chat refused the reply; given up',
          );
          return { outcome: 'undeliverable', sent, skipped };
        }
        throw new PermanentError(`Telegram refused part ${i + 1} of ${parts.length} of the reply: ${err.code} ${err.description}`, {
          cause: err,
          code: 'TELEGRAM_REFUSED',
        });
      }
      await this.options.store.hset(key, { [part.field]: String(messageId) }, { ttlMs: this.sentTtlMs });
      sent += 1;
    }
    ctx.log.info({ sent, skipped, parts: parts.length, asDocument: parts.some((p) => p.kind === 'document') }, 'reply delivered');
    return { outcome: 'delivered', sent, skipped };
  }

  /**
   * Sends one part; when the group turned into a supergroup (Telegram answers with the new chat id),
   * sends it there and remembers the move for the chat's later messages.
   */
  private async sendFollowingMigration(
    part: Part,
    markup: InlineKeyboardMarkup | undefined,
    ctx: Context,
  ): Promise<{ messageId: number; ctx: Context }> {
    try {
      return { messageId: await this.sendPart(part, markup, ctx), ctx };
    } catch (err) {
      const movedTo = err instanceof TelegramError ? err.parameters?.migrate_to_chat_id : undefined;
      if (movedTo === undefined || movedTo === ctx.target.chatId) throw err;
      await this.options.store.set(migratedKey(ctx.target.key), String(movedTo), { ttlMs: MIGRATION_TTL_MS });
      ctx.log.info({ to: movedTo }, 'the group is now a supergroup with a new id; delivering there');
      const moved: Context = { ...ctx, target: { chatId: movedTo, key: String(movedTo), group: true } };
      return { messageId: await this.sendPart(part, markup, moved), ctx: moved };
    }
  }

  /** Where a chat's messages go now: a group that became a supergroup has a new id (only groups move, so only they are looked up). */
  private async migrated(target: ChatTarget): Promise<ChatTarget> {
    if (!target.group || typeof target.chatId !== 'number') return target;
    const movedTo = await this.options.store.get(migratedKey(target.key));
    return movedTo === null ? target : { chatId: Number(movedTo), key: movedTo, group: true };
  }

  /** The messages of a reply, in order. Deterministic, so a redelivery maps chunk indexes to the same texts. */
  private plan(body: ReplyBody, at: string): Part[] {
    const markdown = body.format === 'markdown';
    const chunks = markdown
      ? splitTelegramMessage(body.text).filter((html) => htmlToPlain(html).trim() !== '')
      : plainTextChunks(body.text).filter((text) => text.trim() !== '');
    if (chunks.length <= this.maxChunks) return chunks.map((text, i) => ({ field: String(i), kind: markdown ? 'html' : 'plain', text }));
    const file = toMarkdownDocument(body.text, new Date(at));
    const filename = markdown ? file.filename : file.filename.replace(/\.md$/, '.txt');
    return [
      { field: 'file:notice', kind: 'plain', text: LONG_ANSWER_NOTICE },
      { field: 'file:document', kind: 'document', filename, content: file.content },
    ];
  }

  /** Sends one part; returns the message id. An HTML chunk Telegram cannot parse goes again as its plain text. */
  private async sendPart(part: Part, markup: InlineKeyboardMarkup | undefined, ctx: Context): Promise<number> {
    const { chatId } = ctx.target;
    const extra = markup ? { reply_markup: markup } : {};
    if (part.kind === 'document') {
      const document = { source: part.content, filename: part.filename };
      const message = await this.request(ctx, (signal) =>
        this.options.telegram.callApi('sendDocument', { chat_id: chatId, document, ...extra }, { signal }),
      );
      return message.message_id;
    }
    const send = (text: string, html: boolean): Promise<number> =>
      this.request(ctx, (signal) =>
        this.options.telegram.callApi(
          'sendMessage',
          { chat_id: chatId, text, link_preview_options: { is_disabled: true }, ...(html ? { parse_mode: 'HTML' } : {}), ...extra },
          { signal },
        ),
      ).then((message) => message.message_id);
    if (part.kind === 'plain') return send(part.text, false);
    try {
      return await send(part.text, true);
    } catch (err) {
      if (!(err instanceof TelegramError && isParseError(err))) throw err;
      ctx.log.warn(
        { field: part.field, description: err.description },
        'Telegram could not parse the HTML; sending this chunk as plain text',
      );
      return send(htmlToPlain(part.text), false);
    }
  }

  // ── typing ───────────────────────────────────────────────────────────────────────────────────────────

  /** "typing" now, and again every few seconds until the chain answers (not at all when it has answered already). */
  private async startTyping(envelope: Envelope, ctx: Context): Promise<DeliveryReport> {
    const report = await this.indicators.start(envelope.chainId, envelope.at, () => this.typing(ctx));
    return report ?? { outcome: 'ignored', sent: 0, skipped: 0 };
  }

  /** Best effort: skipped while the chat is busy or out of its limit, one short attempt, never throws. */
  private async typing(ctx: Context): Promise<DeliveryReport> {
    const { target, log } = ctx;
    if (this.stopping.signal.aborted || this.lanes.has(target.key) || !this.limiter.tryAcquire(target.key, target.group)) {
      log.debug('typing indicator skipped');
      return { outcome: 'ignored', sent: 0, skipped: 0 };
    }
    try {
      const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(Math.min(this.requestTimeoutMs, 10_000))]);
      await this.options.telegram.callApi('sendChatAction', { chat_id: target.chatId, action: 'typing' }, { signal: apiSignal(signal) });
      return { outcome: 'delivered', sent: 1, skipped: 0 };
    } catch (err) {
      const retryAfter = floodWaitSeconds(err);
      if (retryAfter !== undefined) this.limiter.floodWait(target.key, target.group, retryAfter);
      log.debug({ err: errorMessage(err) }, 'typing indicator failed');
      return { outcome: 'ignored', sent: 0, skipped: 0 };
    }
  }

  // ── requests ─────────────────────────────────────────────────────────────────────────────────────────

  /**
   * One API request within the limits. 429: waits `retry_after` (this chat only) and sends the same request
   * again. 5xx and network errors: backoff, then TransientError. Other Telegram errors are rethrown as they are.
   */
  private async request<T>(ctx: Context, op: (signal: ApiSignal) => Promise<T>): Promise<T> {
    const { key, group } = ctx.target;
    const stopping = this.stopping.signal;
    for (let floods = 0; ; floods += 1) {
      try {
        return await pRetry(
          async () => {
            await this.limiter.acquire(key, group, stopping);
            return await op(apiSignal(AbortSignal.any([stopping, AbortSignal.timeout(this.requestTimeoutMs)])));
          },
          {
            retries: this.retry.retries,
            factor: 2,
            minTimeout: this.retry.minTimeoutMs,
            maxTimeout: this.retry.maxTimeoutMs,
            randomize: true,
            signal: stopping,
            shouldRetry: ({ error }) => isRetryable(error) && !stopping.aborted,
            onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
              if (isRetryable(error) && retriesLeft > 0 && !stopping.aborted) {
                ctx.log.warn({ err: errorMessage(error), attemptNumber, retriesLeft }, 'Telegram request failed; retrying');
              }
            },
          },
        );
      } catch (err) {
        if (stopping.aborted) throw new TransientError('the Telegram sender is stopping; the envelope will be redelivered', { cause: err });
        const retryAfter = floodWaitSeconds(err);
        if (retryAfter === undefined) {
          if (isRetryable(err))
            throw new TransientError(`Telegram request failed after ${this.retry.retries + 1} attempt(s): ${errorMessage(err)}`, {
              cause: err,
            });
          throw err;
        }
        if (floods >= this.retry.maxFloodWaits) {
          throw new TransientError(`Telegram answered 429 ${floods + 1} times in a row for chat ${key}`, { cause: err });
        }
        this.limiter.floodWait(key, group, retryAfter);
        ctx.log.warn({ retryAfter }, 'Telegram flood wait; sending the same message again after it');
      }
    }
  }
}

// ── helpers ────────────────────────────────────────────────────────────────────────────────────────────

function chatTarget(envelope: Envelope): ChatTarget {
  const address = envelope.to[0] ?? '';
  const { platform, chatId } = parseAddress(address);
  if (platform !== 'telegram') throw new ValidationError(`the Telegram sender got an envelope for "${address}"`);
  if (/^-?\d{1,16}$/.test(chatId)) {
    const id = Number(chatId);
    return { chatId: id, key: chatId, group: id < 0 || envelope.chatType === 'group' };
  }
  if (/^@[A-Za-z][A-Za-z0-9_]{3,31}$/.test(chatId)) return { chatId, key: chatId, group: true };
  throw new ValidationError(`"${address}" names no Telegram chat (expected telegram:<numeric id> or telegram:@channel)`);
}

/** Buttons in rows of up to three short labels; a command over 64 bytes cannot be callback data and is left out. */
function inlineKeyboard(buttons: readonly { text: string; command: string }[], log: Logger): InlineKeyboardMarkup | undefined {
  const usable = buttons.filter((button) => {
    const fits = Buffer.byteLength(button.command, 'utf8') <= CALLBACK_DATA_MAX_BYTES;
    if (!fits) log.warn({ button: button.text }, 'button left out: its command is over 64 bytes');
    return fits;
  });
  if (usable.length === 0) return undefined;
  const rows: { text: string; callback_data: string }[][] = [];
  for (const button of usable) {
    const row = rows[rows.length - 1];
    const width = (row ?? []).reduce((sum, b) => sum + b.text.length, 0) + button.text.length;
    const key = { text: button.text, callback_data: button.command };
    if (row && row.length < 3 && width <= 30) row.push(key);
    else rows.push([key]);
  }
  return { inline_keyboard: rows };
}

function isRetryable(err: unknown): boolean {
  if (err instanceof TelegramError) return err.code >= 500;
  return err instanceof Error;
}

function floodWaitSeconds(err: unknown): number | undefined {
  if (!(err instanceof TelegramError) || err.code !== 429) return undefined;
  const retryAfter = err.parameters?.retry_after;
  return typeof retryAfter === 'number' && retryAfter >= 0 ? retryAfter : 1;
}

function isParseError(err: TelegramError): boolean {
  return err.code === 400 && /can't parse entities/i.test(err.description);
}

function chatRefused(err: TelegramError): boolean {
  return err.code === 403 || (err.code === 400 && CHAT_REFUSED.test(err.description));
}

const ENTITIES: Readonly<Record<string, string>> = { lt: '<', gt: '>', quot: '"', amp: '&', apos: "'" };

function decodeHtml(text: string): string {
  return text.replace(/&(?:#(\d+)|#x([0-9a-f]+)|([a-z]+));/gi, (entity, dec?: string, hex?: string, name?: string) => {
    if (name !== undefined) return ENTITIES[name.toLowerCase()] ?? entity;
    const code = dec !== undefined ? Number.parseInt(dec, 10) : Number.parseInt(hex ?? '', 16);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : entity;
  });
}

/**
 * What a person would have read of a Telegram HTML chunk, as plain text: the tags dropped, the entities
 * decoded, and a link's address kept after its text while the chunk still fits one message.
 */
export function htmlToPlain(html: string): string {
  const strip = (withUrls: boolean): string =>
    decodeHtml(
      html
        .replace(/<a href="([^"]*)">([\s\S]*?)<\/a>/g, (_, href: string, inner: string) => {
          const text = inner.replace(/<[^>]*>/g, '');
          return withUrls && decodeHtml(text) !== decodeHtml(href) ? `${text} (${href})` : text;
        })
        .replace(/<[^>]*>/g, ''),
    );
  const full = strip(true);
  return full.length <= TELEGRAM_MESSAGE_LIMIT ? full : strip(false);
}
