import { afterEach } from 'vitest';
import { silentLogger } from '../../src/core/logger.ts';
import { MemoryStore, type MemoryStoreOptions } from '../../src/store/memory-store.ts';

/**
 * Opens in-memory stores for a test file and closes every one of them after each test.
 * Call at the top level of the file: `const openStore = memoryStores();`.
 */
export function memoryStores(
  defaults: Partial<MemoryStoreOptions> = { sweepIntervalMs: 0 },
): (options?: Partial<MemoryStoreOptions>) => Promise<MemoryStore> {
  const opened: MemoryStore[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
  });
  return async (options = {}) => {
    const store = await MemoryStore.open({ logger: silentLogger(), ...defaults, ...options });
    opened.push(store);
    return store;
  };
}
