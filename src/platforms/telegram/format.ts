/**
 * Markdown answers → Telegram messages (Bot API `parse_mode: 'HTML'`), as pure functions.
 *
 * The Markdown is lexed with marked and flattened into runs of plain text, each carrying the formatting
 * tags it sits in. A message chunk is any range of that text: it opens the tags its first run needs and
 * closes everything still open at its end, so every chunk is balanced HTML whatever the cut. Cuts go at
 * block boundaries first, then lines, sentences, words, and only as a last resort anywhere.
 *
 * @example
 * renderTelegramHtml('# Hi\n\nUse `a < b` **now**');
 * // '<b>Hi</b>\n\nUse <code>a &lt; b</code> <b>now</b>'
 * for (const html of splitTelegramMessage(answer)) await bot.telegram.sendMessage(chatId, html, { parse_mode: 'HTML' });
 */
import { Lexer, getDefaults, type MarkedToken, type Token, type Tokens } from 'marked';

/** Telegram's limit on a message's text, in UTF-16 code units. */
export const TELEGRAM_MESSAGE_LIMIT = 4096;

/** Below this a chunk might not hold one escaped character, and splitting could not make progress. */
const MIN_LIMIT = 8;

type MarkKind = 'b' | 'i' | 's' | 'code' | 'pre' | 'a' | 'blockquote';
interface Mark {
  readonly kind: MarkKind;
  readonly open: string;
  readonly close: string;
}

/** prose: cut at lines, sentences, words; verbatim: only after a newline; boundary: a separator between blocks. */
type PieceKind = 'prose' | 'verbatim' | 'boundary';
interface Piece {
  readonly text: string;
  readonly marks: readonly Mark[];
  readonly kind: PieceKind;
}

interface Context {
  readonly marks: readonly Mark[];
  readonly indent: string;
  readonly inLink: boolean;
}

interface Doc {
  readonly pieces: readonly Piece[];
  readonly starts: readonly number[];
  readonly text: string;
}

const HARD = 0;
const WORD = 1;
const SENTENCE = 2;
const LINE = 3;
const BLOCK = 4;
type Level = typeof HARD | typeof WORD | typeof SENTENCE | typeof LINE | typeof BLOCK;

/** Characters `[start, end)` are dropped (a separator) when the text is cut here. */
interface Cut {
  readonly start: number;
  readonly end: number;
  readonly level: Level;
}

type Measure = (start: number, end: number) => number;

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };

/** Escapes `&`, `<`, `>` and `"`, the characters Telegram's HTML mode needs escaped (text and attributes). */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (char) => HTML_ESCAPES[char] ?? char);
}

const NAMED_ENTITIES: Readonly<Record<string, string>> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: '\u00a0',
  mdash: '—',
  ndash: '–',
  hellip: '…',
  copy: '©',
  laquo: '«',
  raquo: '»',
};

/** marked resolves numeric character references but leaves named ones for a browser; Telegram knows only four. */
function decodeEntities(text: string): string {
  return text.replace(/&([a-zA-Z]+);/g, (entity, name: string) => NAMED_ENTITIES[name] ?? entity);
}

/** Text outside attributes keeps its quotes: `&quot;` would cost six characters of the limit for one. */
function escapeText(text: string): string {
  return text.replace(/[&<>]/g, (char) => HTML_ESCAPES[char] ?? char);
}

/** The whole Markdown text as one Telegram HTML string (may exceed the message limit; see {@link splitTelegramMessage}). */
export function renderTelegramHtml(markdown: string): string {
  const doc = buildDoc(markdown);
  return renderRange(doc, 0, doc.text.length, false);
}

/**
 * Telegram HTML chunks of at most `limit` characters each (measured on the HTML), every one balanced on its own.
 * Small blocks are packed together; a block is split only when it does not fit a message by itself.
 */
export function splitTelegramMessage(markdown: string, limit = TELEGRAM_MESSAGE_LIMIT): string[] {
  checkLimit(limit);
  const doc = buildDoc(markdown);
  const plainAt = (start: number): boolean => renderRange(doc, start, codePointEnd(doc.text, start), false).length > limit;
  const measure: Measure = (start, end) => renderRange(doc, start, end, plainAt(start)).length;
  return splitRanges(doc.text, documentCuts(doc), measure, limit).map(([start, end]) => renderRange(doc, start, end, plainAt(start)));
}

