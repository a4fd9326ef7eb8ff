import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors, jsonSchemaTransform, validatorCompiler } from 'fastify-type-provider-zod';
import { lazyChild, type Logger } from '../../core/logger.ts';
import type { DeadLetters } from '../../bus/dead-letters.ts';
import type { EnvelopeBus } from '../../bus/envelope-bus.ts';
import type { Metrics } from '../../core/metrics.ts';
import type { Store } from '../../store/store.ts';
import type { AgentServices } from '../../agent/agent-services.ts';
import { registerChainRoutes } from './routes/chains.ts';
import { registerConfirmationRoutes } from './routes/confirmations.ts';
import { ApiKeyAuth, type ApiClient } from './auth.ts';
import { ApiError } from './errors.ts';
import { Inbox } from './inbox.ts';
import { registerDeadLetterRoutes } from './routes/dead-letters.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerMessageRoutes } from './routes/messages.ts';
import { registerSubscriptionRoutes } from './routes/subscriptions.ts';
import type { Subscriptions } from '../rss/subscriptions.ts';
import { serializerCompiler } from './response-serializer.ts';
import { registerTaskRoutes } from './routes/tasks.ts';
import type { TaskEventHub } from './task-event-hub.ts';
import type { TaskStore } from './tasks.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated API client (set for every /v1 route). */
    client: ApiClient | undefined;
  }
}

export interface ApiServices {
  readonly bus: EnvelopeBus;
  readonly store: Store;
  readonly tasks: TaskStore;
  readonly hub: TaskEventHub;
  readonly deadLetters: DeadLetters;
  readonly agent: Pick<AgentServices, 'confirmations' | 'chains'>;
  readonly subscriptions: Subscriptions;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Routes other roles of this process serve on the api's server (the Telegram webhook). */
  readonly extraRoutes?: readonly ((app: FastifyInstance) => void)[];
  readonly config: {
    readonly apiKeys: ReadonlyMap<string, string>;
    readonly adminUsers: ReadonlySet<string>;
    readonly messageMaxChars: number;
    readonly taskTtlMs: number;
  };
}

/** The HTTP API (the `api` role): tasks, their events, health, and the OpenAPI document at /docs. */
export async function buildApi(services: ApiServices): Promise<FastifyInstance> {
  const app = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast keeps FastifyInstance's default generics.
    loggerInstance: services.logger.child({ role: 'api' }) as FastifyBaseLogger,
    // A request's logger (with its reqId) is made only when the request logs something.
    childLoggerFactory: (logger, bindings) => lazyChild(logger as Logger, bindings) as FastifyBaseLogger,
    bodyLimit: Math.max(1_048_576, services.config.messageMaxChars * 8),
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'Switchboard API', description: 'Tasks for the Switchboard agent, and their replies.', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A secret from API_KEYS' } } },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  const auth = new ApiKeyAuth(services.config.apiKeys, services.config.adminUsers);
  app.decorateRequest('client', undefined);
  app.addHook('onRequest', async (request) => {
    if (request.url.startsWith('/v1/')) request.client = auth.authenticate(request.headers.authorization);
  });

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof ApiError) return reply.code(error.status).send(error.toBody());
    if (hasZodFastifySchemaValidationErrors(error)) {
      const first = error.validation[0];
      const field = first?.instancePath.replace(/^\//, '').replaceAll('/', '.') || undefined;
      const where = error.validationContext === 'headers' ? 'header' : 'field';
      const message = `${where} ${field ?? '(body)'}: ${first?.message ?? 'invalid'}`;
      return reply.code(400).send(new ApiError('BAD_REQUEST', message, field).toBody());
    }
    const status = (error as { statusCode?: number }).statusCode;
    if (status === 413) return reply.code(413).send(new ApiError('PAYLOAD_TOO_LARGE').toBody());
    if (status !== undefined && status >= 400 && status < 500) {
      return reply.code(status).send(new ApiError('BAD_REQUEST', (error as Error).message).toBody());
    }
    request.log.error({ err: error }, 'request failed');
    return reply.code(500).send(new ApiError('INTERNAL').toBody());
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send(new ApiError('NOT_FOUND').toBody()));

  app.addHook('preClose', async () => services.hub.endStreams());

  registerHealthRoutes(app, services);
  registerTaskRoutes(app, services);
  registerDeadLetterRoutes(app, services.deadLetters);
  registerChainRoutes(app, services.agent.chains);
  registerConfirmationRoutes(app, services.agent.confirmations);
  registerSubscriptionRoutes(app, services.subscriptions);
  registerMessageRoutes(app, new Inbox(services.store, services.config.taskTtlMs));
  for (const register of services.extraRoutes ?? []) register(app);
  return app;
}
