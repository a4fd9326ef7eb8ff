import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // The integration suites share one RabbitMQ and one Redis; files still run in parallel,
    // each isolated by its own names.
    pool: 'forks',
  },
});
