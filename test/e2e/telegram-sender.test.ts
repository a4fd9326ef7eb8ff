import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeTelegram } from '../fakes/fake-telegram.ts';
import { MODES, startSwitchboard, type Harness } from '../helpers/switchboard.ts';

describe.each(MODES)('sender:telegram, %s mode', (mode) => {
  let telegram: FakeTelegram;
  let sb: Harness;

  beforeAll(async () => {
    telegram = await FakeTelegram.start();
    sb = await startSwitchboard({ mode, env: { TELEGRAM_BOT_TOKEN: telegram.token, TELEGRAM_API_ROOT: telegram.apiRoot } });
  });
  afterAll(async () => {
    await sb.stop();
    await telegram.close();
  });
  afterEach(() => {
    telegram.calls.length = 0;
  });

  it('a task in deliver mode from an admin client arrives in that Telegram chat, formatted and unmangled', async () => {
    const chatId = mode === 'embedded' ? 1001 : 1002;
    const text = '**Build** finished: `a < b && c > d` for *snake_case* names & [the log](https://example.com/log?a=1&b=2)';
    const response = await sb.request('ops', 'POST', '/v1/tasks', { text, mode: 'deliver', to: [`telegram:${chatId}`] });
    expect(response.status).toBe(202);
    await telegram.waitUntil(() => telegram.messagesTo(chatId).length > 0, 10_000);
    const [sent] = telegram.sent.filter((m) => String(m.chat_id) === String(chatId));
    expect(sent?.parse_mode).toBe('HTML');
    expect(sent?.text).toBe(
      '<b>Build</b> finished: <code>a &lt; b &amp;&amp; c &gt; d</code> for <i>snake_case</i> names &amp; <a href="https://example.com/log?a=1&amp;b=2">the log</a>',
    );
  });

  it('a 429 storm on a long answer: every chunk arrives once, in order', async () => {
    const chatId = mode === 'embedded' ? 2001 : 2002;
    const paragraphs = Array.from({ length: 3 }, (_, i) => `Part ${i + 1}. ${'word '.repeat(700)}`);
    telegram.failNext('sendMessage', 2, { error_code: 429, description: 'Too Many Requests: retry after 1', retry_after: 1 });
    await sb.request('ops', 'POST', '/v1/tasks', { text: paragraphs.join('\n\n'), mode: 'deliver', to: [`telegram:${chatId}`] });
    await telegram.waitUntil(() => telegram.messagesTo(chatId).length >= 3, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const texts = telegram.messagesTo(chatId);
    expect(texts.map((t) => t.slice(0, 7))).toEqual(['Part 1.', 'Part 2.', 'Part 3.']);
    expect(texts.every((t) => t.length <= 4096)).toBe(true);
  });
});
