import Fastify from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EnvelopeBus } from '../../src/bus/envelope-bus.ts';
import { MemoryBus } from '../../src/bus/memory-bus.ts';
import type { Envelope } from '../../src/core/envelope.ts';
import { TransientError, ValidationError } from '../../src/core/errors.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { Metrics } from '../../src/core/metrics.ts';
import { migratedKey } from '../../src/platforms/telegram/chat-migrations.ts';
import { readUpdate, type BotIdentity } from '../../src/platforms/telegram/inbound.ts';
import { telegramClient } from '../../src/platforms/telegram/telegram-client.ts';
import { TelegramInbox } from '../../src/platforms/telegram/telegram-inbox.ts';
import { TelegramPolling } from '../../src/platforms/telegram/telegram-polling.ts';
import { TelegramReceiver } from '../../src/platforms/telegram/telegram-receiver.ts';
import { SECRET_HEADER, telegramWebhookRoute } from '../../src/platforms/telegram/telegram-webhook.ts';
import { TelegramUpdateSchema, type TelegramUpdate } from '../../src/platforms/telegram/update-schema.ts';
import type { Store } from '../../src/store/store.ts';
import { FakeTelegram } from '../fakes/fake-telegram.ts';
import { memoryStores } from '../helpers/memory-stores.ts';

const bot: BotIdentity = { id: 7000000001, username: 'switchboard_bot' };
const now = Math.floor(Date.now() / 1000);

function update(fields: Record<string, unknown>, id = 1): TelegramUpdate {
  return TelegramUpdateSchema.parse({ update_id: id, ...fields });
}

function message(chat: { id: number; type: string }, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { message: { message_id: 10, date: now, chat, from: { id: 42, is_bot: false, first_name: 'Ann', last_name: 'Lee' }, ...extra } };
}

const privateChat = { id: 42, type: 'private' };
const group = { id: -100123, type: 'supergroup' };

