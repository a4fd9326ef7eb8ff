import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Confirmations } from '../../../agent/confirmations.ts';
import type { ApiClient } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { ErrorBodySchema } from '../schemas.ts';

/** `POST /v1/confirmations/:formId`: an API client's /confirm or /cancel. */
export function registerConfirmationRoutes(app: FastifyInstance, confirmations: Confirmations): void {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/v1/confirmations/:formId',
    {
      schema: {
        summary: 'Approve or reject a tool call that waits for you (the task is `waiting` meanwhile)',
        security: [{ bearer: [] }],
        params: z.object({ formId: z.string().min(1).max(64) }),
        body: z
          .object({
            decision: z.enum(['approve', 'reject']),
            args: z.record(z.string(), z.unknown()).optional().describe('Edited arguments (approve only), checked against the tool.'),
          })
          .strict(),
        response: {
          200: z.object({ formId: z.string(), decision: z.enum(['approve', 'reject']), chainId: z.string(), tools: z.array(z.string()) }),
          400: ErrorBodySchema,
          401: ErrorBodySchema,
          403: ErrorBodySchema,
          409: ErrorBodySchema,
          503: ErrorBodySchema,
        },
      },
    },
    async (request) => {
      const client = request.client as ApiClient;
      const { formId } = request.params;
      const { decision, args } = request.body;
      if (args !== undefined && decision !== 'approve') throw new ApiError('BAD_REQUEST', 'args are only for "approve"', 'args');
      const result = await confirmations
        .decide({ formId, userId: client.userId, decision, ...(args !== undefined ? { args } : {}) })
        .catch((err: unknown) => {
          request.log.error({ err, formId }, 'could not continue the chain');
          throw new ApiError('UNAVAILABLE');
        });
      if (result.ok) return { formId, decision: result.decision, chainId: result.chainId, tools: result.tools };
      if (result.code === 'FORM_FORBIDDEN') throw new ApiError('CONFIRMATION_FORBIDDEN', result.message);
      if (result.code === 'INVALID_ARGS') throw new ApiError('BAD_REQUEST', result.message, 'args');
      throw new ApiError('CONFIRMATION_CLOSED', result.message);
    },
  );
}
