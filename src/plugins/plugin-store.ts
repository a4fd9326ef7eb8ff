import type { Store } from '../store/store.ts';
import type { PluginStore } from './sdk.ts';

/** The store as a plugin sees it: every key under `plugin:<name>:`. */
export function pluginStore(store: Store, pluginName: string): PluginStore {
  const k = (key: string): string => `plugin:${pluginName}:${key}`;
  return {
    get: (key) => store.get(k(key)),
    set: async (key, value, options) => {
      await store.set(k(key), value, options?.ttlMs === undefined ? {} : { ttlMs: options.ttlMs });
    },
    del: (...keys) => store.del(...keys.map(k)),
    hset: (key, fields) => store.hset(k(key), fields),
    hget: (key, field) => store.hget(k(key), field),
    hgetall: (key) => store.hgetall(k(key)),
    hdel: (key, ...fields) => store.hdel(k(key), ...fields),
    incr: (key, by) => store.incr(k(key), by),
  };
}