describe('readUpdate: which updates are for the bot', () => {
  it('a private text goes to the agent as the person, from the chat', () => {
    const inbound = readUpdate(update(message(privateChat, { text: 'hello' })), bot);
    expect(inbound).toMatchObject({
      kind: 'message',
      chatId: 42,
      sentAt: now * 1000,
      message: { from: 'telegram:42', user: { id: 'telegram:42', name: 'Ann Lee' }, text: 'hello', chatType: 'private' },
    });
  });

  it('the same update always gives the same envelope id; another update another', () => {
    const a = readUpdate(update(message(privateChat, { text: 'hello' }), 5), bot);
    const b = readUpdate(update(message(privateChat, { text: 'hello' }), 5), bot);
    const c = readUpdate(update(message(privateChat, { text: 'hello' }), 6), bot);
    if (a.kind !== 'message' || b.kind !== 'message' || c.kind !== 'message') throw new Error('expected messages');
    expect(a.message.id).toBe(b.message.id);
    expect(c.message.id).not.toBe(a.message.id);
  });

  it('in a group: ignored unless a mention, a text mention, a reply to the bot or a command for it', () => {
    const kind = (extra: Record<string, unknown>) => readUpdate(update(message(group, extra)), bot).kind;
    expect(kind({ text: 'chatter' })).toBe('ignored');
    expect(kind({ text: 'hi @someone_else', entities: [{ type: 'mention', offset: 3, length: 13 }] })).toBe('ignored');
    expect(kind({ text: 'reply to a person', reply_to_message: { message_id: 3, from: { id: 9, is_bot: false, first_name: 'Bo' } } })).toBe(
      'ignored',
    );
    expect(kind({ text: 'hi @Switchboard_Bot', entities: [{ type: 'mention', offset: 3, length: 16 }] })).toBe('message');
    expect(kind({ text: 'hi Bot', entities: [{ type: 'text_mention', offset: 3, length: 3, user: { id: bot.id, is_bot: true } }] })).toBe(
      'message',
    );
    expect(kind({ text: 'a reply', reply_to_message: { message_id: 3, from: { id: bot.id, is_bot: true, first_name: 'SB' } } })).toBe(
      'message',
    );
    expect(kind({ text: '/help' })).toBe('message');
    expect(kind({ text: '/help@SWITCHBOARD_BOT' })).toBe('message');
    expect(kind({ text: '/help@other_bot' })).toBe('ignored');
  });

  it('in a group a bare command is ours only when we know it; `@thisbot /cmd` is the command', () => {
    const known = (name: string) => name === 'help';
    expect(readUpdate(update(message(group, { text: '/ban someone' })), bot, known)).toMatchObject({ kind: 'ignored' });
    expect(readUpdate(update(message(group, { text: '/help' })), bot, known)).toMatchObject({
      kind: 'message',
      message: { command: { name: 'help' } },
    });
    expect(readUpdate(update(message(privateChat, { text: '/ban someone' })), bot, known)).toMatchObject({
      kind: 'message',
      message: { command: { name: 'ban', args: 'someone' } },
    });
    const mentioned = readUpdate(
      update(message(group, { text: '@switchboard_bot /help me', entities: [{ type: 'mention', offset: 0, length: 16 }] })),
      bot,
      known,
    );
    expect(mentioned).toMatchObject({ kind: 'message', message: { text: '/help me', command: { name: 'help', args: 'me' } } });
  });

  it('an anonymous group admin speaks as the group; a supergroup upgrade is reported as a move', () => {
    const anonymous = {
      message: {
        message_id: 5,
        date: now,
        chat: group,
        from: { id: 1087968824, is_bot: true, first_name: 'Group', username: 'GroupAnonymousBot' },
        sender_chat: { id: -100123, type: 'supergroup', title: 'Ops' },
        text: '/help',
      },
    };
    expect(readUpdate(update(anonymous), bot)).toMatchObject({
      kind: 'message',
      message: { user: { id: 'telegram:-100123', name: 'Ops' } },
    });
    expect(readUpdate(update(message({ id: -4501, type: 'group' }, { migrate_to_chat_id: -1004501 })), bot)).toEqual({
      kind: 'migrated',
      chatId: -4501,
      to: -1004501,
    });
  });

  it('a command for another bot is ignored in private chats too', () => {
    expect(readUpdate(update(message(privateChat, { text: '/start@other_bot' })), bot)).toMatchObject({ kind: 'ignored' });
  });

  it('the mention is taken out of the text, and /cmd@thisbot becomes /cmd', () => {
    const mention = readUpdate(
      update(message(group, { text: '@switchboard_bot  what time is it?', entities: [{ type: 'mention', offset: 0, length: 16 }] })),
      bot,
    );
    expect(mention).toMatchObject({ message: { text: 'what time is it?', chatType: 'group' } });
    const command = readUpdate(update(message(group, { text: '/Remind@switchboard_bot  in 5 min: tea' })), bot);
    expect(command).toMatchObject({ message: { text: '/remind in 5 min: tea', command: { name: 'remind', args: 'in 5 min: tea' } } });
  });

  it('channel posts, bots and messages with nothing to read are ignored', () => {
    expect(readUpdate(update(message({ id: -100, type: 'channel' }, { text: 'post' })), bot).kind).toBe('ignored');
    const fromBot = {
      message: { message_id: 1, date: now, chat: privateChat, from: { id: 5, is_bot: true, first_name: 'B' }, text: 'hi' },
    };
    expect(readUpdate(update(fromBot), bot).kind).toBe('ignored');
    expect(readUpdate(update(message(privateChat, { sticker: { file_id: 'x' } })), bot).kind).toBe('ignored');
    expect(readUpdate(update({ edited_message: { message_id: 1 } }), bot).kind).toBe('ignored');
  });

  it('a photo becomes its largest size as an attachment, a document keeps its type and size, the caption is the text', () => {
    const photo = readUpdate(
      update(
        message(privateChat, {
          caption: 'look',
          photo: [
            { file_id: 'small', width: 90, height: 90, file_size: 100 },
            { file_id: 'large', width: 1280, height: 1280, file_size: 90_000 },
          ],
        }),
      ),
      bot,
    );
    expect(photo).toMatchObject({
      message: { text: 'look', attachments: [{ kind: 'photo', fileId: 'large', mime: 'image/jpeg', size: 90_000, caption: 'look' }] },
    });
    const document = readUpdate(
      update(message(privateChat, { document: { file_id: 'doc', mime_type: 'application/pdf', file_size: 12 } })),
      bot,
    );
    expect(document).toMatchObject({
      message: { text: '', attachments: [{ kind: 'document', fileId: 'doc', mime: 'application/pdf', size: 12 }] },
    });
  });

  it('a button press is the command in its data, in the chat of the message that carried it; never stale', () => {
    const press = readUpdate(
      update({
        callback_query: {
          id: 'cb1',
          from: { id: 42, is_bot: false, first_name: 'Ann' },
          message: { message_id: 3, date: now - 86_400, chat: group },
          data: '/confirm f-1',
        },
      }),
      bot,
    );
    expect(press).toMatchObject({
      kind: 'message',
      callbackQueryId: 'cb1',
      sentAt: undefined,
      message: { from: 'telegram:-100123', user: { id: 'telegram:42' }, text: '/confirm f-1', command: { name: 'confirm', args: 'f-1' } },
    });
    const inline = readUpdate(update({ callback_query: { id: 'cb2', from: { id: 42, first_name: 'Ann' }, data: '/x' } }), bot);
    expect(inline).toMatchObject({ kind: 'ignored', callbackQueryId: 'cb2' });
  });
});

