import { routeKeys } from './route-keys.ts';
import type { Route, RouteAddResult, Store } from './store.ts';

/**
 * Subscriptions as routes, source → targets, readable from either side. Changes go through the
 * store's atomic routeAdd / routeRemove; reads are plain hash and set reads.
 *
 * @example
 * const routes = new Routes(store);
 * await routes.add({ id: 's1', source: 'https://example.com/feed.xml', target: 'telegram:42', value: '{}' }, 20);
 * await routes.from('https://example.com/feed.xml'); // [{ id: 's1', … }]
 */
export class Routes {
  constructor(private readonly store: Store) {}

  add(route: Route, maxPerTarget: number): Promise<RouteAddResult> {
    return this.store.routeAdd(route, maxPerTarget);
  }

  remove(route: Omit<Route, 'value'>): Promise<boolean> {
    return this.store.routeRemove(route);
  }

  async get(id: string): Promise<Route | null> {
    const { source, target, value } = await this.store.hgetall(routeKeys.record(id));
    return source === undefined || target === undefined || value === undefined ? null : { id, source, target, value };
  }

  /** The routes of a source, by id. */
  from(source: string): Promise<Route[]> {
    return this.many(routeKeys.bySource(source));
  }

  /** The routes to a target, by id. */
  to(target: string): Promise<Route[]> {
    return this.many(routeKeys.byTarget(target));
  }

  /** Every source with at least one route. */
  async sources(): Promise<string[]> {
    return (await this.store.smembers(routeKeys.sources)).sort();
  }

  private async many(key: string): Promise<Route[]> {
    const ids = Object.keys(await this.store.hgetall(key)).sort();
    const routes = await Promise.all(ids.map((id) => this.get(id)));
    // A route removed between the two reads is left out.
    return routes.filter((route): route is Route => route !== null);
  }
}
