import type { FastifySerializerCompiler } from 'fastify';
import { ResponseSerializationError } from 'fastify-type-provider-zod';
import { z } from 'zod';

/**
 * What a route's response schema is to fastify: the zod schema itself, or (in some fastify
 * versions) wrapped as `{ properties: schema }`.
 */
function zodSchemaOf(schema: unknown): z.ZodType {
  if (schema instanceof z.ZodType) return schema;
  const wrapped: unknown = typeof schema === 'object' && schema !== null ? Reflect.get(schema, 'properties') : undefined;
  if (wrapped instanceof z.ZodType) return wrapped;
  throw new TypeError(`a response schema must be a zod schema, got ${JSON.stringify(schema)}`);
}

/**
 * Every response goes through its route's zod schema before it is written, as with
 * fastify-type-provider-zod's own serializer: keys the schema does not name are dropped, and a
 * response of the wrong shape is an error (a 500), never sent. That serializer runs zod's
 * `encode`, which takes none of zod's compiled fast paths; `parse` does the same for the API's
 * response schemas, for about 15 µs less per response on the 2-core development machine
 * (docs/performance.md). The two differ only where a schema has codecs, transforms, `.catch()` or
 * `.default()`: parse fills a default where encode would refuse the missing value. The one default
 * in a response (a chain node's `toolCalls`, an empty list) is filled when the node is read anyway.
 */
export const serializerCompiler: FastifySerializerCompiler<unknown> = ({ schema, method, url }) => {
  const zod = zodSchemaOf(schema);
  return (data: unknown) => {
    const result = zod.safeParse(data);
    if (!result.success) throw new ResponseSerializationError(method, url, { cause: result.error });
    return JSON.stringify(result.data);
  };
};
