import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { audience, emitted, newMessageEnvelope, type Envelope } from '../../../core/envelope.ts';
import { parseCommand } from '../../../core/command.ts';
import type { ApiClient } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { IdempotencyKeys } from '../idempotency.ts';
import {
  CreateTaskBodySchema,
  ErrorBodySchema,
  TaskAcceptedSchema,
  TaskParamsSchema,
  TaskViewSchema,
  type CreateTaskBody,
} from '../schemas.ts';
import { taskView, type TaskRecord } from '../tasks.ts';
import { streamTaskEvents } from './task-events.ts';
import type { ApiServices } from '../api.ts';

const errors = {
  400: ErrorBodySchema,
  401: ErrorBodySchema,
  403: ErrorBodySchema,
  404: ErrorBodySchema,
  422: ErrorBodySchema,
  503: ErrorBodySchema,
};

export function registerTaskRoutes(app: FastifyInstance, services: ApiServices): void {
  const { tasks, bus, store, config, hub } = services;
  const idempotency = new IdempotencyKeys(store, config.taskTtlMs);
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.post(
    '/v1/tasks',
    {
      schema: {
        summary: 'Create a task: ask the agent, or deliver a text as it is',
        security: [{ bearer: [] }],
        body: CreateTaskBodySchema,
        headers: z.object({ 'idempotency-key': z.string().min(1).max(256).optional() }).passthrough(),
        response: { 202: TaskAcceptedSchema, ...errors },
      },
    },
    async (request, reply) => {
      const client = request.client as ApiClient;
      const body = request.body;
      if (body.text.length > config.messageMaxChars) {
        throw new ApiError('BAD_REQUEST', `text is longer than ${config.messageMaxChars} characters (MESSAGE_MAX_CHARS)`, 'text');
      }
      const to = body.to ?? [client.address];
      if (!client.isAdmin && to.some((address) => address !== client.address)) throw new ApiError('FORBIDDEN_ADDRESS', undefined, 'to');

      const root = newMessageEnvelope({
        from: client.address,
        user: { id: client.userId, name: client.name },
        text: body.text,
        to,
        conversation: body.conversation,
        command: body.mode === 'agent' ? parseCommand(body.text) : undefined,
      });
      const taskId = root.id;
      root.ref = taskId;

      const record: TaskRecord = {
        taskId,
        chainId: root.chainId,
        owner: client.name,
        address: client.address,
        mode: body.mode,
        callbackUrl: body.callbackUrl,
        createdAt: root.at,
      };
      await tasks.create(record);

      const key = request.headers['idempotency-key'];
      if (key !== undefined) {
        const claim = await idempotency.claim(client.name, key, IdempotencyKeys.hashBody(body), taskId).catch(async (err: unknown) => {
          await tasks.delete(taskId);
          throw err;
        });
        if (claim.replayed) {
          await tasks.delete(taskId);
          const earlier = await tasks.get(claim.taskId);
          if (earlier === null) throw new ApiError('TASK_NOT_FOUND');
          const { status } = taskView(earlier, await tasks.events(earlier.taskId));
          reply.header('idempotent-replayed', 'true');
          return reply.code(202).send({ taskId: earlier.taskId, chainId: earlier.chainId, status });
        }
      }

      try {
        for (const envelope of envelopesFor(root, body)) await bus.publish(envelope);
      } catch (err) {
        request.log.error({ err, taskId }, 'could not publish the task');
        await tasks.delete(taskId);
        if (key !== undefined) await idempotency.release(client.name, key);
        throw new ApiError('UNAVAILABLE');
      }
      request.log.info({ taskId, chainId: root.chainId, mode: body.mode }, 'task accepted');
      return reply.code(202).send({ taskId, chainId: root.chainId, status: 'queued' as const });
    },
  );

  api.get(
    '/v1/tasks/:taskId',
    {
      schema: {
        summary: 'A task: its status and the replies so far',
        security: [{ bearer: [] }],
        params: TaskParamsSchema,
        response: { 200: TaskViewSchema, ...errors },
      },
    },
    async (request) => {
      const record = await ownTask(request.client as ApiClient, request.params.taskId);
      return taskView(record, await tasks.events(record.taskId));
    },
  );

  api.get(
    '/v1/tasks/:taskId/events',
    {
      schema: {
        summary: 'A task as server-sent events: `reply` and `status`, closing when it is done or failed',
        security: [{ bearer: [] }],
        params: TaskParamsSchema,
        produces: ['text/event-stream'],
      },
    },
    async (request, reply) => {
      const record = await ownTask(request.client as ApiClient, request.params.taskId);
      await streamTaskEvents(request, reply, record, tasks, hub);
    },
  );

  /** A client never sees another client's task: both are "not found". */
  async function ownTask(client: ApiClient, taskId: string): Promise<TaskRecord> {
    const record = await tasks.get(taskId);
    if (record === null || record.owner !== client.name) throw new ApiError('TASK_NOT_FOUND');
    return record;
  }
}

/** Agent mode: the root message goes to the agent. Deliver mode: the text goes to each address as it is. */
function envelopesFor(root: Envelope, body: CreateTaskBody): Envelope[] {
  if (body.mode === 'agent') return [root];
  return audience(root).map((to, i) => emitted(root, i, to, { kind: 'reply', text: body.text, format: 'markdown', status: 'done' }));
}
