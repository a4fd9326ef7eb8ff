import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiClient } from '../auth.ts';
import type { Inbox } from '../inbox.ts';
import { ErrorBodySchema } from '../schemas.ts';
import { InboxMessageSchema } from '../inbox.ts';

export function registerMessageRoutes(app: FastifyInstance, inbox: Inbox): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/v1/messages',
    {
      schema: {
        summary: "Messages delivered to this client outside its own tasks (an admin's deliveries), oldest first",
        security: [{ bearer: [] }],
        response: { 200: z.object({ messages: z.array(InboxMessageSchema) }), 401: ErrorBodySchema },
      },
    },
    async (request) => ({ messages: await inbox.list((request.client as ApiClient).address) }),
  );
}
