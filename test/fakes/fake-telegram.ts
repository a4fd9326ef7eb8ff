import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// Wire types: the subset of the Bot API objects the fake produces, shaped as Telegram sends them.
// ---------------------------------------------------------------------------------------------

export type ChatType = 'private' | 'group' | 'supergroup' | 'channel';

export interface FakeUser {
  id: number;
  is_bot: boolean;
  first_name: string;
  username?: string;
  language_code?: string;
}

export interface FakeChat {
  id: number;
  type: ChatType;
  title?: string;
  username?: string;
  first_name?: string;
}

export interface FakeEntity {
  type: string;
  offset: number;
  length: number;
  url?: string;
  language?: string;
  custom_emoji_id?: string;
}

export interface FakePhotoSize {
  file_id: string;
  file_unique_id: string;
  width: number;
  height: number;
  file_size: number;
}

export interface FakeDocument {
  file_id: string;
  file_unique_id: string;
  file_name: string;
  mime_type: string;
  file_size: number;
}

export interface FakeMessage {
  message_id: number;
  date: number;
  chat: FakeChat;
  from?: FakeUser;
  text?: string;
  entities?: FakeEntity[];
  caption?: string;
  caption_entities?: FakeEntity[];
  photo?: FakePhotoSize[];
  document?: FakeDocument;
  reply_to_message?: FakeMessage;
  reply_markup?: unknown;
  edit_date?: number;
  message_thread_id?: number;
}

export interface FakeCallbackQuery {
  id: string;
  from: FakeUser;
  message?: FakeMessage;
  chat_instance: string;
  data: string;
}

/** One update as getUpdates delivers it. Kinds the fake does not model can still be pushed raw. */
export interface FakeUpdate {
  update_id: number;
  message?: FakeMessage;
  edited_message?: FakeMessage;
  callback_query?: FakeCallbackQuery;
  [kind: string]: unknown;
}

/** What `pushUpdate` takes: any update; update_id is assigned when missing. */
export interface RawUpdate {
  update_id?: number;
  [kind: string]: unknown;
}

export interface BotCommand {
  command: string;
  description: string;
}

/** A file part of a multipart request, as recorded in `calls[].params`. */
export interface UploadedFile {
  readonly filename: string;
  readonly content: Buffer;
  /** The part's content-type ('' when the client sent none; telegraf never does). */
  readonly contentType: string;
}

export type Params = Record<string, unknown>;

/** A Bot API error answer: `{ ok: false, error_code, description, parameters? }`. */
export interface FakeErrorAnswer {
  error_code: number;
  description: string;
  retry_after?: number;
  migrate_to_chat_id?: number;
}

export type FakeOutcome = { ok: true; result: unknown } | ({ ok: false } & FakeErrorAnswer);

/** Every request that reached `/bot<token>/<method>`, in arrival order. */
export interface FakeCall {
  /** The canonical method name (Telegram matches names case-insensitively). */
  readonly method: string;
  readonly params: Params;
  /** Date.now() when the request arrived. */
  readonly at: number;
  /** Set when answered (a held getUpdates stays without one until it returns). */
  outcome?: FakeOutcome;
}

export interface SentMessage {
  chat_id: number | string;
  /** The text as sent (markup included). */
  text: string;
  parse_mode?: string;
  reply_markup?: unknown;
  /** From reply_to_message_id or reply_parameters.message_id. */
  reply_to_message_id?: number;
  message_thread_id?: number;
  message_id: number;
  at: number;
}

export interface EditedMessage {
  chat_id: number | string;
  message_id: number;
  text: string;
  parse_mode?: string;
  reply_markup?: unknown;
  at: number;
}

export interface SentDocument {
  chat_id: number | string;
  /** The uploaded file's name, or the file_id / URL when the document was sent by reference. */
  filename: string;
  caption?: string;
  parse_mode?: string;
  /** The uploaded bytes (undefined when sent by file_id or URL). */
  content?: Buffer;
  mime_type: string;
  file_id: string;
  reply_markup?: unknown;
  reply_to_message_id?: number;
  message_id: number;
  at: number;
}

export interface ChatActionRecord {
  chat_id: number | string;
  action: string;
  at: number;
}

export interface CallbackAnswer {
  callback_query_id: string;
  text?: string;
  show_alert?: boolean;
  url?: string;
  at: number;
}

export interface WebhookRecord {
  url: string;
  secret_token?: string;
  allowed_updates?: unknown;
  drop_pending_updates?: boolean;
  max_connections?: number;
  at: number;
}

export interface FakeTelegramOptions {
  /** Default '7000000001:AAFakeTokenForTests'. The bot id is the part before ':'. */
  token?: string;
  /** Default 'switchboard_bot'. */
  botUsername?: string;
  /** Default 'Switchboard'. */
  botFirstName?: string;
  /**
   * Reject a '&' that starts no entity in HTML texts (the Bot API docs require escaping it, but
   * Telegram's own parser lets it through as a literal). Default true: stricter than Telegram.
   */
  rejectBareAmpersand?: boolean;
}

export interface FromSpec {
  id: number;
  username?: string;
  first_name?: string;
  language_code?: string;
}

interface UserMessageSpec {
  chatId: number;
  from?: FromSpec;
  /** Default: 'private' for a positive chat id, 'supergroup' for a negative one. */
  chatType?: 'private' | 'group' | 'supergroup';
  /** Title of a group chat (default 'Test group'). */
  chatTitle?: string;
  /** Reply to the bot's latest message in this chat (synthesised when the bot sent none). */
  replyToBot?: boolean;
  /** Reply to this message of the chat (synthesised as a bot message when unknown). */
  replyToMessageId?: number;
  /** Unix seconds; default now. Set in the past to make an old update. */
  date?: number;
  messageThreadId?: number;
}

export interface SendTextSpec extends UserMessageSpec {
  text: string;
  /** Default: a bot_command entity for a leading /command and a mention entity for each @username. */
  entities?: FakeEntity[];
}

export interface SendPhotoSpec extends UserMessageSpec {
  caption?: string;
  captionEntities?: FakeEntity[];
  /** The bytes getFile + download serve (default: a few placeholder bytes). */
  content?: Buffer;
  width?: number;
  height?: number;
}

export interface SendDocumentSpec extends UserMessageSpec {
  fileName: string;
  /** Default: guessed from the file name's extension. */
  mimeType?: string;
  content?: Buffer | string;
  /** Default: the content's length. Above 20 MB getFile answers "file is too big". */
  fileSize?: number;
  caption?: string;
  captionEntities?: FakeEntity[];
}

export interface PressButtonSpec {
  chatId: number;
  fromId?: number;
  from?: FromSpec;
  data: string;
  /** The message carrying the keyboard; default the bot's latest message in the chat. */
  messageId?: number;
}

export type FakeReply = { result: unknown } | { error: FakeErrorAnswer };

/** Answers a call instead of the fake; return undefined to let the fake handle it (after, say, a delay). */
export type FakeResponder = (params: Params, call: FakeCall) => FakeReply | undefined | Promise<FakeReply | undefined>;

// ---------------------------------------------------------------------------------------------

const MAX_TEXT = 4096;
const MAX_CAPTION = 1024;
const MAX_DOWNLOAD = 20 * 1024 * 1024;
const DEFAULT_TOKEN = '7000000001:AAFakeTokenForTests';

