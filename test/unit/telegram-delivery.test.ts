import { Telegram } from 'telegraf';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { emitted, newMessageEnvelope, type Body, type Envelope, type ReplyBody } from '../../src/core/envelope.ts';
import { PermanentError, TransientError } from '../../src/core/errors.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { splitTelegramMessage } from '../../src/platforms/telegram/format.ts';
import { LimiterClosedError, TelegramRateLimiter } from '../../src/platforms/telegram/rate-limits.ts';
import {
  LONG_ANSWER_NOTICE,
  TelegramDelivery,
  htmlToPlain,
  type TelegramDeliveryOptions,
} from '../../src/platforms/telegram/telegram-delivery.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { FakeTelegram, parseTelegramHtml, type SentMessage } from '../fakes/fake-telegram.ts';
import { codeSample, longMarkdownAnswer } from '../helpers/long-answer.ts';

let fake: FakeTelegram;
let store: MemoryStore;
const deliveries: TelegramDelivery[] = [];

beforeEach(async () => {
  fake = await FakeTelegram.start();
  store = await MemoryStore.open({ logger: silentLogger(), sweepIntervalMs: 0 });
});

afterEach(async () => {
  await Promise.all(deliveries.splice(0).map((d) => d.close()));
  await fake.close();
  await store.close();
});

/** Small backoff so retries take milliseconds; the limits are the production defaults. */
function delivery(options: Partial<TelegramDeliveryOptions> = {}): TelegramDelivery {
  const made = new TelegramDelivery({
    telegram: new Telegram(fake.token, { apiRoot: fake.apiRoot }),
    store,
    logger: silentLogger(),
    retry: { retries: 2, minTimeoutMs: 20, maxTimeoutMs: 50 },
    ...options,
  });
  deliveries.push(made);
  return made;
}

let nodes = 0;
function envelopeTo(chatId: number, body: Body): Envelope {
  const node = newMessageEnvelope({ from: `telegram:${chatId}`, user: { id: `telegram:${chatId}` }, text: 'question' });
  return emitted(node, nodes++, `telegram:${chatId}`, body);
}

function reply(chatId: number, text: string, extra: Partial<ReplyBody> = {}): Envelope {
  return envelopeTo(chatId, { kind: 'reply', text, format: 'markdown', ...extra });
}

/** What the person sees of a message: the text after Telegram parsed its markup. */
function visible(message: SentMessage): string {
  const stored = fake.message(message.chat_id, message.message_id);
  if (stored?.text === undefined) throw new Error(`message ${message.message_id} not found`);
  return stored.text;
}

function sentTo(chatId: number): SentMessage[] {
  return fake.sent.filter((m) => m.chat_id === chatId);
}

/** Three paragraphs of about 3000 characters: three chunks. */
function threeChunkAnswer(): string {
  return ['First', 'Second', 'Third'].map((name) => `${name} part: ${'lorem ipsum '.repeat(250)}`.trim()).join('\n\n');
}

const TOO_MANY = { error_code: 429, description: 'Too Many Requests: retry after 1', retry_after: 1 };

