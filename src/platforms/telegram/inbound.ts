import { v5 as uuidv5 } from 'uuid';
import { parseCommand } from '../../core/command.ts';
import type { Attachment, Command, NewMessage } from '../../core/envelope.ts';
import type { TelegramCallbackQuery, TelegramEntity, TelegramMessage, TelegramUpdate, TelegramUser } from './update-schema.ts';

/** Who the bot is (from getMe): group messages count only when they are addressed to it. */
export interface BotIdentity {
  readonly id: number;
  readonly username: string;
}

/** What an update asks of the receiver. */
export type Inbound =
  | {
      readonly kind: 'message';
      /** Stable across redeliveries of the same update: the envelope id and the "published" mark. */
      readonly key: string;
      readonly chatId: number;
      /** When the person sent it (ms); undefined for button presses, which are never stale. */
      readonly sentAt: number | undefined;
      readonly message: NewMessage & { readonly id: string };
      /** A button press to answer (stops the spinner on the person's button). */
      readonly callbackQueryId?: string;
    }
  | { readonly kind: 'ignored'; readonly reason: string; readonly callbackQueryId?: string }
  /** A group became a supergroup: its messages now come from (and go to) `to`. */
  | { readonly kind: 'migrated'; readonly chatId: number; readonly to: number };

/** uuid v5 namespace of the envelopes made from Telegram updates. */
const UPDATE_NAMESPACE = '2b0c6f4e-5d1a-4f7e-9a43-7c2e1d8b6a90';

/** The address of a Telegram chat. */
export function chatAddress(chatId: number): string {
  return `telegram:${chatId}`;
}

/**
 * Reads one update: a message or a button press addressed to the bot becomes a new message for the
 * agent; anything else is ignored with a reason. In private chats every text counts; in groups only a
 * command (`/cmd`, `/cmd@thisbot`), an @mention of the bot, or a reply to one of its messages.
 */
export function readUpdate(update: TelegramUpdate, bot: BotIdentity, knownCommand: (name: string) => boolean = () => true): Inbound {
  if (update.callback_query) return readButtonPress(update, update.callback_query, bot);
  const message = update.message;
  if (!message) return { kind: 'ignored', reason: 'an update kind the receiver does not handle' };
  if (message.migrate_to_chat_id !== undefined) return { kind: 'migrated', chatId: message.chat.id, to: message.migrate_to_chat_id };
  if (message.chat.type === 'channel') return { kind: 'ignored', reason: 'a channel post' };
  const author = authorOf(message);
  if (!author) return { kind: 'ignored', reason: 'not written by a person' };

  const raw = message.text ?? message.caption ?? '';
  const entities = (message.text !== undefined ? message.entities : message.caption_entities) ?? [];
  const attachments = attachmentsOf(message);
  if (raw.trim() === '' && attachments.length === 0) return { kind: 'ignored', reason: 'no text or file' };

  const isGroup = message.chat.type !== 'private';
  const parsed = parseCommand(raw);
  if (parsed?.target !== undefined && !sameName(parsed.target, bot.username)) {
    return { kind: 'ignored', reason: `a command for @${parsed.target}` };
  }
  // In a group, a bare `/cmd` may be meant for another bot: it is ours only when we know it.
  const forUs = parsed !== undefined && (parsed.target !== undefined || !isGroup || knownCommand(parsed.name));
  const mentioned = mentions(raw, entities, bot);
  if (isGroup && !forUs && !mentioned && message.reply_to_message?.from?.id !== bot.id) {
    return { kind: 'ignored', reason: 'a group message not addressed to the bot' };
  }

  const cleaned = withoutMention(raw, entities, bot);
  let found = forUs ? parsed : undefined;
  if (!found && mentioned) {
    // `@thisbot /help` is the command too (but not `@thisbot /help@otherbot`).
    const after = parseCommand(cleaned);
    if (after && (after.target === undefined || sameName(after.target, bot.username))) found = after;
  }
  const command: Command | undefined = found ? { name: found.name, args: found.args } : undefined;
  const text = command ? commandText(command) : cleaned;
  const key = `${bot.id}:${update.update_id}:${message.chat.id}:${message.message_id}`;
  return {
    kind: 'message',
    key,
    chatId: message.chat.id,
    sentAt: message.date * 1000,
    message: {
      id: uuidv5(key, UPDATE_NAMESPACE),
      from: chatAddress(message.chat.id),
      user: author,
      text,
      chatType: isGroup ? 'group' : 'private',
      ...(command ? { command } : {}),
      ...(attachments.length > 0 ? { attachments } : {}),
    },
  };
}

