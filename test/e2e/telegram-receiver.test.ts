import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeOpenAi, echo, lastUserText, toolResults } from '../fakes/fake-openai.ts';
import { FakeTelegram } from '../fakes/fake-telegram.ts';
import { codeSample, longMarkdownAnswer } from '../helpers/long-answer.ts';
import { freePort } from '../helpers/services.ts';
import { MODES, startSwitchboard, type Harness } from '../helpers/switchboard.ts';

const BOT = 'switchboard_bot';
const FIXTURE_PLUGINS = path.resolve(import.meta.dirname, '../fixtures/plugins');

describe.each(MODES)('receiver:telegram (long polling), %s mode', (mode) => {
  let telegram: FakeTelegram;
  let llm: FakeOpenAi;
  let sb: Harness;

  beforeAll(async () => {
    [telegram, llm] = await Promise.all([FakeTelegram.start({ botUsername: BOT }), FakeOpenAi.start()]);
    sb = await startSwitchboard({
      mode,
      env: {
        TELEGRAM_BOT_TOKEN: telegram.token,
        TELEGRAM_API_ROOT: telegram.apiRoot,
        OPENAI_API_KEY: 'sk-test',
        OPENAI_BASE_URL: llm.baseURL,
        ADMIN_USERS: 'http:ops,telegram:424242',
        PLUGINS_DIRS: FIXTURE_PLUGINS,
      },
    });
  });
  afterAll(async () => {
    await sb.stop();
    await Promise.all([telegram.close(), llm.close()]);
  });

  /** Texts the LLM was asked, as the person's last message. */
  const asked = (): string[] => llm.requests.map(lastUserText);

  it('a private message goes to the LLM and its answer comes back to the chat; the update is then confirmed', async () => {
    const update = telegram.sendText({ chatId: 5001, text: 'What is <b> & _why_?' });
    await telegram.waitUntil(() => telegram.messagesTo(5001).length > 0, 10_000);
    expect(telegram.messagesTo(5001)).toEqual(['echo: What is &lt;b&gt; &amp; <i>why</i>?']);
    expect(asked()).toContain('What is <b> & _why_?');
    await telegram.waitUntil(() => telegram.confirmedOffset > update.update_id, 35_000);
  });

  it('registers the commands for private chats, groups and each administrator, and /start greets', async () => {
    const names = (commands: readonly { command: string }[]) => commands.map((c) => c.command);
    expect(names(telegram.commandsFor({ type: 'all_private_chats' }))).toEqual(expect.arrayContaining(['help', 'start', 'env', 'login']));
    const group = names(telegram.commandsFor({ type: 'all_group_chats' }));
    expect(group).toEqual(expect.arrayContaining(['help', 'start']));
    expect(group).not.toContain('env');
    expect(names(telegram.commandsFor({ type: 'chat', chat_id: 424242 }))).toContain('plugin');
    expect(names(telegram.commandsFor({ type: 'all_private_chats' }))).not.toContain('plugin');

    telegram.sendText({ chatId: 5002, text: '/start' });
    await telegram.waitUntil(() => telegram.messagesTo(5002).length > 0, 10_000);
    expect(telegram.messagesTo(5002)[0]).toMatch(/^Hello! I am an assistant/);
    expect(telegram.messagesTo(5002)[0]).toContain('/help');
  });

  it('in a group only a mention, a reply to the bot or a command for this bot is answered', async () => {
    const group = -100_700_1;
    const before = llm.requests.length;
    telegram.sendText({ chatId: group, text: 'people talking among themselves' });
    telegram.sendText({ chatId: group, text: '/help@other_bot' });
    telegram.sendText({ chatId: group, text: `@${BOT} what is the time?` });
    telegram.sendText({ chatId: group, text: 'and a reply to the bot', replyToBot: true });
    telegram.sendText({ chatId: group, text: `/clear@${BOT}` });
    telegram.sendText({ chatId: group, text: 'more chatter' });
    telegram.sendText({ chatId: group, text: '/help' });
    await telegram.waitUntil(() => telegram.messagesTo(group).length >= 4, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 300));

    const sent = telegram.messagesTo(group);
    expect(sent).toHaveLength(4);
    expect(sent[0]).toBe('echo: what is the time?');
    expect(sent[1]).toBe('echo: and a reply to the bot');
    expect(sent[2]).toMatch(/forgotten this conversation/);
    expect(sent[3]).toMatch(/^Commands:/);
    expect(asked().slice(before)).toEqual(['what is the time?', 'and a reply to the bot']);
  });

  it('a photo and a document arrive as attachments with their caption', async () => {
    telegram.sendPhoto({ chatId: 5003, caption: 'what is in this picture?' });
    await telegram.waitUntil(() => telegram.messagesTo(5003).length > 0, 10_000);
    const prompt = asked().find((text) => text.startsWith('what is in this picture?'));
    expect(prompt).toMatch(/\[attached photo: image\/jpeg, \d+ bytes, file id AgAC\w+\]/);

    telegram.sendDocument({ chatId: 5003, fileName: 'report.pdf', content: 'x'.repeat(1234) });
    await telegram.waitUntil(() => telegram.messagesTo(5003).length > 1, 10_000);
    expect(asked()).toContainEqual(expect.stringMatching(/^\[attached document: application\/pdf, 1234 bytes, file id \w+\]$/));
  });

  it('a pressed button sends its command as the person, and the press is answered', async () => {
    telegram.sendText({ chatId: 5004, text: 'hi' });
    await telegram.waitUntil(() => telegram.messagesTo(5004).length > 0, 10_000);
    const press = telegram.pressButton({ chatId: 5004, data: '/help' });
    await telegram.waitUntil(() => telegram.messagesTo(5004).length > 1, 10_000);
    expect(telegram.messagesTo(5004)[1]).toMatch(/^Commands:/);
    await telegram.waitUntil(() => telegram.callbackAnswers.some((a) => a.callback_query_id === press.callback_query?.id), 5000);
  });

  it('a tool that needs /confirm asks with buttons; pressing Confirm runs it once and the chain answers', async () => {
    llm.respond((request) => {
      if (toolResults(request).length > 0) return { text: `finished: ${toolResults(request)[0]?.content ?? ''}` };
      if (lastUserText(request) === 'wipe the disk') return { toolCalls: [{ name: 'dangerous', arguments: { target: 'disk' } }] };
      return echo(request, 0);
    });
    try {
      telegram.sendText({ chatId: 5007, text: 'wipe the disk' });
      await telegram.waitUntil(() => telegram.sent.some((m) => m.chat_id === 5007 && m.reply_markup !== undefined), 10_000);
      const question = telegram.sent.find((m) => m.chat_id === 5007 && m.reply_markup !== undefined);
      const buttons = (question?.reply_markup as { inline_keyboard: { text: string; callback_data: string }[][] }).inline_keyboard.flat();
      expect(buttons.map((b) => b.text)).toEqual(['Confirm', 'Cancel']);
      const confirm = buttons[0]?.callback_data ?? '';
      expect(confirm).toMatch(/^\/confirm \S+$/);

      telegram.pressButton({ chatId: 5007, data: confirm, messageId: question?.message_id });
      await telegram.waitUntil(() => telegram.messagesTo(5007).some((t) => t.startsWith('finished:')), 10_000);
      expect(telegram.messagesTo(5007).at(-1)).toBe('finished: done to disk');

      // The same button pressed again decides nothing twice.
      telegram.pressButton({ chatId: 5007, data: confirm, messageId: question?.message_id });
      await telegram.waitUntil(
        () => telegram.messagesTo(5007).length > 2 && !telegram.messagesTo(5007).at(-1)?.startsWith('finished:'),
        10_000,
      );
      expect(telegram.messagesTo(5007).filter((t) => t.startsWith('finished:'))).toHaveLength(1);
    } finally {
      llm.respond(echo);
    }
  });

  it('a 10,000-character answer arrives as valid HTML messages of at most 4096 characters, code blocks intact', async () => {
    const { text, sections } = longMarkdownAnswer();
    llm.respond((request) => (lastUserText(request) === 'the long answer, please' ? { text } : echo(request, 0)));
    try {
      telegram.sendText({ chatId: 5008, text: 'the long answer, please' });
      await telegram.waitUntil(() => telegram.messagesTo(5008).join('').includes('Section 17'), 20_000);
    } finally {
      llm.respond(echo);
    }
    const sent = telegram.sent.filter((m) => m.chat_id === 5008);
    expect(sent.length).toBeGreaterThan(2);
    expect(sent.every((m) => m.parse_mode === 'HTML' && m.text.length <= 4096)).toBe(true);
    const visible = sent.map((m) => telegram.message(5008, m.message_id)?.text ?? '');
    for (let n = 0; n < sections; n++) expect(visible.some((t) => t.includes(codeSample(n)))).toBe(true);
  });

  it('a backlog older than the limit gets one "I was offline" notice per chat, newer messages an answer', async () => {
    const before = llm.requests.length;
    const hourAgo = Math.floor(Date.now() / 1000) - 3600;
    telegram.sendText({ chatId: 5005, text: 'old one', date: hourAgo });
    telegram.sendText({ chatId: 5006, text: 'old two', date: hourAgo });
    telegram.sendText({ chatId: 5005, text: 'old three', date: hourAgo + 60 });
    telegram.sendText({ chatId: 5005, text: 'fresh' });
    await telegram.waitUntil(() => telegram.messagesTo(5005).length >= 2 && telegram.messagesTo(5006).length >= 1, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 300));

    expect(telegram.messagesTo(5005)).toEqual([expect.stringMatching(/^Sorry, I was offline/), 'echo: fresh']);
    expect(telegram.messagesTo(5006)).toEqual([expect.stringMatching(/^Sorry, I was offline/)]);
    expect(asked().slice(before)).toEqual(['fresh']);
  });
});