describe('TelegramDelivery', () => {
  it('sends a 3-chunk answer in order, each chunk once, through 429 flood waits', async () => {
    const text = threeChunkAnswer();
    const expected = splitTelegramMessage(text);
    expect(expected).toHaveLength(3);
    fake.failNext('sendMessage', 2, TOO_MANY);

    const report = await delivery().deliver(reply(101, text));

    expect(fake.messagesTo(101)).toEqual(expected);
    expect(fake.callsOf('sendMessage')).toHaveLength(5);
    expect(fake.callsOf('sendMessage')[2]?.params.text).toBe(expected[0]);
    expect(report).toEqual({ outcome: 'delivered', sent: 3, skipped: 0 });
  });

  it('does not starve another chat while one chat waits out its 429', async () => {
    let refused = false;
    fake.respondWith('sendMessage', (params) => {
      if (params.chat_id !== 201 || refused) return undefined;
      refused = true;
      return { error: TOO_MANY };
    });
    const sender = delivery();
    const first = sender.deliver(reply(201, 'Answer for A'));
    const refusal = await fake.waitUntil(() => fake.callsOf('sendMessage').find((c) => c.outcome && !c.outcome.ok));

    await sender.deliver(reply(202, 'Answer for B'));
    const b = sentTo(202)[0];
    expect(b && b.at - refusal.at).toBeLessThan(900);
    expect(sentTo(201)).toHaveLength(0);

    await first;
    const a = sentTo(201)[0];
    expect(a && a.at - refusal.at).toBeGreaterThanOrEqual(950);
    expect(fake.messagesTo(201)).toEqual(['Answer for A']);
  });

  it('splits a 10,000-character answer into valid HTML messages of at most 4096 characters, code blocks whole', async () => {
    const { text, sections } = longMarkdownAnswer();
    expect(text.length).toBeGreaterThan(10_000);

    await delivery().deliver(reply(301, text));

    const messages = sentTo(301);
    expect(messages.length).toBeGreaterThan(2);
    expect(fake.callsOf('sendMessage').every((c) => c.outcome?.ok)).toBe(true);
    for (const message of messages) {
      expect(message.text.length).toBeLessThanOrEqual(4096);
      expect(message.parse_mode).toBe('HTML');
      expect(parseTelegramHtml(message.text).ok).toBe(true);
    }
    const seen = messages.map(visible);
    for (let n = 0; n < sections; n++) expect(seen.some((t) => t.includes(codeSample(n)))).toBe(true);
    const links = messages.flatMap((m) => fake.message(m.chat_id, m.message_id)?.entities ?? []).filter((e) => e.type === 'text_link');
    expect(links).toHaveLength(sections);
  });

  it('keeps <, >, &, _, * and backticks as the person wrote them', async () => {
    await delivery().deliver(reply(401, 'Use `a<b>` & a_b_c * 2 < 3 > 1, and \\*stars\\* and ``x`y``'));

    const [message] = sentTo(401);
    expect(message && visible(message)).toBe('Use a<b> & a_b_c * 2 < 3 > 1, and *stars* and x`y');
  });

  it('resends a chunk Telegram cannot parse as its plain text; the other chunks stay HTML', async () => {
    const text = [
      'First **bold** part: ' + 'lorem ipsum '.repeat(250),
      'Second *odd* part: ' + 'dolor sit '.repeat(300),
      'Third part: ' + 'amet '.repeat(500),
    ].join('\n\n');
    const expected = splitTelegramMessage(text);
    expect(expected).toHaveLength(3);
    fake.respondWith('sendMessage', (params) =>
      params.parse_mode === 'HTML' && String(params.text).startsWith('Second')
        ? { error: { error_code: 400, description: 'Bad Request: can\'t parse entities: Unsupported start tag "i" at byte offset 7' } }
        : undefined,
    );

    await delivery().deliver(reply(501, text));

    const messages = sentTo(501);
    expect(messages.map((m) => m.parse_mode)).toEqual(['HTML', undefined, 'HTML']);
    expect(messages[0]?.text).toBe(expected[0]);
    expect(messages[2]?.text).toBe(expected[2]);
    const shown = parseTelegramHtml(expected[1] ?? '');
    expect(shown.ok && messages[1]?.text === shown.value.text).toBe(true);
    expect(messages[1]?.text.startsWith('Second odd part: dolor sit')).toBe(true);
  });

  it('sends each chunk once when the same envelope is delivered twice', async () => {
    const envelope = reply(601, threeChunkAnswer());
    const sender = delivery();

    await sender.deliver(envelope);
    const again = await sender.deliver(envelope);

    expect(fake.messagesTo(601)).toEqual(splitTelegramMessage(threeChunkAnswer()));
    expect(again).toEqual({ outcome: 'delivered', sent: 0, skipped: 3 });
  });

  it('after failing past the retries at chunk 2, a redelivery sends only chunks 2 and 3', async () => {
    let calls = 0;
    fake.respondWith('sendMessage', () => {
      calls += 1;
      return calls >= 2 && calls <= 4 ? { error: { error_code: 500, description: 'Internal Server Error' } } : undefined;
    });
    const envelope = reply(701, threeChunkAnswer());
    const sender = delivery({ limits: { perChatPerSecond: 50 } });

    await expect(sender.deliver(envelope)).rejects.toBeInstanceOf(TransientError);
    expect(fake.messagesTo(701)).toHaveLength(1);

    const report = await sender.deliver(envelope);
    expect(report).toEqual({ outcome: 'delivered', sent: 2, skipped: 1 });
    expect(fake.messagesTo(701)).toEqual(splitTelegramMessage(threeChunkAnswer()));
  });

  it('sends an answer of more than maxChunks chunks as a .md document with a short message', async () => {
    const text = threeChunkAnswer();
    const envelope = reply(801, text, { buttons: [{ text: 'Again', command: '/again' }] });

    await delivery({ maxChunks: 2 }).deliver(envelope);

    expect(fake.messagesTo(801)).toEqual([LONG_ANSWER_NOTICE]);
    const [document] = fake.documents;
    expect(document?.filename).toMatch(/^answer-\d{8}-\d{6}\.md$/);
    expect(document?.content?.toString('utf8')).toBe(text);
    expect(document?.reply_markup).toEqual({ inline_keyboard: [[{ text: 'Again', callback_data: '/again' }]] });
  });

  it('puts the buttons as an inline keyboard under the last chunk only', async () => {
    const buttons = [
      { text: 'Confirm', command: '/confirm f1' },
      { text: 'Cancel', command: '/cancel f1' },
    ];

    await delivery().deliver(reply(901, threeChunkAnswer(), { buttons }));

    const markups = sentTo(901).map((m) => m.reply_markup);
    expect(markups).toEqual([
      undefined,
      undefined,
      {
        inline_keyboard: [
          [
            { text: 'Confirm', callback_data: '/confirm f1' },
            { text: 'Cancel', callback_data: '/cancel f1' },
          ],
        ],
      },
    ]);
  });

  it('shows "typing" for a running chain and nothing for a waiting one', async () => {
    const sender = delivery();

    await sender.deliver(envelopeTo(1001, { kind: 'status', status: 'running' }));
    await sender.deliver(envelopeTo(1002, { kind: 'status', status: 'waiting' }));

    expect(fake.chatActions.map((a) => [a.chat_id, a.action])).toEqual([[1001, 'typing']]);
    expect(fake.sent).toHaveLength(0);
  });

  it('repeats "typing" while the chain runs, and stops when another sender delivers its answer', async () => {
    const node = newMessageEnvelope({ from: 'telegram:1801', user: { id: 'telegram:1801' }, text: 'question' });
    const running = emitted(node, 0, 'telegram:1801', { kind: 'status', status: 'running' });
    const answer = emitted(node, 1, 'telegram:1801', { kind: 'reply', text: 'the answer', format: 'markdown', status: 'done' });
    const typings = () => fake.chatActions.filter((a) => a.chat_id === 1801).length;

    await delivery({ typing: { repeatMs: 300 } }).deliver(running);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(typings()).toBeGreaterThanOrEqual(3);

    await delivery().deliver(answer);
    const after = typings();
    await new Promise((resolve) => setTimeout(resolve, 900));
    expect(typings()).toBe(after);
    expect(sentTo(1801).map((m) => m.text)).toEqual(['the answer']);
  });

  it('shows no "typing" for a running status that arrives after the chain answered', async () => {
    const node = newMessageEnvelope({ from: 'telegram:1803', user: { id: 'telegram:1803' }, text: 'question' });
    const running = emitted(node, 0, 'telegram:1803', { kind: 'status', status: 'running' });
    const answer = emitted(node, 1, 'telegram:1803', { kind: 'reply', text: 'quick', format: 'markdown', status: 'done' });
    const sender = delivery({ typing: { repeatMs: 300 } });

    await sender.deliver(answer);
    await sender.deliver(running);
    await new Promise((resolve) => setTimeout(resolve, 700));

    expect(fake.chatActions.filter((a) => a.chat_id === 1803)).toHaveLength(0);
  });

  it('types again when a chain goes on after waiting for the person', async () => {
    const node = newMessageEnvelope({ from: 'telegram:1802', user: { id: 'telegram:1802' }, text: 'question' });
    const sender = delivery({ typing: { repeatMs: 300 } });
    await sender.deliver(emitted(node, 0, 'telegram:1802', { kind: 'status', status: 'running' }));
    await sender.deliver(emitted(node, 1, 'telegram:1802', { kind: 'status', status: 'waiting' }));
    await new Promise((resolve) => setTimeout(resolve, 5));
    const resumed = {
      ...emitted(node, 2, 'telegram:1802', { kind: 'status', status: 'running' }),
      at: new Date(Date.now() + 10).toISOString(),
    };
    await sender.deliver(resumed);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(fake.chatActions.filter((a) => a.chat_id === 1802).length).toBeGreaterThanOrEqual(3);
  });

  it('never throws for a typing indicator Telegram refuses', async () => {
    fake.failNext('sendChatAction', 1, { error_code: 500, description: 'Internal Server Error' });

    await expect(delivery().deliver(envelopeTo(1101, { kind: 'status', status: 'running' }))).resolves.toMatchObject({
      outcome: 'ignored',
    });
  });

  it('delivers once after 5xx answers, backing off between attempts', async () => {
    fake.failNext('sendMessage', 2, { error_code: 502, description: 'Bad Gateway' });

    await delivery().deliver(reply(1201, 'Hello **there**'));

    expect(fake.messagesTo(1201)).toEqual(['Hello <b>there</b>']);
    const attempts = fake.callsOf('sendMessage').map((c) => c.at);
    expect(attempts).toHaveLength(3);
    expect((attempts[2] ?? 0) - (attempts[0] ?? 0)).toBeGreaterThanOrEqual(40);
  });

  it('throws TransientError when Telegram cannot be reached', async () => {
    const unreachable = new TelegramDelivery({
      telegram: new Telegram(fake.token, { apiRoot: 'http://127.0.0.1:1' }),
      store,
      logger: silentLogger(),
      retry: { retries: 1, minTimeoutMs: 10 },
    });
    deliveries.push(unreachable);

    await expect(unreachable.deliver(reply(1301, 'Hello'))).rejects.toBeInstanceOf(TransientError);
  });

  it('gives up without throwing when the person blocked the bot', async () => {
    fake.failNext('sendMessage', 1, { error_code: 403, description: 'Forbidden: bot was blocked by the user' });

    const report = await delivery().deliver(reply(1401, threeChunkAnswer()));

    expect(report).toEqual({ outcome: 'undeliverable', sent: 0, skipped: 0 });
    expect(fake.callsOf('sendMessage')).toHaveLength(1);
  });

  it('follows a group that became a supergroup: this reply and the later ones go to the new chat', async () => {
    const oldGroup = -4501;
    const supergroup = -1_000_000_004_501;
    fake.failNext('sendMessage', 1, {
      error_code: 400,
      description: 'Bad Request: group chat was upgraded to a supergroup chat',
      migrate_to_chat_id: supergroup,
    });
    const sender = delivery();

    expect(await sender.deliver(reply(oldGroup, 'first'))).toEqual({ outcome: 'delivered', sent: 1, skipped: 0 });
    await sender.deliver(reply(oldGroup, 'second'));

    expect(sentTo(supergroup).map((m) => m.text)).toEqual(['first', 'second']);
    expect(fake.callsOf('sendMessage').filter((c) => c.params.chat_id === oldGroup)).toHaveLength(1);
  });

  it('dead-letters a message Telegram refuses for what it is', async () => {
    fake.failNext('sendMessage', 1, { error_code: 400, description: 'Bad Request: message is too long' });

    await expect(delivery().deliver(reply(1501, 'Hello'))).rejects.toBeInstanceOf(PermanentError);
  });

  it('sends plain replies as they are, without parse mode', async () => {
    await delivery().deliver(envelopeTo(1601, { kind: 'reply', text: 'a <b> & **c**', format: 'plain' }));

    expect(sentTo(1601).map((m) => [m.text, m.parse_mode])).toEqual([['a <b> & **c**', undefined]]);
  });

  it('keeps the messages of one chat in order across envelopes delivered at once', async () => {
    const sender = delivery();

    await Promise.all(['one', 'two', 'three', 'four'].map((text) => sender.deliver(reply(1701, text))));

    expect(fake.messagesTo(1701)).toEqual(['one', 'two', 'three', 'four']);
  });
});