class ApiError extends Error {
  constructor(readonly answer: FakeErrorAnswer) {
    super(answer.description);
  }
}

function badRequest(description: string): ApiError {
  return new ApiError({ error_code: 400, description: `Bad Request: ${description}` });
}

const JSON_FIELDS = new Set([
  'reply_markup',
  'entities',
  'caption_entities',
  'allowed_updates',
  'commands',
  'scope',
  'link_preview_options',
  'reply_parameters',
  'media',
]);
const NUMBER_FIELDS = new Set([
  'chat_id',
  'from_chat_id',
  'message_id',
  'reply_to_message_id',
  'message_thread_id',
  'offset',
  'limit',
  'timeout',
  'cache_time',
  'max_connections',
]);
const BOOLEAN_FIELDS = new Set([
  'disable_notification',
  'protect_content',
  'disable_web_page_preview',
  'disable_content_type_detection',
  'allow_sending_without_reply',
  'drop_pending_updates',
  'show_alert',
  'has_spoiler',
]);

/** Form and query values all arrive as strings; give the well-known fields their JSON types. */
function coerceField(key: string, value: string): unknown {
  if (JSON_FIELDS.has(key)) {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      return value;
    }
  }
  if (NUMBER_FIELDS.has(key) && /^-?\d+$/.test(value)) return Number(value);
  if (BOOLEAN_FIELDS.has(key) && (value === 'true' || value === 'false')) return value === 'true';
  return value;
}

const jsonObject = z.record(z.string(), z.unknown());
const botCommands = z.array(z.object({ command: z.string(), description: z.string() }));
const replyParameters = z.object({ message_id: z.number() });
const inlineKeyboard = z.object({ inline_keyboard: z.array(z.array(z.record(z.string(), z.unknown()))) });

function readRaw(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function readParams(req: IncomingMessage, url: URL): Promise<Params> {
  const params: Params = {};
  for (const [key, value] of url.searchParams) params[key] = coerceField(key, value);
  const raw = await readRaw(req);
  if (req.method !== 'POST' || raw.length === 0) return params;
  const contentType = req.headers['content-type'] ?? '';
  const type = contentType.toLowerCase();
  if (type.startsWith('multipart/form-data')) {
    let form: FormData;
    try {
      form = await new Request('http://fake-telegram.local/', {
        method: 'POST',
        headers: { 'content-type': contentType },
        body: raw,
      }).formData();
    } catch {
      throw badRequest('failed to parse multipart/form-data');
    }
    for (const [key, value] of form) {
      if (typeof value === 'string') {
        params[key] = coerceField(key, value);
      } else {
        const file: UploadedFile = { filename: value.name, content: Buffer.from(await value.arrayBuffer()), contentType: value.type };
        params[key] = file;
      }
    }
  } else if (type.startsWith('application/x-www-form-urlencoded')) {
    for (const [key, value] of new URLSearchParams(raw.toString('utf8'))) params[key] = coerceField(key, value);
  } else {
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      throw badRequest('invalid JSON in request body');
    }
    const parsed = jsonObject.safeParse(json);
    if (!parsed.success) throw badRequest('request body must be a JSON object');
    Object.assign(params, parsed.data);
  }
  // telegraf puts the method name into every multipart body; the Bot API ignores it.
  delete params.method;
  return params;
}

function isUploadedFile(value: unknown): value is UploadedFile {
  return typeof value === 'object' && value !== null && 'content' in value && Buffer.isBuffer(value.content) && 'filename' in value;
}

function str(params: Params, key: string): string | undefined {
  const value = params[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

function num(params: Params, key: string): number | undefined {
  const value = params[key];
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return Number(value);
  return undefined;
}

function bool(params: Params, key: string): boolean | undefined {
  const value = params[key];
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === 'false') return value === 'true';
  return undefined;
}

/** A chat_id as given: numeric ids as numbers, '@channel' names as strings. */
function chatIdOf(params: Params, key = 'chat_id'): number | string | undefined {
  const value = params[key];
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value !== '') return /^-?\d+$/.test(value) ? Number(value) : value;
  return undefined;
}

