import { ConfigError } from './core/errors.ts';

/** Every role a process can run; `all` is every one of them. */
export const ROLE_NAMES = ['api', 'worker', 'sender:http', 'sender:telegram', 'receiver:telegram', 'receiver:rss'] as const;
export type RoleName = (typeof ROLE_NAMES)[number];

/** `--role all`, `--role api`, `--role api,worker`: validated and expanded. */
export function parseRoles(spec: string): RoleName[] {
  const parts = spec
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  if (parts.length === 0) throw new ConfigError(`--role: expected one of all, ${ROLE_NAMES.join(', ')}`);
  const roles = new Set<RoleName>();
  for (const part of parts) {
    if (part === 'all') ROLE_NAMES.forEach((r) => roles.add(r));
    else if ((ROLE_NAMES as readonly string[]).includes(part)) roles.add(part as RoleName);
    else throw new ConfigError(`--role: unknown role "${part}"; expected all, ${ROLE_NAMES.join(', ')}`);
  }
  return [...roles];
}
