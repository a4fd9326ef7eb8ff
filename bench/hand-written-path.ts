/**
 * A yardstick, not a product: the command path written by hand with the same libraries (node:http,
 * amqplib, ioredis) and the same broker and store work per task as (a), and nothing else — no
 * fastify, no zod, no logging, no metrics, no ports or adapters, no retries or recovery. What it
 * reaches is about as much of the raw baseline as this stack can reach on the machine it runs on,
 * so `npm run bench:ceiling` tells how far Switchboard's own layers are from it.
 *
 * Per task, as in (a): `POST /v1/tasks` → SET of the task record → publish to the inbound exchange
 * with a confirm → 202. Worker: one of 8 single-active-consumer shard queues (quorum, dead-letter
 * exchange, delivery limit) → the reply published to the outbound exchange with a confirm, beside
 * the chain-log entry (HSET with a TTL, one Lua step) → ack. Sender: `out.http` → the task event
 * written once with its notice on the task-events channel (one Lua step) → ack.
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import amqplib, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import { Redis } from 'ioredis';
import { socketOf } from '../src/bus/amqp-connection.ts';
import { Namespace, TopologyRegistry } from '../src/bus/amqp-topology.ts';
import {
  INBOUND_EXCHANGE,
  OUTBOUND_EXCHANGE,
  agentQueue,
  inboundRoutingKey,
  senderQueue,
  shardOf,
  switchboardTopology,
} from '../src/bus/topology.ts';
import { coalesceWrites } from '../src/core/coalesce-writes.ts';
import { loadConfig } from '../src/core/config.ts';
import { ENVELOPE_VERSION, type Envelope } from '../src/core/envelope.ts';
import { TASK_EVENTS_CHANNEL } from '../src/platforms/http/tasks.ts';
import { loadScripts } from '../src/store/redis-support.ts';

/** Switchboard's defaults: the shards, prefetch and delivery limit (a) runs with. */
const { bus: DEFAULTS } = loadConfig({});
const TTL_MS = 86_400_000;

/** A Lua step of the Redis store: its keys, then its arguments. */
type Script = (...keysAndArgs: (string | number)[]) => Promise<unknown>;

/** The store's own Lua scripts, defined on `redis` as the store defines them; returns one by name. */
function storeScripts(redis: Redis): (name: string) => Script {
  const version = 'bench';
  for (const script of loadScripts(version)) redis.defineCommand(script.command, { numberOfKeys: script.numberOfKeys, lua: script.lua });
  return (name) => {
    const call: unknown = Reflect.get(redis, `${name}:${version}`);
    if (typeof call !== 'function') throw new Error(`no Lua script ${name} in src/store/lua`);
    return (...keysAndArgs) => (call as Script).apply(redis, keysAndArgs);
  };
}

export interface HandWrittenPipeline {
  readonly url: string;
  stop(): Promise<void>;
}