/** A private text message as Telegram would post it to a webhook, sent now. */
function privateUpdate(updateId: number, chatId: number, text: string): Record<string, unknown> {
  return {
    update_id: updateId,
    message: {
      message_id: updateId % 100_000,
      date: Math.floor(Date.now() / 1000),
      chat: { id: chatId, type: 'private' },
      from: { id: chatId, is_bot: false, first_name: 'Ann' },
      text,
    },
  };
}

describe.each(MODES)('receiver:telegram (webhook on the api), %s mode', (mode) => {
  let telegram: FakeTelegram;
  let llm: FakeOpenAi;
  let sb: Harness;
  let hookUrl: string;

  beforeAll(async () => {
    [telegram, llm] = await Promise.all([FakeTelegram.start({ botUsername: BOT }), FakeOpenAi.start()]);
    const port = await freePort();
    hookUrl = `http://127.0.0.1:${port}/telegram/webhook`;
    sb = await startSwitchboard({
      mode,
      env: {
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: String(port),
        TELEGRAM_BOT_TOKEN: telegram.token,
        TELEGRAM_API_ROOT: telegram.apiRoot,
        TELEGRAM_MODE: 'webhook',
        TELEGRAM_WEBHOOK_URL: hookUrl,
        OPENAI_API_KEY: 'sk-test',
        OPENAI_BASE_URL: llm.baseURL,
      },
    });
  });
  afterAll(async () => {
    await sb.stop();
    await Promise.all([telegram.close(), llm.close()]);
  });

  it('registers the webhook with a secret token, and a message posted to it is answered', async () => {
    expect(telegram.webhook).toMatchObject({ url: hookUrl, allowed_updates: ['message', 'callback_query'] });
    expect(telegram.webhook?.secret_token).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect(telegram.callsOf('getUpdates')).toHaveLength(0);

    const update = telegram.sendText({ chatId: 8001, text: 'through the webhook' });
    await telegram.waitUntil(() => telegram.messagesTo(8001).length > 0, 10_000);
    expect(telegram.messagesTo(8001)).toEqual(['echo: through the webhook']);
    expect(telegram.webhookDeliveries.filter((d) => d.update_id === update.update_id).map((d) => d.status)).toEqual([200]);
  });

  it('refuses a post without the right secret token', async () => {
    const body = JSON.stringify(privateUpdate(1, 8002, 'forged'));
    const attempts: Record<string, string>[] = [{}, { 'x-telegram-bot-api-secret-token': 'wrong' }];
    for (const headers of attempts) {
      const response = await fetch(hookUrl, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      expect(response.status).toBe(401);
    }
    expect(llm.requests.map(lastUserText)).not.toContain('forged');
  });

  it('the same update posted twice (Telegram retrying) is answered once', async () => {
    const secret = telegram.webhook?.secret_token ?? '';
    const update = privateUpdate(990_001, 8003, 'say it once');
    const post = () =>
      fetch(hookUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret },
        body: JSON.stringify(update),
      });
    expect((await post()).status).toBe(200);
    expect((await post()).status).toBe(200);
    await telegram.waitUntil(() => telegram.messagesTo(8003).length > 0, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(telegram.messagesTo(8003)).toEqual(['echo: say it once']);
    expect(llm.requests.map(lastUserText).filter((t) => t === 'say it once')).toHaveLength(1);
  });

  it('a malformed update is answered 200 (sending it again would not help) and nothing else stops', async () => {
    const secret = telegram.webhook?.secret_token ?? '';
    const response = await fetch(hookUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret },
      body: JSON.stringify({ update_id: 'not a number', message: 42 }),
    });
    expect(response.status).toBe(200);
    telegram.sendText({ chatId: 8004, text: 'still here?' });
    await telegram.waitUntil(() => telegram.messagesTo(8004).length > 0, 10_000);
    expect(telegram.messagesTo(8004)).toEqual(['echo: still here?']);
  });
});

describe('receiver:telegram configuration', () => {
  it.each([
    [{ TELEGRAM_MODE: 'webhook' }, /TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_URL/],
    [{ TELEGRAM_MODE: 'webhook', TELEGRAM_WEBHOOK_URL: 'https://bot.example.com/' }, /give it a path of its own/],
    [{ TELEGRAM_MODE: 'webhook', TELEGRAM_WEBHOOK_URL: 'https://bot.example.com/v1/hook' }, /give it a path of its own/],
  ])('refuses to start with %j', async (env, message) => {
    await expect(startSwitchboard({ env: { TELEGRAM_BOT_TOKEN: '1:x', TELEGRAM_API_ROOT: 'http://127.0.0.1:9', ...env } })).rejects.toThrow(
      message,
    );
  });
});
