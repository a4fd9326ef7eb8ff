import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DeadLetterRecordSchema, deadLetterView, type DeadLetters } from '../../../bus/dead-letters.ts';
import type { ApiClient } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { ErrorBodySchema } from '../schemas.ts';

/** A dead letter as admins see it: the body as text, without the transport headers. */
const DeadLetterViewSchema = DeadLetterRecordSchema.omit({ headers: true });

const errors = { 401: ErrorBodySchema, 403: ErrorBodySchema, 404: ErrorBodySchema };

/** Admin routes: what reached the dead-letter queue, and replaying it. */
export function registerDeadLetterRoutes(app: FastifyInstance, deadLetters: DeadLetters): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const adminOnly = async (request: { client: ApiClient | undefined }): Promise<void> => {
    if (!request.client?.isAdmin) throw new ApiError('ADMIN_ONLY');
  };

  api.get(
    '/v1/dead-letters',
    {
      preHandler: adminOnly,
      schema: {
        summary: 'Dead letters, oldest first (admins)',
        security: [{ bearer: [] }],
        querystring: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }),
        response: { 200: z.object({ deadLetters: z.array(DeadLetterViewSchema) }), ...errors },
      },
    },
    async (request) => ({
      deadLetters: (await deadLetters.list(request.query.limit)).map(deadLetterView),
    }),
  );

  api.post(
    '/v1/dead-letters/:id/replay',
    {
      preHandler: adminOnly,
      schema: {
        summary: 'Publish a dead letter again to its original exchange and routing key (admins)',
        security: [{ bearer: [] }],
        params: z.object({ id: z.string().min(1) }),
        response: { 200: z.object({ replayed: z.number() }), ...errors },
      },
    },
    async (request) => {
      if (request.params.id === 'all') return { replayed: await deadLetters.replayAll() };
      if (!(await deadLetters.replay(request.params.id))) throw new ApiError('DEAD_LETTER_NOT_FOUND');
      return { replayed: 1 };
    },
  );
}
