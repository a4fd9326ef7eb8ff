import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ChainNodeSchema, chainTree, type ChainLog, type ChainTree } from '../../../agent/chain-log.ts';
import type { ApiClient } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { ErrorBodySchema } from '../schemas.ts';

const ChainTreeSchema: z.ZodType<ChainTree> = z.lazy(() =>
  ChainNodeSchema.omit({ userId: true }).extend({ children: z.array(ChainTreeSchema) }),
);

/** `GET /v1/chains/:chainId`: what each node of a chain did, as a tree. */
export function registerChainRoutes(app: FastifyInstance, chains: ChainLog): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/v1/chains/:chainId',
    {
      schema: {
        summary: 'A chain as a tree: each node with status, timings, model, tokens and tool calls',
        security: [{ bearer: [] }],
        params: z.object({ chainId: z.string().min(1).max(128) }),
        response: { 200: z.object({ chainId: z.string(), root: ChainTreeSchema }), 401: ErrorBodySchema, 404: ErrorBodySchema },
      },
    },
    async (request) => {
      const client = request.client as ApiClient;
      const nodes = await chains.nodes(request.params.chainId);
      const root = chainTree(nodes);
      // Another user's chain is "not found", as for tasks; admins see every chain.
      if (root === null || (!client.isAdmin && nodes.some((n) => n.userId !== client.userId))) throw new ApiError('CHAIN_NOT_FOUND');
      return { chainId: request.params.chainId, root };
    },
  );
}
