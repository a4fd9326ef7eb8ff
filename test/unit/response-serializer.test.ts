import Fastify from 'fastify';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { serializerCompiler } from '../../src/platforms/http/response-serializer.ts';

describe('API responses through their zod schema', () => {
  const app = Fastify();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  const Task = z.object({ taskId: z.string(), status: z.enum(['queued', 'done']), error: z.string().optional() });
  let answer: unknown;
  app.withTypeProvider<ZodTypeProvider>().get('/task', { schema: { response: { 200: Task } } }, async () => answer as z.infer<typeof Task>);
  afterAll(() => app.close());

  it('sends what the schema names, and drops every other key', async () => {
    answer = { taskId: 't1', status: 'done', owner: 'alice', secret: 'sk-123' };
    const response = await app.inject({ method: 'GET', url: '/task' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ taskId: 't1', status: 'done' });
    expect(response.body).not.toContain('sk-123');
  });

  it('answers 500 rather than send a response of the wrong shape', async () => {
    answer = { taskId: 't1', status: 'lost' };
    const response = await app.inject({ method: 'GET', url: '/task' });
    expect(response.statusCode).toBe(500);
    expect(response.body).not.toContain('lost');
  });
});