/** Records what would go on the bus; `failures` publishes fail first, `hold` makes one text wait. */
class RecordingBus extends EnvelopeBus {
  readonly published: Envelope[] = [];
  failures = 0;
  hold: { text: string; until: Promise<void> } | undefined;
  /** A publish is waiting on `hold`. */
  holding = false;

  override async publish(envelope: Envelope): Promise<void> {
    if (this.failures > 0) {
      this.failures -= 1;
      throw new TransientError('the bus is unreachable');
    }
    if (this.hold && envelope.body.kind === 'message' && envelope.body.text === this.hold.text) {
      this.holding = true;
      await this.hold.until;
    }
    this.published.push(envelope);
  }

  texts(): string[] {
    return this.published.map((e) => (e.body.kind === 'message' || e.body.kind === 'reply' ? e.body.text : e.body.kind));
  }
}

describe('the durable inbox', () => {
  const openStore = memoryStores();
  let telegram: FakeTelegram;
  let memoryBus: MemoryBus;
  let bus: RecordingBus;
  let store: Store;

  beforeEach(async () => {
    telegram = await FakeTelegram.start();
    memoryBus = await MemoryBus.open({ logger: silentLogger() });
    bus = new RecordingBus(memoryBus, 4);
    store = await openStore();
  });
  afterEach(async () => {
    await telegram.close();
    await memoryBus.close();
  });

  function inbox(metrics?: Metrics): TelegramInbox {
    return new TelegramInbox({
      bus,
      store,
      telegram: telegramClient(telegram.token, telegram.apiRoot),
      bot,
      maxUpdateAgeMs: 600_000,
      logger: silentLogger(),
      ...(metrics ? { metrics } : {}),
    });
  }

  function polling(box: TelegramInbox): TelegramPolling {
    return new TelegramPolling({
      telegram: telegramClient(telegram.token, telegram.apiRoot),
      inbox: box,
      logger: silentLogger(),
      minBackoffMs: 10,
      maxBackoffMs: 50,
    });
  }

  it('an update handled twice is published once; stale ones give one notice per chat; malformed ones are skipped', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const box = inbox(metrics);
    const hello = telegram.sendText({ chatId: 42, text: 'hello' });
    await box.handle(hello);
    await box.handle(hello);
    await box.handle(telegram.sendText({ chatId: 43, text: 'old', date: now - 3600 }));
    await box.handle(telegram.sendText({ chatId: 43, text: 'older', date: now - 7200 }));
    await box.handle({ update_id: 'x', message: 'not a message' });
    expect(bus.texts()).toEqual(['hello', expect.stringMatching(/^Sorry, I was offline .* more than 10 min ago/)]);
    expect(bus.published[1]?.to).toEqual(['telegram:43']);
    const counts = await metrics.registry.getSingleMetricAsString('switchboard_telegram_updates_total');
    expect(counts).toContain('outcome="published"} 1');
    expect(counts).toContain('outcome="duplicate"} 1');
    expect(counts).toContain('outcome="stale"} 2');
    expect(counts).toContain('outcome="malformed"} 1');
  });

  it('stale updates of one chat arriving at once (webhook) still give one notice', async () => {
    const box = inbox();
    const old = now - 3600;
    await Promise.all([1, 2, 3].map((i) => box.handle(telegram.sendText({ chatId: 45, text: `old ${i}`, date: old }))));
    expect(bus.texts()).toEqual([expect.stringMatching(/^Sorry, I was offline/)]);
  });

  it('a group that became a supergroup is remembered, so answers go to the new chat', async () => {
    await inbox().handle(
      telegram.pushUpdate({ message: { message_id: 9, date: now, chat: { id: -4501, type: 'group' }, migrate_to_chat_id: -1004501 } }),
    );
    expect(await store.get(migratedKey(-4501))).toBe('-1004501');
    expect(bus.published).toHaveLength(0);
  });

  it('an update in a batch that cannot be read or keeps failing for what it is, is skipped; the others go on', async () => {
    const failing = telegram.sendText({ chatId: 46, text: 'refused' });
    telegram.pushUpdate({ message: { message_id: 3, date: now, text: 'no chat' } });
    telegram.pushUpdate({ no_id: true });
    telegram.sendText({ chatId: 47, text: 'fine' });
    const refusing = new (class extends RecordingBus {
      override async publish(envelope: Envelope): Promise<void> {
        if (envelope.body.kind === 'message' && envelope.body.text === 'refused') throw new ValidationError('refused for what it is');
        await super.publish(envelope);
      }
    })(memoryBus, 4);
    const poller = new TelegramPolling({
      telegram: telegramClient(telegram.token, telegram.apiRoot),
      inbox: new TelegramInbox({
        bus: refusing,
        store,
        telegram: telegramClient(telegram.token, telegram.apiRoot),
        bot,
        maxUpdateAgeMs: 600_000,
        logger: silentLogger(),
      }),
      logger: silentLogger(),
      minBackoffMs: 10,
      maxBackoffMs: 50,
    });
    poller.start();
    try {
      await telegram.waitUntil(() => telegram.confirmedOffset > failing.update_id + 2, 5000);
    } finally {
      await poller.stop();
    }
    expect(refusing.texts()).toEqual(['fine']);
  });

  it('abort() returns while a publish hangs (the broker is away), without confirming the batch', async () => {
    bus.hold = { text: 'stuck', until: new Promise<void>(() => undefined) };
    const stuck = telegram.sendText({ chatId: 48, text: 'stuck' });
    const poller = polling(inbox());
    poller.start();
    await expect.poll(() => bus.holding, { timeout: 5000 }).toBe(true);
    await poller.abort();
    expect(telegram.confirmedOffset).toBeLessThanOrEqual(stuck.update_id);
  });

  it('getUpdates answering 502 is waited out: the update arrives once, afterwards', async () => {
    telegram.failNext('getUpdates', 2, { error_code: 502, description: 'Bad Gateway' });
    const update = telegram.sendText({ chatId: 49, text: 'through the 502s' });
    const poller = polling(inbox());
    poller.start();
    try {
      await telegram.waitUntil(() => telegram.confirmedOffset > update.update_id, 5000);
    } finally {
      await poller.stop();
    }
    expect(telegram.callsOf('getUpdates').filter((c) => c.outcome?.ok === false)).toHaveLength(2);
    expect(bus.texts()).toEqual(['through the 502s']);
  });

  function receiver(): TelegramReceiver {
    return new TelegramReceiver({
      bus,
      store,
      token: telegram.token,
      apiRoot: telegram.apiRoot,
      mode: 'polling',
      maxUpdateAgeMs: 600_000,
      commands: () => [{ name: 'help', description: 'Help' }],
      adminUsers: new Set(),
      logger: silentLogger(),
      minBackoffMs: 10,
    });
  }

  it('starts although Telegram is unreachable at first, and takes updates once it answers', async () => {
    telegram.failNext('getMe', 1, { error_code: 502, description: 'Bad Gateway' });
    const started = receiver();
    await started.start();
    try {
      telegram.sendText({ chatId: 50, text: 'after the outage' });
      await expect.poll(() => bus.texts(), { timeout: 8000 }).toEqual(['after the outage']);
      expect(telegram.callsOf('getMe')).toHaveLength(2);
    } finally {
      await started.stop();
    }
  });

  it('refuses to start with a token Telegram refuses', async () => {
    telegram.failNext('getMe', 1, { error_code: 401, description: 'Unauthorized' });
    await expect(receiver().start()).rejects.toThrow(/TELEGRAM_BOT_TOKEN: Telegram refused the token \(401/);
  });

  it('a batch is confirmed to Telegram only after the bus confirmed its envelopes; an outage is waited out', async () => {
    bus.failures = 3;
    const first = telegram.sendText({ chatId: 42, text: 'during the outage' });
    const poller = polling(inbox());
    poller.start();
    try {
      await expect.poll(() => bus.failures, { timeout: 5000, interval: 1 }).toBe(1);
      expect(telegram.confirmedOffset).toBeLessThanOrEqual(first.update_id);
      await expect.poll(() => bus.published.length, { timeout: 5000 }).toBe(1);
      telegram.sendText({ chatId: 42, text: 'after it' });
      await expect.poll(() => bus.published.length, { timeout: 5000 }).toBe(2);
      await telegram.waitUntil(() => telegram.confirmedOffset > first.update_id, 5000);
    } finally {
      await poller.stop();
    }
    expect(bus.texts()).toEqual(['during the outage', 'after it']);
    expect(telegram.pendingUpdates).toHaveLength(0);
  });

  it('a receiver killed between publishing and confirming: the next one gets the batch again and publishes none of it twice', async () => {
    // Hold the getUpdates that would confirm the batch, as if the process died before sending it.
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    telegram.respondWith('getUpdates', async (params) => {
      if (typeof params.offset !== 'number' || params.offset <= 0) return undefined;
      await gate;
      return { result: [] };
    });
    const first = telegram.sendText({ chatId: 42, text: 'one' });
    telegram.sendText({ chatId: 43, text: 'two' });
    telegram.sendText({ chatId: 42, text: 'three' });
    const dying = polling(inbox());
    dying.start();
    await telegram.waitUntil(() =>
      telegram.callsOf('getUpdates').some((call) => typeof call.params.offset === 'number' && call.params.offset > first.update_id),
    );
    await dying.abort();
    release();
    expect(telegram.confirmedOffset).toBeLessThanOrEqual(first.update_id);
    expect(telegram.pendingUpdates).toHaveLength(3);

    telegram.respondWith('getUpdates', undefined);
    const next = polling(inbox());
    next.start();
    try {
      await telegram.waitUntil(() => telegram.pendingUpdates.length === 0, 5000);
    } finally {
      await next.stop();
    }
    expect(bus.texts()).toEqual(['one', 'two', 'three']);
  });
});

describe('the webhook route', () => {
  async function app(receive: (update: unknown) => Promise<void>) {
    const server = Fastify();
    telegramWebhookRoute({ path: '/telegram/hook', secret: 'the_secret', receive })(server);
    await server.ready();
    return server;
  }

  it('refuses a post without the secret token before reading it; answers 503 while the update cannot be handled, 200 once it is', async () => {
    const received: unknown[] = [];
    let down = true;
    const server = await app(async (update) => {
      if (down) throw new TransientError('the bus is unreachable');
      received.push(update);
    });
    try {
      const post = (secret?: string) =>
        server.inject({
          method: 'POST',
          url: '/telegram/hook',
          headers: secret === undefined ? {} : { [SECRET_HEADER]: secret },
          payload: { update_id: 1 },
        });
      expect((await post()).statusCode).toBe(401);
      expect((await post('wrong')).statusCode).toBe(401);
      expect((await post('the_secret')).statusCode).toBe(503);
      down = false;
      expect((await post('the_secret')).statusCode).toBe(200);
      expect(received).toEqual([{ update_id: 1 }]);
    } finally {
      await server.close();
    }
  });
});
