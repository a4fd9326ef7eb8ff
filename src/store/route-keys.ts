import type { Route } from './store.ts';

/**
 * Where the routes of Store.routeAdd live, the same in every adapter: for each source a hash
 * route id → target, for each target a hash route id → source, a hash per route (source, target,
 * value), and the set of sources that have a route.
 */
export const routeKeys = {
  bySource: (source: string): string => `route:from:${source}`,
  byTarget: (target: string): string => `route:to:${target}`,
  record: (id: string): string => `route:id:${id}`,
  sources: 'route:sources',
} as const;

/** The keys one route touches, in the order the Lua scripts take them. */
export function keysOfRoute(route: Omit<Route, 'value'>): [string, string, string, string] {
  return [routeKeys.bySource(route.source), routeKeys.byTarget(route.target), routeKeys.record(route.id), routeKeys.sources];
}
