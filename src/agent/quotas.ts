/**
 * Daily LLM quotas: requests and tokens per user and, for a pool, in total, counted per calendar day
 * in one time zone (the day turns at 00:00 there, DST included). `check` runs before an LLM call and
 * takes one request atomically (Store.quotaTake: N concurrent checks against K requests left let
 * exactly K through); `record` adds the tokens the response reports afterwards. A token limit is
 * checked as "some tokens are left", so the call that crosses it still completes and the next is refused.
 *
 * @example
 * const quotas = new Quotas(store, { timeZone: 'Europe/Berlin' });
 * const scope: QuotaScope = { name: 'public', perUser: { requestsPerDay: 50, tokensPerDay: 100_000 } };
 * const verdict = await quotas.check(scope, userId);
 * if (!verdict.ok) return `Daily ${verdict.reason} limit reached; it resets at ${verdict.resetsAt.toISOString()}.`;
 * const reply = await llm.complete(...);
 * await quotas.record(scope, userId, reply.usage.totalTokens);
 */
import { ConfigError } from '../core/errors.ts';
import type { QuotaCounter, Store } from '../store/store.ts';

/** The clock of the quotas (injected in tests). */
export type QuotaClock = () => Date;

/** A calendar day in a time zone: its date and the instant the next day begins. */
export interface DayWindow {
  /** YYYY-MM-DD in the time zone. */
  readonly day: string;
  /** The next 00:00 in the time zone (when that day starts later, e.g. clocks jump over midnight: its first instant). */
  readonly resetsAt: Date;
}

/** Daily limits; a limit left out is unlimited. Limits are whole numbers ≥ 0 (0 allows nothing). */
export interface QuotaLimits {
  readonly requestsPerDay?: number;
  readonly tokensPerDay?: number;
}

export interface QuotaScope {
  /** 'public' or 'pool:<name>'; the counters of each scope are separate. */
  readonly name: string;
  readonly perUser: QuotaLimits;
  /** Limits shared by every user of the scope (a pool's total). */
  readonly total?: QuotaLimits;
}

export type QuotaCheck =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly reason: 'requests' | 'tokens';
      readonly limit: number;
      readonly used: number;
      readonly resetsAt: Date;
      /** Whose limit was reached: the user's own or the scope's total. */
      readonly scope: 'user' | 'total';
    };

export interface QuotaCounts {
  readonly requests: number;
  readonly tokens: number;
}

export interface QuotaUsage {
  readonly day: string;
  readonly resetsAt: Date;
  readonly user: QuotaCounts;
  /** Present when the scope has total limits. */
  readonly total?: QuotaCounts;
}

export interface QuotasOptions {
  /** An IANA time zone name (`UTC`, `Asia/Tokyo`): the day turns at 00:00 there. */
  readonly timeZone: string;
  readonly now?: QuotaClock;
}

const DAY_MS = 86_400_000;
/** Counters are per day; they outlive their day (at most 25 hours) and then go. */
const COUNTER_TTL_MS = 2 * DAY_MS;

type Kind = 'requests' | 'tokens';
type Side = 'user' | 'total';

export class Quotas {
  /** The IANA zone whose midnight starts a new day. */
  readonly timeZone: string;
  private readonly clock: QuotaClock;
  /**
   * The day last worked out, from the instant it was worked out for until it ends. Working it out
   * takes dozens of Intl formatToParts calls (the search for the next midnight), and every LLM
   * call checks and records its quota.
   */
  private today: { readonly day: string; readonly from: number; readonly resetsAt: number } | undefined;

  constructor(
    private readonly store: Store,
    options: QuotasOptions,
  ) {
    formatter(options.timeZone); // throws for an unknown zone, now rather than at the first check
    this.timeZone = options.timeZone;
    this.clock = options.now ?? (() => new Date());
  }

  /** The quotas' clock. */
  now(): Date {
    return this.clock();
  }

