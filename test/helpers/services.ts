import { randomUUID } from 'node:crypto';
import net from 'node:net';

/**
 * Where the real engines are: AMQP_URL / REDIS_URL, else the usual ports on localhost, else
 * containers started with testcontainers where Docker runs. A missing service fails the test run —
 * never a silent skip.
 */
let amqp: Promise<string> | undefined;
let redis: Promise<string> | undefined;

export function amqpUrl(): Promise<string> {
  amqp ??= locate('AMQP_URL', 5672, (host, port) => `amqp://guest:guest@${host}:${port}`, 'rabbitmq:3.13', 5672);
  return amqp;
}

export function redisUrl(): Promise<string> {
  redis ??= locate('REDIS_URL', 6379, (host, port) => `redis://${host}:${port}`, 'redis:7', 6379);
  return redis;
}

/** A fresh name for one test's queues, exchanges or keys, so runs never collide. */
export function uniqueName(prefix = 't'): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

async function locate(
  variable: string,
  port: number,
  format: (host: string, port: number) => string,
  image: string,
  containerPort: number,
): Promise<string> {
  const fromEnv = process.env[variable];
  if (fromEnv) return fromEnv;
  if (await portOpen('127.0.0.1', port)) return format('127.0.0.1', port);
  try {
    const { GenericContainer, Wait } = await import('testcontainers');
    const container = await new GenericContainer(image).withExposedPorts(containerPort).withWaitStrategy(Wait.forListeningPorts()).start();
    return format(container.getHost(), container.getMappedPort(containerPort));
  } catch (err) {
    throw new Error(
      `${variable} is not set, nothing listens on 127.0.0.1:${port}, and no container could be started (${(err as Error).message}). ` +
        `Start the service or set ${variable}.`,
    );
  }
}

export function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A TCP port nothing listens on now (for a server whose URL must be known before it starts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
