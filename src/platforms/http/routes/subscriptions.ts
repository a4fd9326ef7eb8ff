import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AddressSchema } from '../../../core/address.ts';
import { FeedError } from '../../rss/feed-error.ts';
import { SubscriptionSchema } from '../../rss/subscription.ts';
import { SubscriptionError, type Subscriptions } from '../../rss/subscriptions.ts';
import type { ApiClient } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { ErrorBodySchema } from '../schemas.ts';

const SubscriptionViewSchema = SubscriptionSchema.omit({ chatType: true });

/** `/v1/subscriptions`: feeds → addresses. A client manages its own address's; an admin any address's. */
export function registerSubscriptionRoutes(app: FastifyInstance, subscriptions: Subscriptions): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const errors = { 400: ErrorBodySchema, 401: ErrorBodySchema, 403: ErrorBodySchema, 404: ErrorBodySchema, 503: ErrorBodySchema };

  api.post(
    '/v1/subscriptions',
    {
      schema: {
        summary: 'Subscribe an address to an RSS or Atom feed; it gets the newest RSS_INITIAL_ITEMS items at once',
        security: [{ bearer: [] }],
        body: z
          .object({
            feedUrl: z.string().min(1).max(2048),
            to: AddressSchema.optional().describe('Default: your own address. Other addresses: admins only.'),
            instruction: z.string().min(1).max(1000).optional().describe('Each new item goes through the agent with this instruction.'),
          })
          .strict(),
        response: { 200: SubscriptionViewSchema, 201: SubscriptionViewSchema, 409: ErrorBodySchema, 422: ErrorBodySchema, ...errors },
      },
    },
    async (request, reply) => {
      const client = request.client as ApiClient;
      const to = request.body.to ?? client.address;
      if (to !== client.address && !client.isAdmin) throw new ApiError('FORBIDDEN_ADDRESS', undefined, 'to');
      try {
        const { subscription, created } = await subscriptions.subscribe({
          feedUrl: request.body.feedUrl,
          to,
          instruction: request.body.instruction,
          createdBy: to === client.address ? client.userId : null,
        });
        return reply.code(created ? 201 : 200).send(view(subscription));
      } catch (err) {
        if (err instanceof FeedError)
          throw new ApiError(err.failure === 'bad_url' ? 'BAD_REQUEST' : 'FEED_UNREADABLE', err.message, 'feedUrl');
        if (err instanceof SubscriptionError) throw new ApiError('SUBSCRIPTION_LIMIT', err.message);
        throw err;
      }
    },
  );

  api.get(
    '/v1/subscriptions',
    {
      schema: {
        summary: "An address's subscriptions",
        security: [{ bearer: [] }],
        querystring: z.object({ to: AddressSchema.optional().describe('Default: your own address. Other addresses: admins only.') }),
        response: { 200: z.object({ subscriptions: z.array(SubscriptionViewSchema) }), ...errors },
      },
    },
    async (request) => {
      const client = request.client as ApiClient;
      const to = request.query.to ?? client.address;
      if (to !== client.address && !client.isAdmin) throw new ApiError('FORBIDDEN_ADDRESS', undefined, 'to');
      return { subscriptions: (await subscriptions.of(to)).map(view) };
    },
  );

  api.delete(
    '/v1/subscriptions/:id',
    {
      schema: {
        summary: 'Stop a subscription',
        security: [{ bearer: [] }],
        params: z.object({ id: z.string().min(1).max(64) }),
        response: { 204: z.null(), ...errors },
      },
    },
    async (request, reply) => {
      const client = request.client as ApiClient;
      try {
        await subscriptions.unsubscribe(request.params.id, client.address, client.isAdmin);
      } catch (err) {
        if (err instanceof SubscriptionError) throw new ApiError('SUBSCRIPTION_NOT_FOUND');
        throw err;
      }
      return reply.code(204).send(null);
    },
  );
}

function view(subscription: z.infer<typeof SubscriptionSchema>): z.infer<typeof SubscriptionViewSchema> {
  const { chatType: _chatType, ...rest } = subscription;
  return rest;
}
