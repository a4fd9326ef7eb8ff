import { z } from 'zod';

const ENV_KEY = /^[A-Z][A-Z0-9_]{0,63}$/;

/** `plugin.json`: what a plugin is and what it needs, checked before its code is loaded. */
export const PluginManifestSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lower-case letters, digits, _ and -'),
    version: z.string().regex(/^\d+\.\d+\.\d+([-+].*)?$/, 'a semantic version such as 1.0.0'),
    description: z.string().min(1).max(500),
    /** Platforms it serves; empty = all. */
    platforms: z.array(z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/)).default([]),
    /** Per-user private env keys its tools read (set by each user with /env KEY=VALUE). */
    env: z.array(z.string().regex(ENV_KEY, 'an upper-case key such as GITHUB_TOKEN')).default([]),
    /** Operator settings read from the server's environment, with defaults. */
    settings: z
      .record(z.string().regex(ENV_KEY), z.object({ description: z.string().optional(), default: z.string().optional() }))
      .default({}),
    /** npm packages its code imports; a missing one stops the plugin from loading with a clear message. */
    packages: z.array(z.string().min(1)).default([]),
    /** The entry module, relative to the folder. */
    main: z.string().default('index.ts'),
  })
  .strict();
export type PluginManifest = z.infer<typeof PluginManifestSchema>;
