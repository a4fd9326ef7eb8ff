import type { FastifyInstance } from 'fastify';
import type { ApiServices } from '../api.ts';

export function registerHealthRoutes(app: FastifyInstance, services: ApiServices): void {
  app.get('/healthz', { schema: { summary: 'The process is alive' } }, async () => ({ status: 'ok' }));

  app.get('/metrics', { schema: { summary: 'Prometheus metrics of this process' } }, async (_request, reply) => {
    return reply.type(services.metrics.contentType).send(await services.metrics.text());
  });

  app.get('/readyz', { schema: { summary: 'The bus and the store are reachable' } }, async (_request, reply) => {
    const checks = await Promise.allSettled([services.bus.bus.ping(), services.store.ping()]);
    const [bus, store] = checks.map((c) => (c.status === 'fulfilled' ? 'ok' : 'unreachable'));
    const ready = bus === 'ok' && store === 'ok';
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', bus, store });
  });
}
