import path from 'node:path';
import { AmqpBus } from './bus/amqp-bus.ts';
import type { Bus } from './bus/bus.ts';
import { MemoryBus } from './bus/memory-bus.ts';
import type { Config } from './core/config.ts';
import { ConfigError } from './core/errors.ts';
import type { Logger } from './core/logger.ts';
import { MemoryStore } from './store/memory-store.ts';
import { RedisStore } from './store/redis-store.ts';
import type { Store } from './store/store.ts';

export interface Adapters {
  readonly mode: 'embedded' | 'distributed';
  readonly bus: Bus;
  readonly store: Store;
}

/**
 * The one place that chooses the bus and store adapters: RabbitMQ and Redis when AMQP_URL and
 * REDIS_URL are set (distributed mode), else the embedded memory adapters with snapshots in DATA_DIR.
 */
export function adapterMode(config: Config): Adapters['mode'] {
  if (!config.amqpUrl && !config.redisUrl) return 'embedded';
  if (!config.amqpUrl || !config.redisUrl) {
    throw new ConfigError(`${config.amqpUrl ? 'REDIS_URL' : 'AMQP_URL'}: distributed mode needs both AMQP_URL and REDIS_URL`);
  }
  return 'distributed';
}

export async function openAdapters(config: Config, logger: Logger): Promise<Adapters> {
  if (adapterMode(config) === 'distributed' && config.amqpUrl && config.redisUrl) {
    const bus = await AmqpBus.open({
      url: config.amqpUrl,
      logger: logger.child({ component: 'amqp-bus' }),
      namespace: config.bus.namespace,
      deliveryLimit: config.bus.deliveryLimit,
    });
    try {
      const store = await RedisStore.open({
        url: config.redisUrl,
        logger: logger.child({ component: 'redis-store' }),
        keyPrefix: config.redisPrefix,
      });
      return { mode: 'distributed', bus, store };
    } catch (err) {
      await bus.close();
      throw err;
    }
  }
  const bus = await MemoryBus.open({
    logger: logger.child({ component: 'memory-bus' }),
    snapshotFile: path.join(config.dataDir, 'bus.json'),
    deliveryLimit: config.bus.deliveryLimit,
  });
  const store = await MemoryStore.open({
    logger: logger.child({ component: 'memory-store' }),
    snapshotFile: path.join(config.dataDir, 'store.json'),
  });
  return { mode: 'embedded', bus, store };
}
