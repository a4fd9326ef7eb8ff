import { ValidationError } from '../../core/errors.ts';
import type { Envelope } from '../../core/envelope.ts';
import { lazyChild, type Logger } from '../../core/logger.ts';
import type { Subscription } from '../../bus/bus.ts';
import type { EnvelopeBus } from '../../bus/envelope-bus.ts';
import { senderQueue } from '../../bus/topology.ts';
import type { Store } from '../../store/store.ts';
import { postCallback } from './callback.ts';
import { Inbox } from './inbox.ts';
import type { TaskEvent, TaskRecord, TaskStore } from './tasks.ts';

export interface HttpSenderOptions {
  readonly bus: EnvelopeBus;
  readonly store: Store;
  readonly tasks: TaskStore;
  readonly apiKeys: ReadonlyMap<string, string>;
  readonly callbackAttempts: number;
  readonly callbackMinDelayMs?: number;
  readonly prefetch: number;
  readonly ttlMs: number;
  readonly logger: Logger;
}

/**
 * The `sender:http` role: records what chains say to API clients on their tasks (for GET and the
 * event stream) and POSTs replies to a task's callback URL. Recording is keyed by envelope id and a
 * callback is marked sent only after it succeeded, so redeliveries change nothing a client sees.
 */
export class HttpSender {
  private subscription: Subscription | undefined;
  private readonly inbox: Inbox;

  constructor(private readonly options: HttpSenderOptions) {
    this.inbox = new Inbox(options.store, options.ttlMs);
  }

  async start(): Promise<void> {
    this.subscription = await this.options.bus.consume(senderQueue('http'), (envelope) => this.deliver(envelope), {
      prefetch: this.options.prefetch,
    });
  }

  async stop(): Promise<void> {
    await this.subscription?.cancel();
  }

  async abort(): Promise<void> {
    await this.subscription?.abort();
    this.subscription = undefined;
  }

  private async deliver(envelope: Envelope): Promise<void> {
    const log = lazyChild(this.options.logger, { envelopeId: envelope.id, chainId: envelope.chainId, taskId: envelope.ref });
    const event = toTaskEvent(envelope);
    if (event === undefined) return;
    const [to] = envelope.to;
    // The envelope was delivered, so its task's message was published: the record stays.
    const record = envelope.ref === undefined ? null : await this.options.tasks.get(envelope.ref, { keep: true });
    if (record === null || record.address !== to) {
      if (event.type === 'reply' && to !== undefined) {
        await this.inbox.put(to, envelope.id, { text: event.text, at: event.at, chainId: envelope.chainId });
        log.info({ to }, 'reply kept in the client inbox');
      }
      return;
    }
    if (await this.options.tasks.record(record.taskId, envelope.id, event)) log.debug({ type: event.type }, 'task event recorded');
    if (event.type === 'reply' && record.callbackUrl) await this.callback(record, envelope.id, event, log);
  }

  private async callback(record: TaskRecord, eventId: string, event: Extract<TaskEvent, { type: 'reply' }>, log: Logger): Promise<void> {
    const sentKey = `callback:${eventId}`;
    if ((await this.options.store.get(sentKey)) !== null) return;
    const secret = this.options.apiKeys.get(record.owner);
    if (secret === undefined || !record.callbackUrl) {
      log.warn({ owner: record.owner }, 'callback skipped: the client has no API key any more');
      return;
    }
    const payload = {
      taskId: record.taskId,
      chainId: record.chainId,
      eventId,
      status: event.status ?? (event.form ? 'waiting' : 'running'),
      reply: { text: event.text, at: event.at },
      ...(event.error ? { error: event.error } : {}),
    };
    await postCallback(record.callbackUrl, payload, secret, eventId, {
      attempts: this.options.callbackAttempts,
      minDelayMs: this.options.callbackMinDelayMs,
    });
    await this.options.store.set(sentKey, '1', { ttlMs: this.options.ttlMs });
    log.info({ url: record.callbackUrl }, 'callback delivered');
  }
}

function toTaskEvent(envelope: Envelope): TaskEvent | undefined {
  const { body } = envelope;
  switch (body.kind) {
    case 'reply':
      return {
        type: 'reply',
        text: body.text,
        at: envelope.at,
        ...(body.status ? { status: body.status } : {}),
        ...(body.error ? { error: body.error } : {}),
        ...(body.form ? { form: body.form } : {}),
      };
    case 'status':
      return { type: 'status', status: body.status, at: envelope.at };
    case 'message':
    case 'step':
      throw new ValidationError('a message envelope reached the http sender');
  }
}