function replyToOf(params: Params): number | undefined {
  const direct = num(params, 'reply_to_message_id');
  if (direct !== undefined) return direct;
  const parsed = replyParameters.safeParse(params.reply_parameters);
  return parsed.success ? parsed.data.message_id : undefined;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function codePoints(text: string): number {
  return [...text].length;
}

const MIME_BY_EXTENSION: Record<string, string> = {
  md: 'text/markdown',
  txt: 'text/plain',
  csv: 'text/csv',
  html: 'text/html',
  json: 'application/json',
  pdf: 'application/pdf',
  zip: 'application/zip',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
};

function mimeFor(fileName: string): string {
  const ext = /\.([^./]+)$/.exec(fileName)?.[1]?.toLowerCase();
  return (ext && MIME_BY_EXTENSION[ext]) ?? 'application/octet-stream';
}

// ---------------------------------------------------------------------------------------------
// HTML parse mode, after Telegram's parser (tdlib parse_html), with its error messages.
// ---------------------------------------------------------------------------------------------

interface ParsedText {
  text: string;
  entities: FakeEntity[];
}

const HTML_TAGS: Record<string, string> = {
  b: 'bold',
  strong: 'bold',
  i: 'italic',
  em: 'italic',
  u: 'underline',
  ins: 'underline',
  s: 'strikethrough',
  strike: 'strikethrough',
  del: 'strikethrough',
  code: 'code',
  pre: 'pre',
  a: 'text_link',
  'tg-spoiler': 'spoiler',
  span: 'spoiler',
  blockquote: 'blockquote',
  'tg-emoji': 'custom_emoji',
};

const ENTITY_RE = /^&(?:(lt|gt|amp|quot)|#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6}));/;
const NAMED_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"' };

/** Decodes the entity at `text[i]` ('&...;'), or undefined when none starts there. */
function decodeEntity(text: string, i: number): { char: string; length: number } | undefined {
  const m = ENTITY_RE.exec(text.slice(i, i + 12));
  if (!m) return undefined;
  if (m[1]) return { char: NAMED_ENTITIES[m[1]] ?? '', length: m[0].length };
  const code = m[2] !== undefined ? Number.parseInt(m[2], 10) : Number.parseInt(m[3] ?? '', 16);
  if (code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return undefined;
  return { char: String.fromCodePoint(code), length: m[0].length };
}

function decodeAttribute(value: string): string {
  let out = '';
  for (let i = 0; i < value.length;) {
    const entity = value[i] === '&' ? decodeEntity(value, i) : undefined;
    if (entity) {
      out += entity.char;
      i += entity.length;
    } else {
      out += value[i] ?? '';
      i += 1;
    }
  }
  return out;
}

type HtmlResult = { ok: true; value: ParsedText } | { ok: false; error: string };

/** Parses Telegram's HTML subset: the plain text and its entities, or the parser's complaint. */
export function parseTelegramHtml(input: string, rejectBareAmpersand = true): HtmlResult {
  const byteOffset = (i: number): number => Buffer.byteLength(input.slice(0, i), 'utf8');
  const fail = (error: string): HtmlResult => ({ ok: false, error });
  const open: { name: string; start: number; attrs: Map<string, string> }[] = [];
  const entities: FakeEntity[] = [];
  let text = '';
  let i = 0;
  while (i < input.length) {
    const ch = input[i] ?? '';
    if (ch === '&') {
      const entity = decodeEntity(input, i);
      if (entity) {
        text += entity.char;
        i += entity.length;
        continue;
      }
      if (rejectBareAmpersand) return fail(`Unescaped "&" at byte offset ${byteOffset(i)}; use &amp;`);
      text += ch;
      i += 1;
      continue;
    }
    if (ch !== '<') {
      text += ch;
      i += 1;
      continue;
    }
    const begin = i;
    if (input[i + 1] === '/') {
      const end = /^<\/([A-Za-z][A-Za-z0-9-]*)\s*>/.exec(input.slice(i));
      const top = open.pop();
      if (!end || !top) return fail(`Unexpected end tag at byte offset ${byteOffset(begin)}`);
      const name = (end[1] ?? '').toLowerCase();
      if (name !== top.name) {
        return fail(`Unmatched end tag at byte offset ${byteOffset(begin)}, expected "</${top.name}>", found "</${name}>"`);
      }
      const length = text.length - top.start;
      const type = HTML_TAGS[top.name] ?? 'bold';
      const parent = open[open.length - 1];
      if (length > 0) {
        if (top.name === 'a') {
          const href = top.attrs.get('href');
          if (href) entities.push({ type, offset: top.start, length, url: href });
        } else if (top.name === 'tg-emoji') {
          entities.push({ type, offset: top.start, length, custom_emoji_id: top.attrs.get('emoji-id') ?? '' });
        } else if (top.name === 'code' && parent?.name === 'pre') {
          const language = /^language-(.+)$/.exec(top.attrs.get('class') ?? '')?.[1];
          if (language) parent.attrs.set('language', language);
        } else if (top.name === 'pre') {
          const language = top.attrs.get('language');
          entities.push(language ? { type, offset: top.start, length, language } : { type, offset: top.start, length });
        } else if (top.name === 'blockquote') {
          entities.push({ type: top.attrs.has('expandable') ? 'expandable_blockquote' : type, offset: top.start, length });
        } else {
          entities.push({ type, offset: top.start, length });
        }
      }
      i += end[0].length;
      continue;
    }
    const start = /^<([A-Za-z][A-Za-z0-9-]*)/.exec(input.slice(i));
    const name = (start?.[1] ?? '').toLowerCase();
    if (!start || !(name in HTML_TAGS)) return fail(`Unsupported start tag "${name}" at byte offset ${byteOffset(begin)}`);
    let j = i + start[0].length;
    const attrs = new Map<string, string>();
    let closed = false;
    while (j < input.length) {
      while (j < input.length && /\s/.test(input[j] ?? '')) j += 1;
      if (input[j] === '>') {
        j += 1;
        closed = true;
        break;
      }
      const attr = /^[A-Za-z_:][A-Za-z0-9_:.-]*/.exec(input.slice(j));
      if (!attr) return fail(`Empty attribute name in the tag "${name}" at byte offset ${byteOffset(begin)}`);
      j += attr[0].length;
      while (j < input.length && /\s/.test(input[j] ?? '')) j += 1;
      let value = '';
      if (input[j] === '=') {
        j += 1;
        while (j < input.length && /\s/.test(input[j] ?? '')) j += 1;
        const quote = input[j];
        if (quote === '"' || quote === "'") {
          const close = input.indexOf(quote, j + 1);
          if (close < 0) return fail(`Unclosed start tag at byte offset ${byteOffset(begin)}`);
          value = decodeAttribute(input.slice(j + 1, close));
          j = close + 1;
        } else {
          const bare = /^[^\s>]+/.exec(input.slice(j));
          value = decodeAttribute(bare?.[0] ?? '');
          j += bare?.[0].length ?? 0;
        }
      }
      attrs.set(attr[0].toLowerCase(), value);
    }
    if (!closed) return fail(`Unclosed start tag at byte offset ${byteOffset(begin)}`);
    if (name === 'span' && attrs.get('class') !== 'tg-spoiler') {
      return fail(`Tag "span" must have class "tg-spoiler" at byte offset ${byteOffset(begin)}`);
    }
    open.push({ name, start: text.length, attrs });
    i = j;
  }
  const unclosed = open[open.length - 1];
  if (unclosed) return fail(`Can't find end tag corresponding to start tag "${unclosed.name}"`);
  entities.sort((a, b) => a.offset - b.offset || b.length - a.length);
  return { ok: true, value: { text, entities } };
}

/** Like Telegram: the text after entity parsing, or a 400 for bad markup / bad length. */
function formatText(raw: string, parseMode: string | undefined, kind: 'text' | 'caption', rejectBareAmpersand: boolean): ParsedText {
  let parsed: ParsedText = { text: raw, entities: [] };
  if (parseMode !== undefined && parseMode !== '') {
    const mode = parseMode.toLowerCase();
    if (mode === 'html') {
      const result = parseTelegramHtml(raw, rejectBareAmpersand);
      if (!result.ok) throw badRequest(`can't parse entities: ${result.error}`);
      parsed = result.value;
    } else if (mode !== 'markdown' && mode !== 'markdownv2') {
      throw badRequest('unsupported parse_mode');
    }
  }
  if (kind === 'text') {
    if (parsed.text.trim() === '') throw badRequest('message text is empty');
    if (codePoints(parsed.text) > MAX_TEXT) throw badRequest('message is too long');
  } else if (codePoints(parsed.text) > MAX_CAPTION) {
    throw badRequest('message caption is too long');
  }
  return parsed;
}

function checkReplyMarkup(markup: unknown): void {
  const parsed = inlineKeyboard.safeParse(markup);
  if (!parsed.success) return;
  for (const row of parsed.data.inline_keyboard) {
    for (const button of row) {
      const text = button.text;
      if (typeof text !== 'string' || text === '') throw badRequest('BUTTON_TEXT_INVALID');
      const data = button.callback_data;
      if (data !== undefined && (typeof data !== 'string' || Buffer.byteLength(data) < 1 || Buffer.byteLength(data) > 64)) {
        throw badRequest('BUTTON_DATA_INVALID');
      }
    }
  }
}

function withUpdateId(update: RawUpdate, id: number): FakeUpdate {
  // A raw update is trusted to be shaped as Telegram's; `rememberUpdate` checks before relying on it.
  return { ...update, update_id: id } as FakeUpdate;
}

const messageShape = z.object({ message_id: z.number(), chat: z.object({ id: z.union([z.number(), z.string()]) }) });

/** The update kind getUpdates' allowed_updates filters on: the first key besides update_id. */
function updateKind(update: FakeUpdate): string | undefined {
  return Object.keys(update).find((key) => key !== 'update_id');
}

const BOT_METHODS = [
  'getMe',
  'deleteWebhook',
  'setWebhook',
  'getWebhookInfo',
  'getUpdates',
  'setMyCommands',
  'getMyCommands',
  'deleteMyCommands',
  'sendMessage',
  'editMessageText',
  'deleteMessage',
  'sendChatAction',
  'sendDocument',
  'answerCallbackQuery',
  'getFile',
] as const;
type BotMethod = (typeof BOT_METHODS)[number];
const CANONICAL = new Map<string, string>(BOT_METHODS.map((m) => [m.toLowerCase(), m]));

interface StoredFile {
  file_id: string;
  file_unique_id: string;
  file_size: number;
  file_path: string;
  content: Buffer;
}

interface HeldPoll {
  readonly limit: number;
  readonly allowed: readonly string[];
  readonly timer: NodeJS.Timeout;
  readonly resolve: (updates: FakeUpdate[]) => void;
  readonly reject: (error: ApiError) => void;
}

interface Watcher {
  readonly check: () => boolean;
  readonly cancel: () => void;
}

/**
 * A Telegram Bot API server on loopback, speaking the real HTTP protocol, for telegraf pointed at it
 * with `new Telegraf(token, { telegram: { apiRoot: fake.apiRoot } })`. Records every call; tests
 * push user activity with `sendText` / `sendPhoto` / `sendDocument` / `pressButton` / `pushUpdate`,
 * which getUpdates long polls deliver until confirmed by a later offset.
 */
export class FakeTelegram {
  readonly calls: FakeCall[] = [];
  readonly botId: number;
  readonly botUser: FakeUser;
  private readonly rejectBareAmpersand: boolean;
  private pending: FakeUpdate[] = [];
  private confirmed = 0;
  private nextUpdateId = 100_000_001;
  private nextMessageId = 1;
  private nextFileNumber = 1;
  private nextCallbackId = 1;
  private poll: HeldPoll | undefined;
  private webhookState: WebhookRecord | undefined;
  private webhookBusy = false;
  private readonly webhookLog: { update_id: number; status: number; at: number }[] = [];
  /** Wait before posting an update the webhook refused again (Telegram waits longer). */
  webhookRetryMs = 100;
  private readonly sentLog: SentMessage[] = [];
  private readonly editLog: EditedMessage[] = [];
  private readonly documentLog: SentDocument[] = [];
  private readonly actionLog: ChatActionRecord[] = [];
  private readonly callbackLog: CallbackAnswer[] = [];
  private readonly deletedLog: { chat_id: number | string; message_id: number; at: number }[] = [];
  private readonly commandSets = new Map<string, BotCommand[]>();
  private readonly messages = new Map<string, FakeMessage>();
  private readonly chats = new Map<string, FakeChat>();
  private readonly files = new Map<string, StoredFile>();
  private readonly callbackIds = new Set<string>();
  private readonly failures = new Map<string, FakeErrorAnswer[]>();
  private readonly responders = new Map<string, FakeResponder>();
  private readonly watchers = new Set<Watcher>();
  private closed = false;

  private constructor(
    private readonly server: Server,
    readonly apiRoot: string,
    readonly token: string,
    readonly botUsername: string,
    botFirstName: string,
    rejectBareAmpersand: boolean,
  ) {
    const id = Number(/^(\d+):/.exec(token)?.[1] ?? '7000000001');
    this.botId = id;
    this.botUser = { id, is_bot: true, first_name: botFirstName, username: botUsername };
    this.rejectBareAmpersand = rejectBareAmpersand;
  }

  static async start(options: FakeTelegramOptions = {}): Promise<FakeTelegram> {
    let fake: FakeTelegram | undefined;
    const server = createServer((req, res) => {
      if (!fake) {
        res.writeHead(503).end();
        return;
      }
      fake.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent && !res.destroyed) {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ ok: false, error_code: 500, description: `Internal Server Error: ${String(err)}` }));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    fake = new FakeTelegram(
      server,
      `http://127.0.0.1:${port}`,
      options.token ?? DEFAULT_TOKEN,
      options.botUsername ?? 'switchboard_bot',
      options.botFirstName ?? 'Switchboard',
      options.rejectBareAmpersand ?? true,
    );
    return fake;
  }

  // --- recorded traffic ----------------------------------------------------------------------

  /** sendMessage calls Telegram accepted, in order (failed calls are only in `calls`). */
  get sent(): readonly SentMessage[] {
    return this.sentLog;
  }

  /** editMessageText calls Telegram accepted, in order. */
  get edits(): readonly EditedMessage[] {
    return this.editLog;
  }

  /** sendDocument calls Telegram accepted, in order. */
  get documents(): readonly SentDocument[] {
    return this.documentLog;
  }

  get chatActions(): readonly ChatActionRecord[] {
    return this.actionLog;
  }

  get callbackAnswers(): readonly CallbackAnswer[] {
    return this.callbackLog;
  }

  get deletions(): readonly { chat_id: number | string; message_id: number; at: number }[] {
    return this.deletedLog;
  }

  /** The command list of the default scope and language (what setMyCommands without scope set). */
  get commands(): readonly BotCommand[] {
    return this.commandsFor();
  }

  /** The command list set for a scope (e.g. `{ type: 'all_private_chats' }`) and language code. */
  commandsFor(scope?: { type: string; chat_id?: number | string; user_id?: number }, languageCode?: string): readonly BotCommand[] {
    return this.commandSets.get(commandKey(scope, languageCode)) ?? [];
  }

  /** Every POST of an update to the webhook: its update_id and the HTTP status (0: no answer). */
  get webhookDeliveries(): readonly { update_id: number; status: number; at: number }[] {
    return this.webhookLog;
  }

  /** What setWebhook set (undefined after deleteWebhook or before any setWebhook). */
  get webhook(): WebhookRecord | undefined {
    return this.webhookState;
  }

  /** Texts (as sent, markup included) the bot sent to a chat with sendMessage, in order. */
  messagesTo(chatId: number | string): string[] {
    return this.sentLog.filter((m) => m.chat_id === chatId).map((m) => m.text);
  }

  /** A message as it is now (after edits), user's or bot's; undefined when unknown. */
  message(chatId: number | string, messageId: number): FakeMessage | undefined {
    return this.messages.get(messageKey(chatId, messageId));
  }

  /** Calls of one method, in order. */
  callsOf(method: string): FakeCall[] {
    const canonical = CANONICAL.get(method.toLowerCase()) ?? method;
    return this.calls.filter((c) => c.method === canonical);
  }

  /** Updates pushed and not yet confirmed by a getUpdates offset. */
  get pendingUpdates(): readonly FakeUpdate[] {
    return this.pending;
  }

  /** The highest offset a getUpdates call has confirmed (0 before any): every update_id below it is done. */
  get confirmedOffset(): number {
    return this.confirmed;
  }

  // --- fault injection -----------------------------------------------------------------------

  /** The next `count` calls of `method` answer this error (a 429 carries `parameters.retry_after`). */
  failNext(method: string, count: number, answer: FakeErrorAnswer): void {
    const key = method.toLowerCase();
    const queue = this.failures.get(key) ?? [];
    for (let i = 0; i < count; i += 1) queue.push({ ...answer });
    this.failures.set(key, queue);
  }

  /** Answers every call of `method` with `responder` (undefined removes it). */
  respondWith(method: string, responder: FakeResponder | undefined): void {
    if (responder) this.responders.set(method.toLowerCase(), responder);
    else this.responders.delete(method.toLowerCase());
  }

  // --- user activity -------------------------------------------------------------------------

  /** Queues a raw update (update_id assigned when missing) and wakes a held long poll. */
  pushUpdate(update: RawUpdate): FakeUpdate {
    const id = update.update_id ?? this.nextUpdateId;
    this.nextUpdateId = Math.max(this.nextUpdateId, id + 1);
    const full = withUpdateId(update, id);
    this.rememberUpdate(full);
    this.pending.push(full);
    this.pending.sort((a, b) => a.update_id - b.update_id);
    this.deliverToPoll();
    this.deliverToWebhook();
    this.changed();
    return full;
  }

  /** A user sends a text message. */
  sendText(spec: SendTextSpec): FakeUpdate {
    const message = this.userMessage(spec);
    message.text = spec.text;
    const entities = spec.entities ?? this.autoEntities(spec.text);
    if (entities.length > 0) message.entities = entities;
    return this.pushUpdate({ message });
  }

  /** A user sends a photo (three sizes, as Telegram delivers). */
  sendPhoto(spec: SendPhotoSpec): FakeUpdate {
    const message = this.userMessage(spec);
    const content = spec.content ?? Buffer.from('fake-jpeg-bytes');
    const width = spec.width ?? 1280;
    const height = spec.height ?? 960;
    message.photo = [90, 320, 1280].map((side) => {
      const scale = Math.min(1, side / Math.max(width, height));
      const file = this.storeFile(content, 'photos', 'jpg');
      return {
        file_id: file.file_id,
        file_unique_id: file.file_unique_id,
        width: Math.round(width * scale),
        height: Math.round(height * scale),
        file_size: file.file_size,
      };
    });
    this.addCaption(message, spec);
    return this.pushUpdate({ message });
  }

  /** A user sends a document; getFile + the file URL serve `content`. */
  sendDocument(spec: SendDocumentSpec): FakeUpdate {
    const message = this.userMessage(spec);
    const content = typeof spec.content === 'string' ? Buffer.from(spec.content, 'utf8') : (spec.content ?? Buffer.alloc(0));
    const ext = /\.([^./]+)$/.exec(spec.fileName)?.[1] ?? 'dat';
    const file = this.storeFile(content, 'documents', ext, spec.fileSize);
    message.document = {
      file_id: file.file_id,
      file_unique_id: file.file_unique_id,
      file_name: spec.fileName,
      mime_type: spec.mimeType ?? mimeFor(spec.fileName),
      file_size: file.file_size,
    };
    this.addCaption(message, spec);
    return this.pushUpdate({ message });
  }

  /** A user presses an inline keyboard button: a callback_query update. */
  pressButton(spec: PressButtonSpec): FakeUpdate {
    const chat = this.chatFor(spec.chatId);
    const from = this.userFor(spec.from ?? { id: spec.fromId ?? (chat.type === 'private' ? spec.chatId : 1001) });
    const message =
      (spec.messageId !== undefined ? this.message(spec.chatId, spec.messageId) : this.lastBotMessage(spec.chatId)) ??
      this.syntheticBotMessage(chat, spec.messageId);
    const id = `${this.botId}${String(this.nextCallbackId++).padStart(6, '0')}`;
    this.callbackIds.add(id);
    const query: FakeCallbackQuery = { id, from, message, chat_instance: `-${Math.abs(spec.chatId)}0042`, data: spec.data };
    return this.pushUpdate({ callback_query: query });
  }

  // --- waiting -------------------------------------------------------------------------------

  /**
   * Resolves with the first truthy value `probe` returns, re-checked whenever the fake's state
   * changes (a call arrives or is answered, an update is pushed); rejects after `timeoutMs`.
   */
  waitUntil<T>(probe: () => T | undefined | null | false, timeoutMs = 5000): Promise<T> {
    const first = probe();
    if (first) return Promise.resolve(first);
    return new Promise<T>((resolve, reject) => {
      const watcher: Watcher = {
        check: () => {
          const value = probe();
          if (!value) return false;
          clearTimeout(timer);
          this.watchers.delete(watcher);
          resolve(value);
          return true;
        },
        cancel: () => {
          clearTimeout(timer);
          this.watchers.delete(watcher);
          reject(new Error('FakeTelegram.waitUntil: the fake was closed'));
        },
      };
      const timer = setTimeout(() => {
        this.watchers.delete(watcher);
        reject(new Error(`FakeTelegram.waitUntil: condition not met within ${timeoutMs} ms`));
      }, timeoutMs);
      this.watchers.add(watcher);
    });
  }

  /** Waits for the next answered call of `method` (matching `predicate`) beyond those already answered. */
  waitForCall(method: string, predicate: (call: FakeCall) => boolean = () => true, timeoutMs = 5000): Promise<FakeCall> {
    const seen = this.callsOf(method).filter((c) => c.outcome && predicate(c)).length;
    return this.waitUntil(() => this.callsOf(method).filter((c) => c.outcome && predicate(c))[seen], timeoutMs);
  }

  /** Closes every connection, held long polls included, and the server; pending waitUntil calls reject. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const poll = this.poll;
    this.poll = undefined;
    if (poll) {
      clearTimeout(poll.timer);
      poll.resolve([]);
    }
    for (const watcher of [...this.watchers]) watcher.cancel();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // --- HTTP ------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake-telegram.local');
    const fileRoute = /^\/file\/bot([^/]+)\/(.+)$/.exec(url.pathname);
    if (fileRoute) {
      await readRaw(req);
      this.serveFile(decodeURIComponent(fileRoute[1] ?? ''), decodeURIComponent(fileRoute[2] ?? ''), res);
      return;
    }
    const route = /^\/bot([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (!route) {
      await readRaw(req);
      this.answer(res, { ok: false, error_code: 404, description: 'Not Found' });
      return;
    }
    const token = decodeURIComponent(route[1] ?? '');
    const requested = route[2] ?? '';
    let params: Params = {};
    let parseError: ApiError | undefined;
    try {
      params = await readParams(req, url);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      parseError = err;
    }
    const method = CANONICAL.get(requested.toLowerCase()) ?? requested;
    const call: FakeCall = { method, params, at: Date.now() };
    this.calls.push(call);
    this.changed();
    const outcome = await this.outcomeOf(call, token, parseError, res);
    call.outcome = outcome;
    this.answer(res, outcome);
    this.changed();
  }

  private async outcomeOf(call: FakeCall, token: string, parseError: ApiError | undefined, res: ServerResponse): Promise<FakeOutcome> {
    try {
      if (token !== this.token) throw new ApiError({ error_code: 401, description: 'Unauthorized' });
      if (parseError) throw parseError;
      const key = call.method.toLowerCase();
      const failure = this.failures.get(key)?.shift();
      if (failure) throw new ApiError(failure);
      const responder = this.responders.get(key);
      const reply = responder ? await responder(call.params, call) : undefined;
      if (reply) {
        if ('error' in reply) throw new ApiError(reply.error);
        return { ok: true, result: reply.result };
      }
      const method = CANONICAL.get(key);
      if (!method) throw new ApiError({ error_code: 404, description: 'Not Found: method not found' });
      let result: unknown;
      try {
        result = this.dispatch(method as BotMethod, call.params, res);
      } finally {
        // A held getUpdates has already confirmed its offset: let waiters see that before it returns.
        this.changed();
      }
      return { ok: true, result: await result };
    } catch (err) {
      if (err instanceof ApiError) return { ok: false, ...err.answer };
      throw err;
    }
  }

  private answer(res: ServerResponse, outcome: FakeOutcome): void {
    if (res.writableEnded || res.destroyed) return;
    let body: unknown;
    let status = 200;
    if (outcome.ok) {
      body = { ok: true, result: outcome.result };
    } else {
      status = outcome.error_code;
      const parameters: { retry_after?: number; migrate_to_chat_id?: number } = {};
      if (outcome.retry_after !== undefined) parameters.retry_after = outcome.retry_after;
      if (outcome.migrate_to_chat_id !== undefined) parameters.migrate_to_chat_id = outcome.migrate_to_chat_id;
      body = {
        ok: false,
        error_code: outcome.error_code,
        description: outcome.description,
        ...(Object.keys(parameters).length > 0 ? { parameters } : {}),
      };
    }
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private serveFile(token: string, filePath: string, res: ServerResponse): void {
    const file = token === this.token ? [...this.files.values()].find((f) => f.file_path === filePath) : undefined;
    if (!file) {
      this.answer(res, { ok: false, error_code: 404, description: 'Not Found' });
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(file.content.length) });
    res.end(file.content);
  }

  // --- methods ---------------------------------------------------------------------------------

  private dispatch(method: BotMethod, params: Params, res: ServerResponse): unknown {
    switch (method) {
      case 'getMe':
        return { ...this.botUser, can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false };
      case 'deleteWebhook':
        this.webhookState = undefined;
        if (bool(params, 'drop_pending_updates')) this.pending = [];
        return true;
      case 'setWebhook':
        return this.setWebhook(params);
      case 'getWebhookInfo':
        return {
          url: this.webhookState?.url ?? '',
          has_custom_certificate: false,
          pending_update_count: this.pending.length,
          ...(this.webhookState?.max_connections !== undefined ? { max_connections: this.webhookState.max_connections } : {}),
        };
      case 'getUpdates':
        return this.getUpdates(params, res);
      case 'setMyCommands':
        return this.setMyCommands(params);
      case 'getMyCommands':
        return this.commandSets.get(commandKey(params.scope, str(params, 'language_code'))) ?? [];
      case 'deleteMyCommands':
        this.commandSets.delete(commandKey(params.scope, str(params, 'language_code')));
        return true;
      case 'sendMessage':
        return this.sendMessage(params);
      case 'editMessageText':
        return this.editMessageText(params);
      case 'deleteMessage':
        return this.deleteMessage(params);
      case 'sendChatAction':
        return this.sendChatAction(params);
      case 'sendDocument':
        return this.botSendDocument(params);
      case 'answerCallbackQuery':
        return this.answerCallbackQuery(params);
      case 'getFile':
        return this.getFile(params);
    }
  }

  private setWebhook(params: Params): true {
    const url = str(params, 'url') ?? '';
    if (url === '') {
      this.webhookState = undefined;
      return true;
    }
    if (!/^https?:\/\//.test(url)) throw badRequest('bad webhook: An HTTPS URL must be provided for webhook');
    const record: WebhookRecord = { url, at: Date.now() };
    const secret = str(params, 'secret_token');
    if (secret !== undefined) {
      if (!/^[A-Za-z0-9_-]{1,256}$/.test(secret)) throw badRequest('secret token contains unallowed characters');
      record.secret_token = secret;
    }
    if (params.allowed_updates !== undefined) record.allowed_updates = params.allowed_updates;
    const drop = bool(params, 'drop_pending_updates');
    if (drop !== undefined) record.drop_pending_updates = drop;
    const maxConnections = num(params, 'max_connections');
    if (maxConnections !== undefined) record.max_connections = maxConnections;
    if (drop) this.pending = [];
    this.webhookState = record;
    queueMicrotask(() => this.deliverToWebhook());
    const poll = this.poll;
    this.poll = undefined;
    if (poll) {
      clearTimeout(poll.timer);
      poll.reject(new ApiError({ error_code: 409, description: 'Conflict: terminated by setWebhook request' }));
    }
    return true;
  }

  private getUpdates(params: Params, res: ServerResponse): FakeUpdate[] | Promise<FakeUpdate[]> {
    if (this.webhookState) {
      throw new ApiError({
        error_code: 409,
        description: "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
      });
    }
    const offset = num(params, 'offset') ?? 0;
    const limit = Math.min(100, Math.max(1, num(params, 'limit') ?? 100));
    const timeout = Math.max(0, num(params, 'timeout') ?? 0);
    const allowedParsed = z.array(z.string()).safeParse(params.allowed_updates);
    const allowed = allowedParsed.success ? allowedParsed.data : [];
    if (offset > 0) {
      this.pending = this.pending.filter((u) => u.update_id >= offset);
      this.confirmed = Math.max(this.confirmed, offset);
    } else if (offset < 0) {
      const kept = this.pending.slice(offset);
      this.pending = kept;
      this.confirmed = Math.max(this.confirmed, kept[0]?.update_id ?? this.nextUpdateId);
    }
    // Telegram answers the older of two concurrent long polls with a conflict.
    const previous = this.poll;
    this.poll = undefined;
    if (previous) {
      clearTimeout(previous.timer);
      previous.reject(
        new ApiError({
          error_code: 409,
          description: 'Conflict: terminated by other getUpdates request; make sure that only one bot instance is running',
        }),
      );
    }
    const ready = this.select(limit, allowed);
    if (ready.length > 0 || timeout === 0 || this.closed) return ready;
    return new Promise<FakeUpdate[]>((resolve, reject) => {
      const held: HeldPoll = {
        limit,
        allowed,
        resolve,
        reject,
        timer: setTimeout(() => {
          if (this.poll === held) this.poll = undefined;
          resolve(this.select(limit, allowed));
        }, timeout * 1000),
      };
      this.poll = held;
      // The client gave up (telegraf aborts its poll on stop()): forget the poll.
      res.on('close', () => {
        if (this.poll !== held) return;
        this.poll = undefined;
        clearTimeout(held.timer);
        resolve([]);
      });
    });
  }

  private select(limit: number, allowed: readonly string[]): FakeUpdate[] {
    const matching = allowed.length === 0 ? this.pending : this.pending.filter((u) => allowed.includes(updateKind(u) ?? ''));
    return matching.slice(0, limit);
  }

  /**
   * While a webhook is set, pending updates are POSTed to it one at a time, oldest first, with the
   * secret token header, as Telegram does; an update leaves the queue when the bot answers 2xx, and
   * is sent again after `webhookRetryMs` otherwise.
   */
  private deliverToWebhook(): void {
    if (this.webhookBusy) return;
    this.webhookBusy = true;
    void (async () => {
      try {
        for (;;) {
          const hook = this.webhookState;
          const update = this.pending[0];
          if (!hook || !update || this.closed) return;
          let status = 0;
          try {
            const response = await fetch(hook.url, {
              method: 'POST',
              headers: {
                'content-type': 'application/json',
                ...(hook.secret_token !== undefined ? { 'x-telegram-bot-api-secret-token': hook.secret_token } : {}),
              },
              body: JSON.stringify(update),
              signal: AbortSignal.timeout(10_000),
            });
            status = response.status;
            await response.arrayBuffer();
          } catch {
            status = 0;
          }
          this.webhookLog.push({ update_id: update.update_id, status, at: Date.now() });
          if (status >= 200 && status < 300) {
            this.pending = this.pending.filter((u) => u.update_id !== update.update_id);
            this.confirmed = Math.max(this.confirmed, update.update_id + 1);
          } else {
            await new Promise((resolve) => setTimeout(resolve, this.webhookRetryMs));
          }
          this.changed();
        }
      } finally {
        this.webhookBusy = false;
      }
    })();
  }

  private deliverToPoll(): void {
    const poll = this.poll;
    if (!poll) return;
    const ready = this.select(poll.limit, poll.allowed);
    if (ready.length === 0) return;
    this.poll = undefined;
    clearTimeout(poll.timer);
    poll.resolve(ready);
  }

  private setMyCommands(params: Params): true {
    const parsed = botCommands.safeParse(params.commands);
    if (!parsed.success) throw badRequest('field "commands" must be an Array of BotCommand');
    if (parsed.data.length > 100) throw badRequest('too many commands specified');
    for (const command of parsed.data) {
      if (!/^[a-z0-9_]{1,32}$/.test(command.command)) throw badRequest('BOT_COMMAND_INVALID');
      if (command.description.length < 1 || command.description.length > 256) throw badRequest('BOT_COMMAND_DESCRIPTION_INVALID');
    }
    this.commandSets.set(commandKey(params.scope, str(params, 'language_code')), parsed.data);
    return true;
  }

  private requireChat(params: Params): number | string {
    const chatId = chatIdOf(params);
    if (chatId === undefined) throw badRequest('chat_id is empty');
    return chatId;
  }

  private sendMessage(params: Params): FakeMessage {
    const chatId = this.requireChat(params);
    const raw = str(params, 'text');
    if (raw === undefined || raw === '') throw badRequest('message text is empty');
    const parseMode = str(params, 'parse_mode');
    const parsed = formatText(raw, parseMode, 'text', this.rejectBareAmpersand);
    checkReplyMarkup(params.reply_markup);
    const message = this.botMessage(chatId, params);
    message.text = parsed.text;
    if (parsed.entities.length > 0) message.entities = parsed.entities;
    const record: SentMessage = { chat_id: chatId, text: raw, message_id: message.message_id, at: Date.now() };
    if (parseMode !== undefined) record.parse_mode = parseMode;
    if (params.reply_markup !== undefined) record.reply_markup = params.reply_markup;
    const replyTo = replyToOf(params);
    if (replyTo !== undefined) record.reply_to_message_id = replyTo;
    const thread = num(params, 'message_thread_id');
    if (thread !== undefined) record.message_thread_id = thread;
    this.sentLog.push(record);
    return message;
  }

  private editMessageText(params: Params): FakeMessage | true {
    const raw = str(params, 'text');
    if (raw === undefined || raw === '') throw badRequest('message text is empty');
    const parseMode = str(params, 'parse_mode');
    const parsed = formatText(raw, parseMode, 'text', this.rejectBareAmpersand);
    checkReplyMarkup(params.reply_markup);
    if (str(params, 'inline_message_id') !== undefined) return true;
    const chatId = this.requireChat(params);
    const messageId = num(params, 'message_id');
    if (messageId === undefined) throw badRequest('message identifier is not specified');
    const message = this.messages.get(messageKey(chatId, messageId));
    if (!message) throw badRequest('message to edit not found');
    if (message.from?.id !== this.botId) throw badRequest("message can't be edited");
    if (message.text === undefined) throw badRequest('there is no text in the message to edit');
    const sameText = message.text === parsed.text && JSON.stringify(message.entities ?? []) === JSON.stringify(parsed.entities);
    const sameMarkup = JSON.stringify(message.reply_markup ?? null) === JSON.stringify(params.reply_markup ?? null);
    if (sameText && sameMarkup) {
      throw badRequest(
        'message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message',
      );
    }
    message.text = parsed.text;
    if (parsed.entities.length > 0) message.entities = parsed.entities;
    else delete message.entities;
    if (params.reply_markup !== undefined) message.reply_markup = params.reply_markup;
    else delete message.reply_markup;
    message.edit_date = nowSeconds();
    const record: EditedMessage = { chat_id: chatId, message_id: messageId, text: raw, at: Date.now() };
    if (parseMode !== undefined) record.parse_mode = parseMode;
    if (params.reply_markup !== undefined) record.reply_markup = params.reply_markup;
    this.editLog.push(record);
    return message;
  }

  private deleteMessage(params: Params): true {
    const chatId = this.requireChat(params);
    const messageId = num(params, 'message_id');
    if (messageId === undefined) throw badRequest('message identifier is not specified');
    if (!this.messages.delete(messageKey(chatId, messageId))) throw badRequest('message to delete not found');
    this.deletedLog.push({ chat_id: chatId, message_id: messageId, at: Date.now() });
    return true;
  }

  private sendChatAction(params: Params): true {
    const chatId = this.requireChat(params);
    const action = str(params, 'action');
    const known = [
      'typing',
      'upload_photo',
      'record_video',
      'upload_video',
      'record_voice',
      'upload_voice',
      'upload_document',
      'choose_sticker',
      'find_location',
      'record_video_note',
      'upload_video_note',
    ];
    if (action === undefined || !known.includes(action)) throw badRequest('wrong parameter action in request');
    this.actionLog.push({ chat_id: chatId, action, at: Date.now() });
    return true;
  }

  private botSendDocument(params: Params): FakeMessage {
    const chatId = this.requireChat(params);
    const document = params.document;
    let filename: string;
    let content: Buffer | undefined;
    let file: StoredFile;
    if (isUploadedFile(document)) {
      filename = document.filename;
      content = document.content;
      if (content.length === 0) throw badRequest('file must be non-empty');
      const ext = /\.([^./]+)$/.exec(filename)?.[1] ?? 'dat';
      file = this.storeFile(content, 'documents', ext);
    } else if (typeof document === 'string' && document !== '') {
      filename = document;
      const known = this.files.get(document);
      if (known) file = known;
      else if (/^https?:\/\//.test(document)) file = this.storeFile(Buffer.alloc(0), 'documents', 'dat');
      else throw badRequest('wrong file identifier/HTTP URL specified');
    } else {
      throw badRequest('there is no document in the request');
    }
    const caption = str(params, 'caption');
    const parseMode = str(params, 'parse_mode');
    const parsedCaption = caption !== undefined ? formatText(caption, parseMode, 'caption', this.rejectBareAmpersand) : undefined;
    checkReplyMarkup(params.reply_markup);
    const mimeType = mimeFor(filename);
    const message = this.botMessage(chatId, params);
    message.document = {
      file_id: file.file_id,
      file_unique_id: file.file_unique_id,
      file_name: filename,
      mime_type: mimeType,
      file_size: file.file_size,
    };
    if (parsedCaption) {
      message.caption = parsedCaption.text;
      if (parsedCaption.entities.length > 0) message.caption_entities = parsedCaption.entities;
    }
    const record: SentDocument = {
      chat_id: chatId,
      filename,
      mime_type: mimeType,
      file_id: file.file_id,
      message_id: message.message_id,
      at: Date.now(),
    };
    if (content !== undefined) record.content = content;
    if (caption !== undefined) record.caption = caption;
    if (parseMode !== undefined) record.parse_mode = parseMode;
    if (params.reply_markup !== undefined) record.reply_markup = params.reply_markup;
    const replyTo = replyToOf(params);
    if (replyTo !== undefined) record.reply_to_message_id = replyTo;
    this.documentLog.push(record);
    return message;
  }

  private answerCallbackQuery(params: Params): true {
    const id = str(params, 'callback_query_id');
    if (id === undefined || !this.callbackIds.has(id)) {
      throw badRequest('query is too old and response timeout expired or query ID is invalid');
    }
    this.callbackIds.delete(id);
    const record: CallbackAnswer = { callback_query_id: id, at: Date.now() };
    const text = str(params, 'text');
    if (text !== undefined) record.text = text;
    const alert = bool(params, 'show_alert');
    if (alert !== undefined) record.show_alert = alert;
    const url = str(params, 'url');
    if (url !== undefined) record.url = url;
    this.callbackLog.push(record);
    return true;
  }

  private getFile(params: Params): { file_id: string; file_unique_id: string; file_size: number; file_path: string } {
    const id = str(params, 'file_id');
    const file = id !== undefined ? this.files.get(id) : undefined;
    if (!file) throw badRequest('invalid file_id');
    if (file.file_size > MAX_DOWNLOAD) throw badRequest('file is too big');
    return { file_id: file.file_id, file_unique_id: file.file_unique_id, file_size: file.file_size, file_path: file.file_path };
  }

  // --- state helpers -----------------------------------------------------------------------------

  private changed(): void {
    for (const watcher of [...this.watchers]) watcher.check();
  }

  private storeFile(content: Buffer, folder: string, ext: string, size?: number): StoredFile {
    const n = this.nextFileNumber++;
    const prefix = folder === 'photos' ? 'AgACAgIAAxkBAAI' : 'BQACAgIAAxkBAAI';
    const file: StoredFile = {
      file_id: `${prefix}${String(n).padStart(6, '0')}fake`,
      file_unique_id: `AQAD${String(n).padStart(6, '0')}`,
      file_size: size ?? content.length,
      file_path: `${folder}/file_${n}.${ext}`,
      content,
    };
    this.files.set(file.file_id, file);
    return file;
  }

  private chatFor(chatId: number | string, type?: 'private' | 'group' | 'supergroup', title?: string): FakeChat {
    const key = String(chatId);
    const known = this.chats.get(key);
    if (known && type === undefined && title === undefined) return known;
    let chat: FakeChat;
    if (typeof chatId === 'string') {
      chat = { id: -1_000_000_000_001, type: 'channel', title: chatId.replace(/^@/, ''), username: chatId.replace(/^@/, '') };
    } else {
      const chatType = type ?? known?.type ?? (chatId > 0 ? 'private' : chatId <= -1_000_000_000_000 ? 'supergroup' : 'group');
      chat =
        chatType === 'private'
          ? { id: chatId, type: chatType, first_name: known?.first_name ?? 'Test', username: known?.username ?? `user${chatId}` }
          : { id: chatId, type: chatType, title: title ?? known?.title ?? 'Test group' };
    }
    this.chats.set(key, chat);
    return chat;
  }

  private userFor(from: FromSpec): FakeUser {
    const user: FakeUser = {
      id: from.id,
      is_bot: false,
      first_name: from.first_name ?? 'Test',
      username: from.username ?? `user${from.id}`,
    };
    if (from.language_code !== undefined) user.language_code = from.language_code;
    return user;
  }

  private userMessage(spec: UserMessageSpec): FakeMessage {
    const chatType = spec.chatType ?? (spec.chatId > 0 ? 'private' : 'supergroup');
    const fromSpec = spec.from ?? { id: chatType === 'private' ? spec.chatId : 1001 };
    const from = this.userFor(fromSpec);
    if (chatType === 'private') {
      this.chats.set(String(spec.chatId), {
        id: spec.chatId,
        type: 'private',
        first_name: from.first_name,
        ...(from.username !== undefined ? { username: from.username } : {}),
      });
    }
    const chat = this.chatFor(spec.chatId, chatType, spec.chatTitle);
    const message: FakeMessage = { message_id: this.nextMessageId++, from, chat, date: spec.date ?? nowSeconds() };
    if (spec.messageThreadId !== undefined) message.message_thread_id = spec.messageThreadId;
    if (spec.replyToMessageId !== undefined) {
      message.reply_to_message = this.message(spec.chatId, spec.replyToMessageId) ?? this.syntheticBotMessage(chat, spec.replyToMessageId);
    } else if (spec.replyToBot) {
      message.reply_to_message = this.lastBotMessage(spec.chatId) ?? this.syntheticBotMessage(chat);
    }
    return message;
  }

  private syntheticBotMessage(chat: FakeChat, messageId?: number): FakeMessage {
    const message: FakeMessage = {
      message_id: messageId ?? this.nextMessageId++,
      from: this.botUser,
      chat,
      date: nowSeconds(),
      text: '…',
    };
    this.messages.set(messageKey(chat.id, message.message_id), message);
    return message;
  }

  private lastBotMessage(chatId: number | string): FakeMessage | undefined {
    let last: FakeMessage | undefined;
    for (const message of this.messages.values()) {
      if (message.chat.id === chatId && message.from?.id === this.botId && (!last || message.message_id > last.message_id)) last = message;
    }
    return last;
  }

  private botMessage(chatId: number | string, params: Params): FakeMessage {
    const chat = this.chatFor(chatId);
    const message: FakeMessage = { message_id: this.nextMessageId++, from: this.botUser, chat, date: nowSeconds() };
    const replyTo = replyToOf(params);
    const original = replyTo !== undefined ? this.messages.get(messageKey(chatId, replyTo)) : undefined;
    if (original) message.reply_to_message = original;
    const thread = num(params, 'message_thread_id');
    if (thread !== undefined) message.message_thread_id = thread;
    if (params.reply_markup !== undefined && inlineKeyboard.safeParse(params.reply_markup).success)
      message.reply_markup = params.reply_markup;
    this.messages.set(messageKey(chatId, message.message_id), message);
    return message;
  }

  private rememberUpdate(update: FakeUpdate): void {
    for (const message of [update.message, update.edited_message, update.callback_query?.message]) {
      if (messageShape.safeParse(message).success && message) this.messages.set(messageKey(message.chat.id, message.message_id), message);
    }
  }

  private addCaption(message: FakeMessage, spec: { caption?: string; captionEntities?: FakeEntity[] }): void {
    if (spec.caption === undefined) return;
    message.caption = spec.caption;
    const entities = spec.captionEntities ?? this.autoEntities(spec.caption);
    if (entities.length > 0) message.caption_entities = entities;
  }

  /** Entities Telegram's clients attach: a leading /command, and each @username mention. */
  private autoEntities(text: string): FakeEntity[] {
    const entities: FakeEntity[] = [];
    const command = /^\/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?/.exec(text);
    if (command) entities.push({ type: 'bot_command', offset: 0, length: command[0].length });
    const commandEnd = command?.[0].length ?? 0;
    for (const mention of text.matchAll(/(^|[^A-Za-z0-9_@])(@[A-Za-z0-9_]{5,32})(?![A-Za-z0-9_])/g)) {
      const offset = (mention.index ?? 0) + (mention[1]?.length ?? 0);
      if (offset < commandEnd) continue;
      entities.push({ type: 'mention', offset, length: mention[2]?.length ?? 0 });
    }
    return entities;
  }
}

function messageKey(chatId: number | string, messageId: number): string {
  return `${String(chatId)}:${messageId}`;
}

function commandKey(scope: unknown, languageCode: string | undefined): string {
  const parsed = z
    .object({ type: z.string(), chat_id: z.union([z.number(), z.string()]).optional(), user_id: z.number().optional() })
    .safeParse(scope);
  const scopeKey =
    parsed.success && parsed.data.type !== 'default'
      ? [parsed.data.type, parsed.data.chat_id ?? '', parsed.data.user_id ?? ''].join('/')
      : 'default';
  return `${scopeKey}|${languageCode ?? ''}`;
}
