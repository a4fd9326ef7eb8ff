import { randomUUID } from 'node:crypto';
import { cleanupNamespace } from '../test/helpers/switchboard.ts';

/**
 * Namespaces a bench run uses, removed from RabbitMQ and Redis even when the run is interrupted
 * (Ctrl-C): leftover quorum queues slow RabbitMQ down for every later run.
 */
const live = new Set<string>();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stdout.write(`${signal}: removing ${live.size} namespace(s) of this run\n`);
    void Promise.allSettled([...live].map((namespace) => cleanupNamespace(namespace))).then(() => process.exit(130));
  });
}

export function freshNamespace(): string {
  const namespace = `bench-${randomUUID().slice(0, 8)}`;
  live.add(namespace);
  return namespace;
}

export async function removeNamespace(namespace: string): Promise<void> {
  await cleanupNamespace(namespace);
  live.delete(namespace);
}
