#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx), so `npm install` is the only set-up step.
import { register as registerHooks } from 'node:module';
import { register } from 'tsx/esm/api';

register();
registerHooks('./sdk-hooks.mjs', import.meta.url);
await import('../src/cli.ts');
