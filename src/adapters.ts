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
  return engineUrls(config) ? 'distributed' : 'embedded';
}

/** Both URLs (distributed mode), none (embedded), or a ConfigError for half of them. */
function engineUrls(config: Config): { amqpUrl: string; redisUrl: string } | undefined {
  const { amqpUrl, redisUrl } = config;
  if (amqpUrl && redisUrl) return { amqpUrl, redisUrl };
  if (amqpUrl || redisUrl) {
    throw new ConfigError(`${amqpUrl ? 'REDIS_URL' : 'AMQP_URL'}: distributed mode needs both AMQP_URL and REDIS_URL`);
  }
  return undefined;
}

export async function openAdapters(config: Config, logger: Logger): Promise<Adapters> {
  const urls = engineUrls(config);
  if (urls) {
    const bus = await AmqpBus.open({
      url: urls.amqpUrl,
      logger: logger.child({ component: 'amqp-bus' }),
      namespace: config.bus.namespace,
      deliveryLimit: config.bus.deliveryLimit,
    });
    try {
      const store = await RedisStore.open({
        url: urls.redisUrl,
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
