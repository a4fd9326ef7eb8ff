import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Telegraf, Telegram, TelegramError } from 'telegraf';
import { message } from 'telegraf/filters';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeTelegram, parseTelegramHtml } from '../fakes/fake-telegram.ts';

let fake: FakeTelegram;
let telegram: Telegram;
const bots: { bot: Telegraf; launched: Promise<void> }[] = [];

beforeEach(async () => {
  fake = await FakeTelegram.start();
  telegram = new Telegram(fake.token, { apiRoot: fake.apiRoot });
});

afterEach(async () => {
  for (const { bot, launched } of bots.splice(0)) {
    bot.stop('test over');
    await launched;
  }
  await fake.close();
});

async function apiError(promise: Promise<unknown>): Promise<TelegramError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof TelegramError)) throw new Error(`expected a TelegramError, got ${String(err)}`);
  return err;
}

describe('FakeTelegram through telegraf', () => {
  it('answers getMe with the bot user', async () => {
    const me = await telegram.getMe();
    expect(me).toMatchObject({ id: fake.botId, is_bot: true, username: 'switchboard_bot' });
    expect(fake.calls.map((c) => c.method)).toEqual(['getMe']);
  });

  it('uses the given token and username, and rejects a wrong token with 401', async () => {
    const custom = await FakeTelegram.start({ token: '42:secret', botUsername: 'other_bot' });
    try {
      expect(custom.botId).toBe(42);
      const me = await new Telegram('42:secret', { apiRoot: custom.apiRoot }).getMe();
      expect(me.username).toBe('other_bot');
      const err = await apiError(new Telegram('42:wrong', { apiRoot: custom.apiRoot }).getMe());
      expect(err.code).toBe(401);
      expect(err.description).toBe('Unauthorized');
    } finally {
      await custom.close();
    }
  });

  it('answers an unknown method with 404 and matches method names case-insensitively', async () => {
    const unknown = await fetch(`${fake.apiRoot}/bot${fake.token}/sendTelepathy`, { method: 'POST' });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ ok: false, error_code: 404, description: 'Not Found: method not found' });
    const lower = await fetch(`${fake.apiRoot}/bot${fake.token}/getme`);
    expect(await lower.json()).toMatchObject({ ok: true, result: { username: 'switchboard_bot' } });
    expect(fake.calls.map((c) => c.method)).toEqual(['sendTelepathy', 'getMe']);
  });

  it('records sendMessage and returns the message Telegram would', async () => {
    const keyboard = { inline_keyboard: [[{ text: 'OK', callback_data: 'ok' }]] };
    const sent = await telegram.sendMessage(5, '<b>Hi</b> &amp; bye', {
      parse_mode: 'HTML',
      reply_markup: keyboard,
      reply_parameters: { message_id: 3 },
    });
    expect(sent.text).toBe('Hi & bye');
    expect(sent.entities).toEqual([{ type: 'bold', offset: 0, length: 2 }]);
    expect(sent.chat).toMatchObject({ id: 5, type: 'private' });
    await telegram.sendMessage(5, 'second');
    await telegram.sendMessage(6, 'elsewhere');
    expect(fake.sent[0]).toMatchObject({
      chat_id: 5,
      text: '<b>Hi</b> &amp; bye',
      parse_mode: 'HTML',
      reply_markup: keyboard,
      reply_to_message_id: 3,
      message_id: sent.message_id,
    });
    expect(fake.messagesTo(5)).toEqual(['<b>Hi</b> &amp; bye', 'second']);
    expect(fake.messagesTo(6)).toEqual(['elsewhere']);
    expect(fake.calls[0]?.params).toMatchObject({ chat_id: 5, parse_mode: 'HTML' });
  });

  it('rejects bad HTML like Telegram, so a plain-text fallback can be exercised', async () => {
    for (const text of ['<b>open', 'a <foo>b</foo>', 'x < y', 'Tom & Jerry', '<b><i>x</b></i>', '</b>', '<span>x</span>']) {
      const err = await apiError(telegram.sendMessage(1, text, { parse_mode: 'HTML' }));
      expect(err.code, text).toBe(400);
      expect(err.description, text).toContain("Bad Request: can't parse entities");
    }
    expect(fake.sent).toEqual([]);
    expect(fake.callsOf('sendMessage')).toHaveLength(7);
    expect(fake.callsOf('sendMessage')[0]?.outcome).toMatchObject({ ok: false, error_code: 400 });
    // The same texts go through without parse_mode.
    await telegram.sendMessage(1, 'x < y & z');
    const ok =
      '<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s><strike>k</strike><del>d</del><code>c</code>' +
      '<pre><code class="language-ts">p</code></pre><a href="https://example.com/?a=1&amp;b=2">l</a><tg-spoiler>t</tg-spoiler>' +
      '<span class="tg-spoiler">p</span><blockquote>q</blockquote><tg-emoji emoji-id="5368324170671202286">👍</tg-emoji> &lt;&gt;&quot;&#65;&#x42;';
    const sent = await telegram.sendMessage(1, ok, { parse_mode: 'HTML' });
    expect(sent.text).toBe('bsieunskdcpltpq👍 <>"AB');
    expect(sent.entities).toContainEqual({ type: 'text_link', offset: 11, length: 1, url: 'https://example.com/?a=1&b=2' });
    expect(sent.entities).toContainEqual({ type: 'pre', offset: 10, length: 1, language: 'ts' });
  });

  it('counts the length after entity parsing', async () => {
    const long = 'x'.repeat(4096);
    await telegram.sendMessage(1, `<b>${long}</b>`, { parse_mode: 'HTML' });
    const err = await apiError(telegram.sendMessage(1, `${long}y`));
    expect(err.description).toBe('Bad Request: message is too long');
    const entityErr = await apiError(telegram.sendMessage(1, `${'x'.repeat(4095)}&amp;&amp;`, { parse_mode: 'HTML' }));
    expect(entityErr.description).toBe('Bad Request: message is too long');
    expect(fake.sent).toHaveLength(1);
  });

  it('parses HTML with byte offsets in its complaints', () => {
    expect(parseTelegramHtml('é<x>')).toEqual({ ok: false, error: 'Unsupported start tag "x" at byte offset 2' });
    expect(parseTelegramHtml('a & b', false)).toEqual({ ok: true, value: { text: 'a & b', entities: [] } });
  });

  it('injects failures: a 429 reaches telegraf with parameters.retry_after', async () => {
    fake.failNext('sendMessage', 2, { error_code: 429, description: 'Too Many Requests: retry after 7', retry_after: 7 });
    for (let i = 0; i < 2; i += 1) {
      const err = await apiError(telegram.sendMessage(1, 'hi'));
      expect(err.code).toBe(429);
      expect(err.parameters?.retry_after).toBe(7);
      expect(err.description).toBe('Too Many Requests: retry after 7');
    }
    await telegram.sendMessage(1, 'hi');
    expect(fake.messagesTo(1)).toEqual(['hi']);
    expect(fake.callsOf('sendMessage')).toHaveLength(3);
  });

  it('reports a 5xx by its HTTP status text, as telegraf reads no body for those', async () => {
    fake.failNext('sendMessage', 1, { error_code: 502, description: 'Bad Gateway: upstream down' });
    const err = await apiError(telegram.sendMessage(1, 'hi'));
    expect(err.code).toBe(502);
    expect(err.description).toBe('Bad Gateway');
  });

  it('lets a responder answer or delay a method', async () => {
    fake.respondWith('sendMessage', (params) =>
      params.chat_id === 13 ? { error: { error_code: 403, description: 'Forbidden: bot was blocked by the user' } } : undefined,
    );
    const err = await apiError(telegram.sendMessage(13, 'hi'));
    expect(err.code).toBe(403);
    await telegram.sendMessage(14, 'hi');
    fake.respondWith('sendMessage', undefined);
    await telegram.sendMessage(13, 'again');
    expect(fake.messagesTo(13)).toEqual(['again']);
  });

  it('receives a multipart sendDocument with its content, and serves it back through getFile', async () => {
    const sent = await telegram.sendDocument(
      9,
      { source: Buffer.from('# hi'), filename: 'a.md' },
      { caption: '<i>notes</i>', parse_mode: 'HTML', reply_markup: { inline_keyboard: [[{ text: 'x', callback_data: 'x' }]] } },
    );
    expect(sent.document).toMatchObject({ file_name: 'a.md', mime_type: 'text/markdown', file_size: 4 });
    expect(sent.caption).toBe('notes');
    const [doc] = fake.documents;
    expect(doc).toMatchObject({ chat_id: 9, filename: 'a.md', caption: '<i>notes</i>', parse_mode: 'HTML' });
    expect(doc?.content?.toString('utf8')).toBe('# hi');
    expect(doc?.reply_markup).toEqual({ inline_keyboard: [[{ text: 'x', callback_data: 'x' }]] });
    const link = await telegram.getFileLink(sent.document.file_id);
    expect(link.href.startsWith(`${fake.apiRoot}/file/bot${fake.token}/documents/`)).toBe(true);
    expect(await (await fetch(link)).text()).toBe('# hi');
  });

  it('records chat actions, commands, webhooks, edits and callback answers', async () => {
    await telegram.sendChatAction(3, 'typing');
    expect(fake.chatActions).toMatchObject([{ chat_id: 3, action: 'typing' }]);

    await telegram.setMyCommands([{ command: 'start', description: 'Start' }]);
    await telegram.setMyCommands([{ command: 'help', description: 'Help' }], { scope: { type: 'all_private_chats' } });
    expect(fake.commands).toEqual([{ command: 'start', description: 'Start' }]);
    expect(fake.commandsFor({ type: 'all_private_chats' })).toEqual([{ command: 'help', description: 'Help' }]);
    expect(await telegram.getMyCommands()).toEqual([{ command: 'start', description: 'Start' }]);
    expect((await apiError(telegram.setMyCommands([{ command: 'Bad-Name', description: 'x' }]))).description).toBe(
      'Bad Request: BOT_COMMAND_INVALID',
    );

    await telegram.setWebhook('https://example.com/hook', { secret_token: 's3cret' });
    expect(fake.webhook).toMatchObject({ url: 'https://example.com/hook', secret_token: 's3cret' });
    expect((await telegram.getWebhookInfo()).url).toBe('https://example.com/hook');
    expect((await apiError(telegram.getUpdates(0, 100, 0, undefined))).code).toBe(409);
    await telegram.deleteWebhook();
    expect(fake.webhook).toBeUndefined();

    const sent = await telegram.sendMessage(3, 'draft');
    await telegram.editMessageText(3, sent.message_id, undefined, 'final');
    expect(fake.message(3, sent.message_id)?.text).toBe('final');
    expect(fake.edits).toMatchObject([{ chat_id: 3, message_id: sent.message_id, text: 'final' }]);
    const same = await apiError(telegram.editMessageText(3, sent.message_id, undefined, 'final'));
    expect(same.description).toContain('message is not modified');
    expect((await apiError(telegram.editMessageText(3, 999, undefined, 'x'))).description).toBe('Bad Request: message to edit not found');

    const press = fake.pressButton({ chatId: 3, fromId: 3, data: 'ok', messageId: sent.message_id });
    expect(press.callback_query?.message?.message_id).toBe(sent.message_id);
    await telegram.answerCbQuery(press.callback_query?.id ?? '', 'done');
    expect(fake.callbackAnswers).toMatchObject([{ callback_query_id: press.callback_query?.id, text: 'done' }]);
    expect((await apiError(telegram.answerCbQuery('nope'))).code).toBe(400);
  });

  it('builds realistic user updates', () => {
    const command = fake.sendText({ chatId: -100123, chatType: 'supergroup', text: '/ask@switchboard_bot what?', from: { id: 7 } });
    expect(command.message?.entities).toEqual([{ type: 'bot_command', offset: 0, length: 20 }]);
    expect(command.message?.chat).toMatchObject({ id: -100123, type: 'supergroup' });
    expect(command.message?.from).toMatchObject({ id: 7, is_bot: false });

    const mention = fake.sendText({ chatId: -100123, chatType: 'supergroup', text: 'hey @switchboard_bot look', date: 1_000 });
    expect(mention.message?.entities).toEqual([{ type: 'mention', offset: 4, length: 16 }]);
    expect(mention.message?.date).toBe(1_000);
    expect(mention.update_id).toBe(command.update_id + 1);
    expect(mention.message?.message_id).toBe((command.message?.message_id ?? 0) + 1);

    const reply = fake.sendText({ chatId: 5, text: 'and?', replyToBot: true });
    expect(reply.message?.reply_to_message?.from?.id).toBe(fake.botId);
    expect(reply.message?.chat).toMatchObject({ id: 5, type: 'private' });

    const photo = fake.sendPhoto({ chatId: 5, caption: 'look' });
    expect(photo.message?.photo).toHaveLength(3);
    const doc = fake.sendDocument({ chatId: 5, fileName: 'r.csv', content: 'a,b', caption: 'data' });
    expect(doc.message?.document).toMatchObject({ file_name: 'r.csv', mime_type: 'text/csv', file_size: 3 });
    expect(fake.pendingUpdates.map((u) => u.update_id)).toEqual([command, mention, reply, photo, doc].map((u) => u.update_id));
  });

  it('serves pushed files and refuses ones above 20 MB', async () => {
    const doc = fake.sendDocument({ chatId: 5, fileName: 'n.txt', content: 'note' });
    const fileId = doc.message?.document?.file_id ?? '';
    expect(await (await fetch(await telegram.getFileLink(fileId))).text()).toBe('note');
    const big = fake.sendDocument({ chatId: 5, fileName: 'big.bin', fileSize: 21 * 1024 * 1024 });
    expect((await apiError(telegram.getFile(big.message?.document?.file_id ?? ''))).description).toBe('Bad Request: file is too big');
  });

  it('implements getUpdates offset, limit and long-poll semantics', async () => {
    const [a, b, c] = [1, 2, 3].map((n) => fake.sendText({ chatId: 1, text: `m${n}` }));
    if (!a || !b || !c) throw new Error('unreachable');
    expect((await telegram.getUpdates(0, 100, 0, undefined)).map((u) => u.update_id)).toEqual([a, b, c].map((u) => u.update_id));
    expect(fake.pendingUpdates).toHaveLength(3);
    expect(fake.confirmedOffset).toBe(0);

    expect((await telegram.getUpdates(0, 1, b.update_id, undefined)).map((u) => u.update_id)).toEqual([b.update_id]);
    expect(fake.pendingUpdates.map((u) => u.update_id)).toEqual([b.update_id, c.update_id]);
    expect(fake.confirmedOffset).toBe(b.update_id);

    expect(await telegram.getUpdates(0, 100, c.update_id + 1, undefined)).toEqual([]);
    expect(fake.pendingUpdates).toEqual([]);
    expect(fake.confirmedOffset).toBe(c.update_id + 1);

    // Held until an update arrives.
    const started = Date.now();
    const held = telegram.getUpdates(10, 100, c.update_id + 1, undefined);
    await fake.waitUntil(() => fake.callsOf('getUpdates').some((call) => !call.outcome));
    const d = fake.sendText({ chatId: 1, text: 'late' });
    expect((await held).map((u) => u.update_id)).toEqual([d.update_id]);
    expect(Date.now() - started).toBeLessThan(5000);

    // Held until the timeout when nothing comes.
    const empty = Date.now();
    expect(await telegram.getUpdates(1, 100, d.update_id + 1, undefined)).toEqual([]);
    expect(Date.now() - empty).toBeGreaterThanOrEqual(900);

    // allowed_updates filters what is delivered.
    const button = fake.pressButton({ chatId: 1, data: 'x' });
    fake.sendText({ chatId: 1, text: 'plain' });
    expect((await telegram.getUpdates(0, 100, 0, ['callback_query'])).map((u) => u.update_id)).toEqual([button.update_id]);

    // A second long poll terminates the first with a 409, as Telegram does.
    const first = telegram.getUpdates(30, 100, 10 ** 12, undefined);
    await fake.waitUntil(() => fake.callsOf('getUpdates').filter((call) => !call.outcome).length === 1);
    const second = telegram.getUpdates(0, 100, 0, undefined);
    expect((await apiError(first)).code).toBe(409);
    expect(await second).toEqual([]);
  });

  it('posts pending updates to a set webhook with the secret token, again until answered 2xx', async () => {
    const received: { updateId: number; secret: string | undefined }[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const secret = req.headers['x-telegram-bot-api-secret-token'];
        received.push({
          updateId: (JSON.parse(body) as { update_id: number }).update_id,
          secret: typeof secret === 'string' ? secret : undefined,
        });
        res.writeHead(received.length === 1 ? 500 : 200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      fake.webhookRetryMs = 20;
      const first = fake.sendText({ chatId: 7, text: 'waiting before the hook' });
      await telegram.setWebhook(`http://127.0.0.1:${port}/hook`, { secret_token: 'sekret_1' });
      const second = fake.sendText({ chatId: 7, text: 'after' });
      await fake.waitUntil(() => fake.pendingUpdates.length === 0, 5000);
      expect(received).toEqual([
        { updateId: first.update_id, secret: 'sekret_1' },
        { updateId: first.update_id, secret: 'sekret_1' },
        { updateId: second.update_id, secret: 'sekret_1' },
      ]);
      expect(fake.webhookDeliveries.map((d) => d.status)).toEqual([500, 200, 200]);
      expect(fake.confirmedOffset).toBe(second.update_id + 1);
      await expect(apiError(telegram.getUpdates(0, 100, 0, undefined))).resolves.toMatchObject({ code: 409 });
    } finally {
      await telegram.deleteWebhook();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('closes held long polls on close() so nothing hangs', async () => {
    const held = telegram.getUpdates(50, 100, 0, undefined);
    await fake.waitUntil(() => fake.callsOf('getUpdates').length === 1);
    const started = Date.now();
    await fake.close();
    const outcome = await held.then(
      (updates) => updates,
      (err: unknown) => err,
    );
    expect(Array.isArray(outcome) ? outcome : []).toEqual([]);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('drives a real Telegraf bot in polling mode', async () => {
    const early = fake.sendText({ chatId: 77, text: 'before launch' });
    const bot = new Telegraf(fake.token, { telegram: { apiRoot: fake.apiRoot } });
    const handled: string[] = [];
    bot.catch((err) => {
      throw err;
    });
    bot.command('start', (ctx) => ctx.reply('welcome'));
    bot.on(message('text'), async (ctx) => {
      handled.push(ctx.message.text);
      await ctx.sendChatAction('typing');
      await ctx.reply(`echo: ${ctx.message.text}`, { reply_parameters: { message_id: ctx.message.message_id } });
    });
    const launched = bot.launch();
    bots.push({ bot, launched });

    await fake.waitUntil(() => fake.confirmedOffset > early.update_id);
    expect(fake.calls.slice(0, 3).map((c) => c.method)).toEqual(['getMe', 'deleteWebhook', 'getUpdates']);
    expect(fake.callsOf('getUpdates')[0]?.params).toMatchObject({ timeout: 50, offset: 0, allowed_updates: [] });

    const update = fake.sendText({ chatId: 77, text: 'hello bot' });
    await fake.waitUntil(() => fake.messagesTo(77).length === 2);
    expect(fake.messagesTo(77)).toEqual(['echo: before launch', 'echo: hello bot']);
    expect(fake.sent[1]?.reply_to_message_id).toBe(update.message?.message_id);
    expect(fake.chatActions.map((a) => a.chat_id)).toEqual([77, 77]);
    // The offset moves past an update only with the getUpdates call after it was handled.
    await fake.waitUntil(() => fake.confirmedOffset > update.update_id);
    expect(fake.pendingUpdates).toEqual([]);
    expect(handled).toEqual(['before launch', 'hello bot']);

    fake.sendText({ chatId: 77, text: '/start' });
    await fake.waitUntil(() => fake.messagesTo(77).includes('welcome'));

    bot.stop('done');
    bots.splice(0);
    await launched;
    // On stop telegraf aborts its long poll, then confirms its offset with one short getUpdates.
    expect(fake.callsOf('getUpdates').at(-1)?.params).toMatchObject({ limit: 1 });
    expect(fake.pendingUpdates).toEqual([]);
  });
});