/** A pressed inline button: its data is the command text it stands for (`/confirm <form>`). */
function readButtonPress(update: TelegramUpdate, query: TelegramCallbackQuery, bot: BotIdentity): Inbound {
  const callbackQueryId = query.id;
  if (!query.message) return { kind: 'ignored', reason: 'a button of an inline-mode message', callbackQueryId };
  const data = query.data?.trim() ?? '';
  if (data === '') return { kind: 'ignored', reason: 'a button without data', callbackQueryId };
  const parsed = parseCommand(data);
  const chat = query.message.chat;
  const key = `${bot.id}:${update.update_id}:${chat.id}:button:${query.id}`;
  return {
    kind: 'message',
    key,
    chatId: chat.id,
    sentAt: undefined,
    callbackQueryId,
    message: {
      id: uuidv5(key, UPDATE_NAMESPACE),
      from: chatAddress(chat.id),
      user: userOf(query.from),
      text: data,
      chatType: chat.type === 'private' ? 'private' : 'group',
      ...(parsed ? { command: { name: parsed.name, args: parsed.args } } : {}),
    },
  };
}

/**
 * Who wrote a message: its sender, or, for an anonymous group admin or a channel speaking in a group,
 * that chat. Undefined for bots and for messages without an author.
 */
function authorOf(message: TelegramMessage): { id: string; name: string } | undefined {
  if (message.sender_chat) {
    const chat = message.sender_chat;
    return { id: `telegram:${chat.id}`, name: chat.title ?? String(chat.id) };
  }
  if (!message.from || message.from.is_bot) return undefined;
  return userOf(message.from);
}

function userOf(from: TelegramUser): { id: string; name: string } {
  const name = [from.first_name, from.last_name].filter(Boolean).join(' ') || from.username || String(from.id);
  return { id: `telegram:${from.id}`, name };
}

/** The largest size of a photo, or the document, as attachments (the caption is the message's text). */
function attachmentsOf(message: TelegramMessage): Attachment[] {
  const caption = message.caption !== undefined ? { caption: message.caption } : {};
  const attachments: Attachment[] = [];
  const photo = message.photo?.at(-1);
  if (photo) {
    attachments.push({ kind: 'photo', fileId: photo.file_id, mime: 'image/jpeg', ...size(photo.file_size), ...caption });
  }
  const document = message.document;
  if (document) {
    attachments.push({
      kind: 'document',
      fileId: document.file_id,
      ...(document.mime_type !== undefined ? { mime: document.mime_type } : {}),
      ...size(document.file_size),
      ...caption,
    });
  }
  return attachments;
}

function size(bytes: number | undefined): { size?: number } {
  return bytes === undefined ? {} : { size: bytes };
}

function sameName(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** The bot's own mentions: `@thisbot`, or a text mention of its user (people without a username). */
function ownMentions(text: string, entities: readonly TelegramEntity[], bot: BotIdentity): TelegramEntity[] {
  return entities.filter(
    (e) =>
      (e.type === 'mention' && sameName(text.slice(e.offset + 1, e.offset + e.length), bot.username)) ||
      (e.type === 'text_mention' && e.user?.id === bot.id),
  );
}

function mentions(text: string, entities: readonly TelegramEntity[], bot: BotIdentity): boolean {
  return ownMentions(text, entities, bot).length > 0;
}

/** The text without `@thisbot` (a text mention is a name in the sentence and stays). */
function withoutMention(text: string, entities: readonly TelegramEntity[], bot: BotIdentity): string {
  let result = text;
  const cuts = ownMentions(text, entities, bot)
    .filter((e) => e.type === 'mention')
    .sort((a, b) => b.offset - a.offset);
  for (const cut of cuts) result = result.slice(0, cut.offset) + result.slice(cut.offset + cut.length);
  const cleaned = result.replace(/[ \t]{2,}/g, ' ').trim();
  return cleaned === '' ? text.trim() : cleaned;
}

/** `/help@thisbot  a b` → `/help a b`: the command as the worker reads it, without the bot's name. */
function commandText(command: Command): string {
  return command.args ? `/${command.name} ${command.args}` : `/${command.name}`;
}
