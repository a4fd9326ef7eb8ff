import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/logger.ts';
import { dayWindow, Quotas, type QuotaScope } from '../../src/agent/quotas.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';

/** A clock the test sets by hand. */
function manualClock(start: string): { now: () => Date; set: (iso: string) => void } {
  let t = new Date(start);
  return { now: () => t, set: (iso) => void (t = new Date(iso)) };
}

const opened: MemoryStore[] = [];
async function setup(timeZone: string, start: string): Promise<{ quotas: Quotas; clock: ReturnType<typeof manualClock> }> {
  const store = await MemoryStore.open({ logger: silentLogger() });
  opened.push(store);
  const clock = manualClock(start);
  return { quotas: new Quotas(store, { timeZone, now: clock.now }), clock };
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close()));
});

const date = (iso: string): Date => new Date(iso);

describe('dayWindow', () => {
  it('gives the local date and the next local midnight', () => {
    expect(dayWindow(date('2024-03-10T14:59:59Z'), 'Asia/Tokyo')).toEqual({ day: '2024-03-10', resetsAt: date('2024-03-10T15:00:00Z') });
    expect(dayWindow(date('2024-03-10T15:00:00Z'), 'Asia/Tokyo')).toEqual({ day: '2024-03-11', resetsAt: date('2024-03-11T15:00:00Z') });
    expect(dayWindow(date('2024-12-31T23:59:59.999Z'), 'UTC')).toEqual({ day: '2024-12-31', resetsAt: date('2025-01-01T00:00:00Z') });
    expect(dayWindow(date('2024-02-28T20:00:00Z'), 'Asia/Kolkata')).toEqual({ day: '2024-02-29', resetsAt: date('2024-02-29T18:30:00Z') });
  });

  it('uses the offset in force at the next midnight across DST changes (New York)', () => {
    // Spring forward on 2024-03-10 at 02:00: the day starts at -05:00 and the next one at -04:00.
    expect(dayWindow(date('2024-03-10T05:00:00Z'), 'America/New_York')).toEqual({
      day: '2024-03-10',
      resetsAt: date('2024-03-11T04:00:00Z'),
    });
    expect(dayWindow(date('2024-03-11T03:59:59.999Z'), 'America/New_York').day).toBe('2024-03-10');
    expect(dayWindow(date('2024-03-11T04:00:00Z'), 'America/New_York').day).toBe('2024-03-11');
    // Fall back on 2024-11-03 at 02:00: a 25-hour day.
    expect(dayWindow(date('2024-11-03T04:00:00Z'), 'America/New_York')).toEqual({
      day: '2024-11-03',
      resetsAt: date('2024-11-04T05:00:00Z'),
    });
    expect(dayWindow(date('2024-11-02T12:00:00Z'), 'America/New_York').resetsAt).toEqual(date('2024-11-03T04:00:00Z'));
  });

  it('handles clocks that jump over midnight or pass it twice (Havana)', () => {
    // 2024-03-10 00:00 → 01:00: the day begins at the jump.
    expect(dayWindow(date('2024-03-10T04:30:00Z'), 'America/Havana')).toEqual({
      day: '2024-03-09',
      resetsAt: date('2024-03-10T05:00:00Z'),
    });
    expect(dayWindow(date('2024-03-10T05:00:00Z'), 'America/Havana').day).toBe('2024-03-10');
    // 2024-11-03 01:00 → 00:00: midnight happens twice; the day begins at the first.
    expect(dayWindow(date('2024-11-02T12:00:00Z'), 'America/Havana').resetsAt).toEqual(date('2024-11-03T04:00:00Z'));
  });

  it('rejects an unknown time zone clearly', () => {
    expect(() => dayWindow(new Date(), 'Mars/Olympus_Mons')).toThrow(/unknown time zone "Mars\/Olympus_Mons"/);
    expect(() => new Quotas({} as never, { timeZone: 'Not/AZone' })).toThrow(/unknown time zone "Not\/AZone"/);
  });
});