describe('htmlToPlain', () => {
  it('shows what the person would have read, keeping link targets', () => {
    expect(htmlToPlain('<b>a &lt; b</b> &amp; <a href="https://x.example/?a=1&amp;b=2">docs</a> <code>&quot;q&quot;</code>')).toBe(
      'a < b & docs (https://x.example/?a=1&b=2) "q"',
    );
  });
});

describe('TelegramRateLimiter', () => {
  it('paces one chat after its burst', async () => {
    const limiter = new TelegramRateLimiter({ perChatPerSecond: 10, perChatBurst: 2 });
    const start = Date.now();
    for (let i = 0; i < 4; i++) await limiter.acquire('1', false);
    expect(Date.now() - start).toBeGreaterThanOrEqual(180);
    limiter.close();
  });

  it('holds a group at its per-minute limit while other chats go on', async () => {
    const limiter = new TelegramRateLimiter({ perChatPerSecond: 100, perGroupPerMinute: 2 });
    await limiter.acquire('-5', true);
    await limiter.acquire('-5', true);
    let third = false;
    const waiting = limiter.acquire('-5', true).then(() => {
      third = true;
    });
    await limiter.acquire('7', false);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(third).toBe(false);
    limiter.close();
    await expect(waiting).rejects.toBeInstanceOf(LimiterClosedError);
  });

  it('takes 429s in several chats at once as a bot-wide flood wait', () => {
    const limiter = new TelegramRateLimiter({ globalFloodChats: 2 });
    limiter.floodWait('1', false, 1);
    expect(limiter.tryAcquire('3', false)).toBe(true);
    limiter.floodWait('2', false, 1);
    expect(limiter.tryAcquire('3', false)).toBe(false);
    expect(limiter.pausedFor('3')).toBeGreaterThan(900);
    limiter.close();
  });
});