  /** Today in the quotas' time zone. */
  window(): DayWindow {
    const now = this.clock();
    const instant = now.getTime();
    const known = this.today;
    // From the instant it was worked out for until the next midnight it found, it is the same day.
    if (known !== undefined && instant >= known.from && instant < known.resetsAt) {
      return { day: known.day, resetsAt: new Date(known.resetsAt) };
    }
    const window = dayWindow(now, this.timeZone);
    this.today = { day: window.day, from: instant, resetsAt: window.resetsAt.getTime() };
    return window;
  }

  /**
   * Takes one request from the user's and the scope's allowance when both have a request and some
   * tokens left; otherwise takes nothing and says which limit was reached (the user's first).
   * Requests are counted also without a request limit, so `usage` tells the truth.
   */
  async check(scope: QuotaScope, userId: string): Promise<QuotaCheck> {
    const { day, resetsAt } = this.window();
    const targets: { counter: QuotaCounter; kind: Kind; side: Side }[] = [];
    const sides: [Side, QuotaLimits][] = [['user', scope.perUser]];
    if (scope.total !== undefined) sides.push(['total', scope.total]);
    for (const [side, limits] of sides) {
      const requests = checkedLimit(scope, side, 'requestsPerDay', limits.requestsPerDay);
      const tokens = checkedLimit(scope, side, 'tokensPerDay', limits.tokensPerDay);
      const key = (kind: Kind): string => counterKey(scope, day, side, userId, kind);
      targets.push({ counter: { key: key('requests'), limit: requests ?? Number.MAX_SAFE_INTEGER, cost: 1 }, kind: 'requests', side });
      if (tokens !== undefined) targets.push({ counter: { key: key('tokens'), limit: tokens, cost: 0 }, kind: 'tokens', side });
    }
    const result = await this.store.quotaTake(
      targets.map((target) => target.counter),
      COUNTER_TTL_MS,
    );
    if (result.ok) return { ok: true };
    const target = targets.find((candidate) => candidate.counter.key === result.key);
    if (target === undefined) throw new Error(`quotaTake named a counter it was not given: ${result.key}`);
    return { ok: false, reason: target.kind, limit: result.limit, used: result.used, resetsAt, scope: target.side };
  }

  /** Adds the tokens a call used (from the response's usage) to the user's and the scope's total of today. */
  async record(scope: QuotaScope, userId: string, tokens: number): Promise<void> {
    if (!Number.isSafeInteger(tokens) || tokens < 0) throw new RangeError(`tokens must be a whole number ≥ 0, got ${tokens}`);
    if (tokens === 0) return;
    const { day } = this.window();
    const options = { ttlMs: COUNTER_TTL_MS };
    await Promise.all([
      this.store.incr(counterKey(scope, day, 'user', userId, 'tokens'), tokens, options),
      scope.total === undefined ? undefined : this.store.incr(counterKey(scope, day, 'total', userId, 'tokens'), tokens, options),
    ]);
  }

  /** Today's requests and tokens of the user and, when the scope has total limits, of the scope. */
  async usage(scope: QuotaScope, userId: string): Promise<QuotaUsage> {
    const { day, resetsAt } = this.window();
    const counts = async (side: Side): Promise<QuotaCounts> => {
      const [requests, tokens] = await Promise.all(
        (['requests', 'tokens'] as const).map(async (kind) => {
          const key = counterKey(scope, day, side, userId, kind);
          return readCount(key, await this.store.get(key));
        }),
      );
      return { requests: requests ?? 0, tokens: tokens ?? 0 };
    };
    const user = await counts('user');
    if (scope.total === undefined) return { day, resetsAt, user };
    return { day, resetsAt, user, total: await counts('total') };
  }
}

/**
 * The calendar day of `now` in `timeZone` and the instant the next one begins. The next 00:00 is
 * found from the zone's offset at that midnight (not at `now`), so a DST change in between counts;
 * where clocks jump over midnight, the next day begins at the jump.
 */