describe('Quotas', () => {
  const publicScope = (perUser: QuotaScope['perUser']): QuotaScope => ({ name: 'public', perUser });

  it('the day rolls over at 00:00 in Asia/Tokyo, not at UTC midnight', async () => {
    const { quotas, clock } = await setup('Asia/Tokyo', '2024-03-10T14:00:00Z'); // 23:00 in Tokyo
    const scope = publicScope({ requestsPerDay: 2 });
    expect(await quotas.check(scope, 'alice')).toEqual({ ok: true });
    expect(await quotas.check(scope, 'alice')).toEqual({ ok: true });
    expect(await quotas.check(scope, 'alice')).toEqual({
      ok: false,
      reason: 'requests',
      limit: 2,
      used: 2,
      resetsAt: date('2024-03-10T15:00:00Z'),
      scope: 'user',
    });
    clock.set('2024-03-10T14:59:59.999Z');
    expect((await quotas.check(scope, 'alice')).ok).toBe(false);
    clock.set('2024-03-10T15:00:00Z'); // 00:00 in Tokyo
    expect(await quotas.check(scope, 'alice')).toEqual({ ok: true });
    expect(await quotas.check(scope, 'alice')).toEqual({ ok: true });
    clock.set('2024-03-11T00:00:00Z'); // UTC midnight, 09:00 in Tokyo: same day
    expect(await quotas.check(scope, 'alice')).toMatchObject({ ok: false, used: 2, resetsAt: date('2024-03-11T15:00:00Z') });
    expect(await quotas.usage(scope, 'alice')).toEqual({
      day: '2024-03-11',
      resetsAt: date('2024-03-11T15:00:00Z'),
      user: { requests: 2, tokens: 0 },
    });
  });

  it('the day rolls over at local midnight in America/New_York across a DST change', async () => {
    const { quotas, clock } = await setup('America/New_York', '2024-03-10T12:00:00Z');
    const scope = publicScope({ requestsPerDay: 1 });
    expect(await quotas.check(scope, 'alice')).toEqual({ ok: true });
    // After the spring-forward the next midnight is at -04:00, an hour earlier in UTC than the last one.
    expect(await quotas.check(scope, 'alice')).toMatchObject({ ok: false, resetsAt: date('2024-03-11T04:00:00Z') });
    clock.set('2024-03-11T03:59:59Z');
    expect((await quotas.check(scope, 'alice')).ok).toBe(false);
    clock.set('2024-03-11T04:00:00Z');
    expect(await quotas.check(scope, 'alice')).toEqual({ ok: true });
    // And back: the day of the fall-back lasts 25 hours.
    clock.set('2024-11-03T04:30:00Z');
    expect(await quotas.check(scope, 'alice')).toEqual({ ok: true });
    clock.set('2024-11-04T04:30:00Z'); // 23:30 local, still 3 November
    expect(await quotas.check(scope, 'alice')).toMatchObject({ ok: false, resetsAt: date('2024-11-04T05:00:00Z') });
    clock.set('2024-11-04T05:00:00Z');
    expect(await quotas.check(scope, 'alice')).toEqual({ ok: true });
  });

  it('a clock set back to the day before counts against that day again', async () => {
    const { quotas, clock } = await setup('Europe/Berlin', '2024-06-01T22:30:00Z'); // 00:30 on 2 June in Berlin
    const scope = publicScope({ requestsPerDay: 1 });
    expect(await quotas.check(scope, 'alice')).toEqual({ ok: true });
    expect(quotas.window().day).toBe('2024-06-02');
    clock.set('2024-06-01T21:59:59.999Z'); // 23:59:59.999 on 1 June: an earlier day, with its own allowance
    expect(quotas.window()).toEqual({ day: '2024-06-01', resetsAt: date('2024-06-01T22:00:00Z') });
    expect(await quotas.check(scope, 'alice')).toEqual({ ok: true });
    expect(await quotas.check(scope, 'alice')).toMatchObject({ ok: false, resetsAt: date('2024-06-01T22:00:00Z') });
  });

  it('lets exactly K of N concurrent checks through', async () => {
    const { quotas } = await setup('UTC', '2024-06-01T12:00:00Z');
    const scope = publicScope({ requestsPerDay: 10, tokensPerDay: 1_000 });
    const results = await Promise.all(Array.from({ length: 50 }, () => quotas.check(scope, 'alice')));
    expect(results.filter((r) => r.ok)).toHaveLength(10);
    expect(results.filter((r) => !r.ok && r.reason === 'requests' && r.used === 10)).toHaveLength(40);
    expect((await quotas.usage(scope, 'alice')).user).toEqual({ requests: 10, tokens: 0 });
  });

  it('refuses with reason tokens once recorded usage reaches the limit, until the next local midnight', async () => {
    const { quotas, clock } = await setup('Europe/Berlin', '2024-06-01T10:00:00Z');
    const scope = publicScope({ requestsPerDay: 100, tokensPerDay: 1_000 });
    expect(await quotas.check(scope, 'alice')).toEqual({ ok: true });
    await quotas.record(scope, 'alice', 700);
    expect(await quotas.check(scope, 'alice')).toEqual({ ok: true }); // 300 left: the call may go over
    await quotas.record(scope, 'alice', 500);
    expect(await quotas.check(scope, 'alice')).toEqual({
      ok: false,
      reason: 'tokens',
      limit: 1_000,
      used: 1_200,
      resetsAt: date('2024-06-01T22:00:00Z'), // 00:00 in Berlin (+02:00)
      scope: 'user',
    });
    expect(await quotas.usage(scope, 'alice')).toEqual({
      day: '2024-06-01',
      resetsAt: date('2024-06-01T22:00:00Z'),
      user: { requests: 2, tokens: 1_200 },
    });
    clock.set('2024-06-01T22:00:00Z');
    expect(await quotas.check(scope, 'alice')).toEqual({ ok: true });
    expect((await quotas.usage(scope, 'alice')).user).toEqual({ requests: 1, tokens: 0 });
  });

  it("shares a pool's total limits between its users", async () => {
    const { quotas } = await setup('UTC', '2024-06-01T12:00:00Z');
    const pool: QuotaScope = { name: 'pool:school', perUser: { requestsPerDay: 5 }, total: { requestsPerDay: 3, tokensPerDay: 500 } };
    expect(await quotas.check(pool, 'alice')).toEqual({ ok: true });
    expect(await quotas.check(pool, 'alice')).toEqual({ ok: true });
    expect(await quotas.check(pool, 'bob')).toEqual({ ok: true });
    expect(await quotas.check(pool, 'bob')).toMatchObject({ ok: false, reason: 'requests', scope: 'total', used: 3, limit: 3 });
    expect(await quotas.check(pool, 'carol')).toMatchObject({ ok: false, reason: 'requests', scope: 'total' });
    expect(await quotas.usage(pool, 'bob')).toEqual({
      day: '2024-06-01',
      resetsAt: date('2024-06-02T00:00:00Z'),
      user: { requests: 1, tokens: 0 },
      total: { requests: 3, tokens: 0 },
    });

    // Tokens too: what one user spends counts against the other.
    const tokens: QuotaScope = { name: 'pool:club', perUser: {}, total: { tokensPerDay: 500 } };
    expect(await quotas.check(tokens, 'alice')).toEqual({ ok: true });
    await quotas.record(tokens, 'alice', 500);
    expect(await quotas.check(tokens, 'bob')).toMatchObject({ ok: false, reason: 'tokens', scope: 'total', used: 500, limit: 500 });
    expect(await quotas.usage(tokens, 'alice')).toMatchObject({ user: { requests: 1, tokens: 500 }, total: { requests: 1, tokens: 500 } });
    // Another pool and the public scope count apart.
    expect(await quotas.check(publicScope({ requestsPerDay: 1 }), 'bob')).toEqual({ ok: true });
  });

  it("a user's limit does not affect another user, and a refused check takes nothing", async () => {
    const { quotas } = await setup('UTC', '2024-06-01T12:00:00Z');
    const scope = publicScope({ requestsPerDay: 1, tokensPerDay: 100 });
    expect(await quotas.check(scope, 'alice')).toEqual({ ok: true });
    expect(await quotas.check(scope, 'alice')).toMatchObject({ ok: false, reason: 'requests', scope: 'user' });
    expect(await quotas.check(scope, 'bob')).toEqual({ ok: true });
    expect((await quotas.usage(scope, 'alice')).user).toEqual({ requests: 1, tokens: 0 });

    // Within a pool: alice's own limit is reached, the total still has room for bob.
    const pool: QuotaScope = { name: 'pool:school', perUser: { requestsPerDay: 1 }, total: { requestsPerDay: 10 } };
    expect(await quotas.check(pool, 'alice')).toEqual({ ok: true });
    expect(await quotas.check(pool, 'alice')).toMatchObject({ ok: false, scope: 'user' });
    expect(await quotas.check(pool, 'bob')).toEqual({ ok: true });
    expect((await quotas.usage(pool, 'bob')).total).toEqual({ requests: 2, tokens: 0 });
  });

  it('counts usage without limits, and rejects bad limits and token counts', async () => {
    const { quotas } = await setup('UTC', '2024-06-01T12:00:00Z');
    const unlimited = publicScope({});
    for (let i = 0; i < 3; i++) expect(await quotas.check(unlimited, 'alice')).toEqual({ ok: true });
    await quotas.record(unlimited, 'alice', 42);
    await quotas.record(unlimited, 'alice', 0);
    expect((await quotas.usage(unlimited, 'alice')).user).toEqual({ requests: 3, tokens: 42 });
    expect(await quotas.check(publicScope({ requestsPerDay: 0 }), 'bob')).toMatchObject({ ok: false, used: 0, limit: 0 });

    await expect(quotas.check(publicScope({ requestsPerDay: -1 }), 'alice')).rejects.toThrow(
      /per-user requestsPerDay must be a whole number/,
    );
    await expect(quotas.check({ name: 'pool:x', perUser: {}, total: { tokensPerDay: 1.5 } }, 'alice')).rejects.toThrow(
      /quota pool:x: total tokensPerDay/,
    );
    await expect(quotas.record(unlimited, 'alice', -5)).rejects.toThrow(/tokens must be a whole number/);
    await expect(quotas.record(unlimited, 'alice', Number.NaN)).rejects.toThrow(/tokens must be a whole number/);
  });
});