/** The Markdown source as plain-text chunks of at most `limit` characters, for when Telegram rejects the HTML. */
export function plainTextChunks(text: string, limit = TELEGRAM_MESSAGE_LIMIT): string[] {
  checkLimit(limit);
  const cuts = [...matchCuts(text, /\n[ \t]*\n\s*/g, BLOCK, 0), ...proseCuts(text, 0)].sort((a, b) => a.start - b.start);
  return splitRanges(text, cuts, (start, end) => end - start, limit).map(([start, end]) => text.slice(start, end));
}

/** The answer as a Markdown file to send as a document, named for the current UTC time: `answer-20250131-235959.md`. */
export function toMarkdownDocument(markdown: string, now: Date = new Date()): { filename: string; content: Buffer } {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return { filename: `answer-${stamp}.md`, content: Buffer.from(markdown, 'utf8') };
}

function checkLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < MIN_LIMIT)
    throw new RangeError(`limit must be an integer of at least ${MIN_LIMIT}, got ${limit}`);
}

// ── Markdown → pieces ────────────────────────────────────────────────────────────────────────────────────

function buildDoc(markdown: string): Doc {
  const pieces = renderBlocks(Lexer.lex(markdown, getDefaults()), { marks: [], indent: '', inLink: false }, '\n\n');
  const starts: number[] = [];
  let offset = 0;
  for (const piece of pieces) {
    starts.push(offset);
    offset += piece.text.length;
  }
  return { pieces, starts, text: pieces.map((piece) => piece.text).join('') };
}

function piece(text: string, marks: readonly Mark[], kind: PieceKind = 'prose'): Piece {
  return { text, marks, kind };
}

function mark(kind: MarkKind, open: string, close: string): Mark {
  return { kind, open, close };
}

function simpleMark(kind: 'b' | 'i' | 's'): Mark {
  return mark(kind, `<${kind}>`, `</${kind}>`);
}

function withMark(ctx: Context, added: Mark): Context {
  return { ...ctx, marks: [...ctx.marks, added] };
}

/** Telegram lets nothing live inside code or pre, and blockquotes are the only block-level marks. */
function blockMarks(marks: readonly Mark[]): Mark[] {
  return marks.filter((m) => m.kind === 'blockquote');
}

function joinBlocks(blocks: readonly Piece[][], separator: string, marks: readonly Mark[]): Piece[] {
  return blocks
    .filter((block) => block.length > 0)
    .flatMap((block, i) => (i === 0 ? block : [piece(separator, marks, 'boundary'), ...block]));
}

function renderBlocks(tokens: readonly Token[], ctx: Context, separator: string): Piece[] {
  return joinBlocks(
    tokens.map((token) => renderBlock(token, ctx)),
    separator,
    ctx.marks,
  );
}

function renderBlock(token: Token, ctx: Context): Piece[] {
  const t = token as MarkedToken;
  switch (t.type) {
    case 'space':
    case 'def':
    case 'checkbox':
      return [];
    case 'paragraph':
      return renderInline(t.tokens, ctx);
    case 'text':
      return t.tokens ? renderInline(t.tokens, ctx) : [piece(decodeEntities(t.text), ctx.marks)];
    case 'heading':
      return renderInline(t.tokens, withMark(ctx, simpleMark('b')));
    case 'code':
      return codeBlock(t.text, codeLanguage(t.lang), ctx);
    case 'table':
      return codeBlock(t.raw.trimEnd(), '', ctx);
    case 'blockquote':
      return renderBlocks(t.tokens, ctx.marks.some((m) => m.kind === 'blockquote') ? ctx : withMark(ctx, quoteMark()), '\n\n');
    case 'list':
      return renderList(t, ctx);
    case 'hr':
      return [piece('———', ctx.marks, 'verbatim')];
    case 'html':
      return [piece(t.text.trimEnd(), ctx.marks)];
    default:
      return [piece('text' in t && typeof t.text === 'string' ? t.text : token.raw, ctx.marks)];
  }
}

/** Telegram cannot nest quotes, so an inner quote just continues the outer one. */
function quoteMark(): Mark {
  return mark('blockquote', '<blockquote>', '</blockquote>');
}