export function dayWindow(now: Date, timeZone: string): DayWindow {
  const instant = now.getTime();
  if (!Number.isFinite(instant)) throw new RangeError('dayWindow needs a valid date');
  const today = new Date(wallTime(instant, timeZone)); // its UTC fields are the local date and time
  const next = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() + 1);
  return { day: isoDay(today), resetsAt: new Date(startOfDay(next, instant, timeZone)) };
}

function counterKey(scope: QuotaScope, day: string, side: Side, userId: string, kind: Kind): string {
  return side === 'user' ? `quota:${scope.name}:${day}:user:${userId}:${kind}` : `quota:${scope.name}:${day}:total:${kind}`;
}

function checkedLimit(scope: QuotaScope, side: Side, what: string, limit: number | undefined): number | undefined {
  if (limit === undefined || (Number.isSafeInteger(limit) && limit >= 0)) return limit;
  throw new ConfigError(`quota ${scope.name}: ${side === 'user' ? 'per-user' : 'total'} ${what} must be a whole number ≥ 0, got ${limit}`);
}

function readCount(key: string, value: string | null): number {
  if (value === null) return 0;
  const count = Number(value);
  if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(count)) throw new Error(`quota counter ${key} holds "${value}", not a count`);
  return count;
}

function isoDay(date: Date): string {
  const pad = (n: number, width: number): string => String(n).padStart(width, '0');
  return `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)}`;
}

/**
 * The first instant whose wall time in the zone is `wall` (a local midnight, as epoch ms of the same
 * fields in UTC) and which comes after `after`. Tries the zone's offsets a day before and a day after
 * (one of them is in force at that midnight; both when clocks go back over it, then the earlier
 * wins); when neither gives that wall time, clocks jumped over it, and the day begins at the jump.
 */
function startOfDay(wall: number, after: number, timeZone: string): number {
  const candidates = [wall - offsetAt(wall - DAY_MS, timeZone), wall - offsetAt(wall + DAY_MS, timeZone)];
  const exact = candidates.filter((t) => t > after && wallTime(t, timeZone) === wall);
  if (exact.length > 0) return Math.min(...exact);
  let low = Math.max(Math.min(...candidates), after);
  let high = Math.max(...candidates);
  if (!(wallTime(low, timeZone) < wall && wallTime(high, timeZone) >= wall)) {
    // Not the usual jump: search the two days after `after`, which hold the next midnight.
    low = after;
    high = after + 2 * DAY_MS;
  }
  // wallTime(low) < wall <= wallTime(high): find the first millisecond at or past the wall time.
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (wallTime(middle, timeZone) >= wall) high = middle;
    else low = middle;
  }
  return high;
}

/** The zone's offset from UTC at an instant, in ms (positive east of Greenwich). */
function offsetAt(instant: number, timeZone: string): number {
  return wallTime(instant, timeZone) - instant;
}

/** The wall-clock time of an instant in the zone, as epoch ms of the same fields in UTC. */
function wallTime(instant: number, timeZone: string): number {
  const fields: Partial<Record<Intl.DateTimeFormatPartTypes, number>> = {};
  for (const part of formatter(timeZone).formatToParts(instant)) {
    if (part.type !== 'literal') fields[part.type] = Number(part.value);
  }
  const { year = NaN, month = NaN, day = NaN, hour = NaN, minute = NaN, second = NaN } = fields;
  const wall = new Date(0);
  wall.setUTCFullYear(year, month - 1, day); // unlike Date.UTC, keeps years 0..99 as they are
  wall.setUTCHours(hour % 24, minute, second, ((instant % 1000) + 1000) % 1000);
  return wall.getTime();
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** A cached formatter of the zone's wall-clock fields; throws a ConfigError for an unknown zone. */
function formatter(timeZone: string): Intl.DateTimeFormat {
  let format = formatters.get(timeZone);
  if (format === undefined) {
    try {
      format = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch {
      throw new ConfigError(`unknown time zone "${timeZone}": use an IANA name such as UTC, Europe/Berlin or Asia/Tokyo`);
    }
    formatters.set(timeZone, format);
  }
  return format;
}