/** Starts the pipeline under `namespace` (the names (a) uses, so the bench's cleanup removes both). */
export async function startHandWrittenPipeline(options: {
  readonly amqpUrl: string;
  readonly redisUrl: string;
  readonly namespace: string;
  readonly apiKey: string;
  /** The text the worker answers with: /help's reply, so messages are the size (a)'s are. */
  readonly replyText: string;
}): Promise<HandWrittenPipeline> {
  const redis = new Redis(options.redisUrl, { keyPrefix: `${options.namespace}:` });
  // Before it connects: the store's batching of the writes of one turn, from the first command on.
  redis.on('connect', () => coalesceWrites(redis.stream));
  let connection: ChannelModel | undefined;
  let server: http.Server | undefined;
  const stop = async (): Promise<void> => {
    try {
      server?.closeAllConnections();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      await connection?.close();
    } finally {
      redis.disconnect();
    }
  };
  try {
    connection = await amqplib.connect(options.amqpUrl, { noDelay: true });
    server = await serve(redis, connection, options);
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}`, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

async function serve(
  redis: Redis,
  connection: ChannelModel,
  options: { readonly namespace: string; readonly apiKey: string; readonly replyText: string },
): Promise<http.Server> {
  const { namespace: ns, replyText } = options;
  const names = new Namespace(ns);
  const script = storeScripts(redis);
  const chainLogPut = script('hset-ttl');
  const recordEvent = script('hsetnx');

  coalesceWrites(socketOf(connection));
  const publisher = await connection.createConfirmChannel();
  // Declared as (a) declares them: the same exchanges, queues and arguments.
  const topology = new TopologyRegistry(names, DEFAULTS.deliveryLimit);
  topology.record(switchboardTopology(DEFAULTS.shards, ['http']));
  await topology.apply(publisher);

  const publish = (channel: ConfirmChannel, exchange: string, routingKey: string, envelope: Envelope): Promise<void> =>
    new Promise((resolve, reject) => {
      const body = Buffer.from(JSON.stringify(envelope));
      channel.publish(names.physical(exchange), routingKey, body, { persistent: true, messageId: envelope.id }, (err: unknown) =>
        err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(),
      );
    });
  const consume = async (queue: string, handle: (envelope: Envelope) => Promise<unknown>): Promise<void> => {
    const channel: Channel = await connection.createChannel();
    await channel.prefetch(DEFAULTS.prefetch);
    await channel.consume(names.physical(queue), (message: ConsumeMessage | null) => {
      if (message === null) return;
      // Trusted: this pipeline wrote it.
      const envelope = JSON.parse(message.content.toString('utf8')) as Envelope;
      handle(envelope).then(
        () => channel.ack(message),
        () => channel.nack(message),
      );
    });
  };

  // The worker: every shard queue answers /help.
  for (let shard = 0; shard < DEFAULTS.shards; shard++) {
    await consume(agentQueue(shard), (node) => {
      const startedAt = new Date().toISOString();
      const reply: Envelope = {
        ...node,
        id: randomUUID(),
        parentId: node.id,
        depth: node.depth + 1,
        at: new Date().toISOString(),
        body: { kind: 'reply', text: replyText, format: 'markdown', status: 'done' },
      };
      const entry = {
        nodeId: node.id,
        parentId: node.parentId,
        depth: node.depth,
        kind: 'command',
        command: 'help',
        status: 'done',
        userId: node.user?.id ?? null,
        startedAt,
        finishedAt: new Date().toISOString(),
        toolCalls: [],
      };
      return Promise.all([
        publish(publisher, OUTBOUND_EXCHANGE, 'http.reply', reply),
        chainLogPut(`chain:${node.chainId}`, TTL_MS, node.id, JSON.stringify(entry)),
      ]);
    });
  }
  // The http sender: the reply becomes the task's event, announced on the task-events channel.
  await consume(senderQueue('http'), (reply) => {
    const taskId = reply.ref ?? '';
    const text = reply.body.kind === 'reply' ? reply.body.text : '';
    const event = JSON.stringify({ type: 'reply', text, at: reply.at, status: 'done' });
    const notice = JSON.stringify({ taskId, eventId: reply.id, status: 'done' });
    return recordEvent(`task:${taskId}:events`, reply.id, event, TTL_MS, `${ns}:${TASK_EVENTS_CHANNEL}`, notice);
  });

  // The api.
  const accept = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    if (request.headers.authorization !== `Bearer ${options.apiKey}`) {
      response.writeHead(401).end();
      return;
    }
    const { text, conversation } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { text: string; conversation: string };
    const id = randomUUID();
    const at = new Date().toISOString();
    const from = 'http:bench';
    const root: Envelope = {
      v: ENVELOPE_VERSION,
      id,
      chainId: id,
      parentId: null,
      depth: 0,
      ref: id,
      at,
      from,
      user: { id: 'api:bench', name: 'bench' },
      conversation,
      chatType: 'private',
      to: [from],
      body: { kind: 'message', text, attachments: [], command: { name: text.slice(1), args: '' } },
    };
    const record = { taskId: id, chainId: id, owner: 'bench', address: from, mode: 'agent', createdAt: at };
    await redis.set(`task:${id}`, JSON.stringify(record), 'PX', TTL_MS);
    await publish(publisher, INBOUND_EXCHANGE, inboundRoutingKey(shardOf(`${from}#${conversation}`, DEFAULTS.shards), 'http'), root);
    response.writeHead(202, { 'content-type': 'application/json; charset=utf-8' });
    response.end(JSON.stringify({ taskId: id, chainId: id, status: 'queued' }));
  };
  const server = http.createServer((request, response) => {
    accept(request, response).catch((err: unknown) => response.writeHead(503).end(String(err)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}