function codeLanguage(info: string | undefined): string {
  return (
    (info ?? '')
      .trim()
      .split(/\s/)[0]
      ?.replace(/[^\w+#.-]/g, '')
      .slice(0, 32) ?? ''
  );
}

function codeBlock(text: string, language: string, ctx: Context): Piece[] {
  const pre = language ? mark('pre', `<pre><code class="language-${language}">`, '</code></pre>') : mark('pre', '<pre>', '</pre>');
  return text ? [piece(text, [...blockMarks(ctx.marks), pre], 'verbatim')] : [];
}

function renderList(list: Tokens.List, ctx: Context): Piece[] {
  const first = typeof list.start === 'number' ? list.start : 1;
  const items = list.items.map((item, i) => renderItem(item, list.ordered ? `${first + i}. ` : '• ', ctx));
  return joinBlocks(items, '\n', ctx.marks);
}

/** Continuation blocks and nested lists line up under the item's text, like the Markdown source. */
function renderItem(item: Tokens.ListItem, marker: string, ctx: Context): Piece[] {
  const box = item.task ? (item.checked ? '☑ ' : '☐ ') : '';
  const inner: Context = { ...ctx, indent: ctx.indent + ' '.repeat(marker.length) };
  const parts = item.tokens.map((token) => ({ token, pieces: renderBlock(token, inner) })).filter((part) => part.pieces.length > 0);
  const lead = piece(ctx.indent + marker + box, ctx.marks, 'verbatim');
  const blocks = parts.map(({ token, pieces }, i) => {
    if (i === 0) return [lead, ...pieces];
    return token.type === 'list' || token.type === 'code' ? pieces : [piece(inner.indent, ctx.marks, 'verbatim'), ...pieces];
  });
  return joinBlocks(blocks.length > 0 ? blocks : [[lead]], '\n', ctx.marks);
}

function renderInline(tokens: readonly Token[], ctx: Context): Piece[] {
  return tokens.flatMap((token) => inlineToken(token, ctx));
}

function inlineToken(token: Token, ctx: Context): Piece[] {
  const t = token as MarkedToken;
  switch (t.type) {
    case 'text':
      return t.tokens ? renderInline(t.tokens, ctx) : [piece(decodeEntities(t.text), ctx.marks)];
    case 'escape':
    case 'html':
      return [piece(t.text, ctx.marks)];
    case 'br':
      return [piece('\n', ctx.marks)];
    case 'checkbox':
      return [];
    case 'strong':
      return renderInline(t.tokens, withMark(ctx, simpleMark('b')));
    case 'em':
      return renderInline(t.tokens, withMark(ctx, simpleMark('i')));
    case 'del':
      return renderInline(t.tokens, withMark(ctx, simpleMark('s')));
    case 'codespan':
      return [piece(t.text, ctx.inLink ? ctx.marks : [...blockMarks(ctx.marks), mark('code', '<code>', '</code>')])];
    case 'link':
    case 'image':
      return renderLink(decodeEntities(t.href), t.tokens.length > 0 ? t.tokens : [{ type: 'text', raw: t.href, text: t.href }], ctx);
    default:
      return [piece('text' in t && typeof t.text === 'string' ? t.text : token.raw, ctx.marks)];
  }
}

/** Only URLs Telegram accepts become links; a relative or `javascript:` target leaves just the link text. */
function renderLink(href: string, tokens: readonly Token[], ctx: Context): Piece[] {
  if (ctx.inLink || !/^(https?|ftp|tg|mailto):/i.test(href)) return renderInline(tokens, ctx);
  const link = mark('a', `<a href="${escapeHtml(href)}">`, '</a>');
  return renderInline(tokens, { ...withMark(ctx, link), inLink: true });
}

// ── pieces → HTML ────────────────────────────────────────────────────────────────────────────────────────

/** The HTML of text `[start, end)`, opening the marks it needs and closing all of them; `plain` drops every mark. */
function renderRange(doc: Doc, start: number, end: number, plain: boolean): string {
  let html = '';
  let open: readonly Mark[] = [];
  for (let i = pieceAt(doc, start); i < doc.pieces.length && (doc.starts[i] ?? end) < end; i++) {
    const p = doc.pieces[i];
    const at = doc.starts[i] ?? 0;
    const text = p?.text.slice(Math.max(0, start - at), end - at);
    if (!p || !text) continue;
    const marks = plain ? [] : p.marks;
    const kept = sharedPrefix(open, marks);
    html += closeTags(open.slice(kept)) + openTags(marks.slice(kept)) + escapeText(text);
    open = marks;
  }
  return html + closeTags(open);
}

/** The index of the piece holding character `offset` (binary search over the start offsets). */
function pieceAt(doc: Doc, offset: number): number {
  let lo = 0;
  let hi = doc.starts.length - 1;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if ((doc.starts[mid] ?? 0) <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function openTags(marks: readonly Mark[]): string {
  return marks.map((m) => m.open).join('');
}

function sharedPrefix(a: readonly Mark[], b: readonly Mark[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

function closeTags(marks: readonly Mark[]): string {
  return marks
    .map((m) => m.close)
    .reverse()
    .join('');
}

// ── splitting ────────────────────────────────────────────────────────────────────────────────────────────

function documentCuts(doc: Doc): Cut[] {
  const cuts = doc.pieces.flatMap((p, i): Cut[] => {
    const at = doc.starts[i] ?? 0;
    if (p.kind === 'boundary') return [{ start: at, end: at + p.text.length, level: BLOCK }];
    // Code keeps its newline on the line before the cut, so the pieces of a code block concatenate back exactly.
    if (p.kind === 'verbatim')
      return [...p.text.matchAll(/\n/g)].map((m) => ({ start: at + m.index + 1, end: at + m.index + 1, level: LINE }));
    return proseCuts(p.text, at);
  });
  return cuts.sort((a, b) => a.start - b.start);
}

function proseCuts(text: string, offset: number): Cut[] {
  return [
    ...matchCuts(text, /\n/g, LINE, offset),
    ...matchCuts(text, /(?<=[.!?…]["')\]»”’]*)\s+/g, SENTENCE, offset),
    ...matchCuts(text, /\s+/g, WORD, offset),
  ];
}

function matchCuts(text: string, pattern: RegExp, level: Level, offset: number): Cut[] {
  return [...text.matchAll(pattern)].map((m) => ({ start: offset + m.index, end: offset + m.index + m[0].length, level }));
}

/** `[start, end)` ranges of `text`, each measuring at most `limit`, cut at the best place available. */
function splitRanges(text: string, cuts: readonly Cut[], measure: Measure, limit: number): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  let pos = 0;
  while (pos < text.length) {
    const maxEnd = fitEnd(text, pos, measure, limit);
    const cut = maxEnd >= text.length ? { start: text.length, end: text.length } : chooseCut(text, pos, maxEnd, cuts, measure, limit);
    if (text.slice(pos, cut.start).trim()) ranges.push([pos, cut.start]);
    pos = cut.end;
  }
  return ranges;
}

/** The furthest end such that `[pos, end)` fits; every character measures at least one, hence the upper bound. */
function fitEnd(text: string, pos: number, measure: Measure, limit: number): number {
  let lo = codePointEnd(text, pos);
  let hi = Math.min(text.length, pos + limit);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (measure(pos, mid) <= limit) lo = mid;
    else hi = mid - 1;
  }
  return isLowSurrogate(text, lo) && lo - 1 > pos ? lo - 1 : lo;
}

/**
 * The latest cut of the highest level that still fills at least half a message. A block boundary is also
 * taken when the block after it fits a message by itself: blocks are split only when they must be.
 */
function chooseCut(text: string, pos: number, maxEnd: number, cuts: readonly Cut[], measure: Measure, limit: number): Cut {
  const inRange = cuts.filter((c) => c.start > pos && c.start <= maxEnd);
  for (const level of [BLOCK, LINE, SENTENCE, WORD] as const) {
    const cut = inRange.findLast((c) => c.level >= level);
    if (!cut) continue;
    if (measure(pos, cut.start) * 2 >= limit) return cut;
    if (level === BLOCK && measure(cut.end, nextBlockStart(cuts, cut, text.length)) <= limit) return cut;
  }
  return { start: maxEnd, end: maxEnd, level: HARD };
}

function nextBlockStart(cuts: readonly Cut[], after: Cut, length: number): number {
  return cuts.find((c) => c.level === BLOCK && c.start >= after.end)?.start ?? length;
}

function codePointEnd(text: string, pos: number): number {
  const code = text.charCodeAt(pos);
  return code >= 0xd800 && code <= 0xdbff && isLowSurrogate(text, pos + 1) ? pos + 2 : pos + 1;
}

function isLowSurrogate(text: string, index: number): boolean {
  const code = text.charCodeAt(index);
  return code >= 0xdc00 && code <= 0xdfff;
}
