import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // As bin/sdk-hooks.mjs does for the CLI: plugins anywhere import the SDK by this name.
  resolve: { alias: { 'switchboard/sdk': fileURLToPath(new URL('./src/plugins/sdk.ts', import.meta.url)) } },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // The integration suites share one RabbitMQ and one Redis; files still run in parallel,
    // each isolated by its own names.
    pool: 'forks',
  },
});
