import { defineCommand, definePlugin, defineTool, z, type PluginContext } from 'switchboard/sdk';

/** The furthest ahead a reminder may be set: one year, in minutes. */
const MAX_MINUTES = 525_600;
/** Pending reminders one person may have at a time. */
const MAX_PENDING = 100;
const MAX_TEXT = 1000;

const ReminderRecord = z.object({ at: z.string(), text: z.string() });
type ReminderRecord = z.infer<typeof ReminderRecord>;

type ScheduleResult = { readonly id: string; readonly at: string } | { readonly error: string };

/** The hash of the caller's reminders: schedule id → {at, text}. */
function recordsKey(ctx: PluginContext): string {
  return `reminders:${ctx.caller.userId ?? ctx.caller.address}`;
}

/** What the model reads as the person's message when the reminder fires. */
export function reminderMessage(text: string): string {
  return [
    `Scheduled reminder, due now (I asked you to set it earlier): ${text}`,
    'Remind me of it in a short message. It has fired already, so do not set it again.',
  ].join('\n');
}

/** `2025-06-01T09:00:00Z`: ISO in UTC, to the second. */
function utc(at: Date): string {
  return at.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Schedules `text` for `at` in the caller's conversation and records it under the caller, so
 * /reminders can list and cancel it. The one path both the tool and /remind take.
 */
async function scheduleReminder(ctx: PluginContext, at: Date, text: string): Promise<ScheduleResult> {
  const now = Date.now();
  if (!(at.getTime() > now)) return { error: `The time ${utc(at)} is not in the future (now it is ${utc(new Date(now))}).` };
  if (at.getTime() - now > MAX_MINUTES * 60_000) return { error: 'A reminder can be set at most one year ahead.' };
  const pending = await pendingReminders(ctx);
  if (pending.length >= MAX_PENDING) {
    return { error: `You have ${pending.length} pending reminders, the most allowed; cancel some with /reminders cancel <id>.` };
  }
  const id = await ctx.schedule.message(at, reminderMessage(text));
  const record: ReminderRecord = { at: at.toISOString(), text };
  await ctx.store.hset(recordsKey(ctx), { [id]: JSON.stringify(record) });
  ctx.logger.info({ reminder: id, at: record.at }, 'reminder set');
  return { id, at: utc(at) };
}

/** The caller's reminders that have not fired yet, soonest first; records of fired ones are removed. */
async function pendingReminders(ctx: PluginContext): Promise<Array<ReminderRecord & { id: string }>> {
  const key = recordsKey(ctx);
  const now = Date.now();
  const pending: Array<ReminderRecord & { id: string }> = [];
  const past: string[] = [];
  for (const [id, raw] of Object.entries(await ctx.store.hgetall(key))) {
    const record = parseRecord(raw);
    if (record === undefined || Date.parse(record.at) <= now) past.push(id);
    else pending.push({ id, ...record });
  }
  if (past.length > 0) await ctx.store.hdel(key, ...past);
  return pending.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
}

function parseRecord(raw: string): ReminderRecord | undefined {
  try {
    const parsed = ReminderRecord.safeParse(JSON.parse(raw));
    return parsed.success && !Number.isNaN(Date.parse(parsed.data.at)) ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

const ZONED_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/i;

/** `2025-06-01T09:00:00+02:00`: a date-time that names its zone (a bare local time would be a guess). */
function isZonedDateTime(text: string): boolean {
  return ZONED_DATE_TIME.test(text) && !Number.isNaN(Date.parse(text));
}

const ReminderArgs = z
  .object({
    text: z.string().trim().min(1).max(MAX_TEXT).describe('What to remind the user of, in their words'),
    inMinutes: z.number().positive().max(MAX_MINUTES).optional().describe('Minutes from now (give this or at)'),
    at: z
      .string()
      .refine(isZonedDateTime, 'an ISO 8601 date-time with a time zone, e.g. 2025-06-01T09:00:00+02:00 or 2025-06-01T07:00:00Z')
      .optional()
      .describe('When, as an ISO 8601 date-time with a time zone, e.g. 2025-06-01T09:00:00+02:00 (give this or inMinutes)'),
  })
  .refine((args) => (args.inMinutes === undefined) !== (args.at === undefined), {
    message: 'give exactly one of inMinutes (minutes from now) or at (an ISO date-time)',
  });

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d+(?:\.\d+)?)([smhd])$/;

/** `30s`, `10m`, `1.5h`, `2d` → milliseconds; undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text);
  if (!match) return undefined;
  const ms = Number(match[1]) * (UNIT_MS[match[2] ?? ''] ?? Number.NaN);
  return Number.isFinite(ms) && ms >= 1000 ? Math.round(ms) : undefined;
}

/** The text after /remind: `<duration> <text>`. */
const RemindArgs = z.string().transform((input, ctx) => {
  const [, duration = '', text = ''] = /^(\S*)\s*([\s\S]*)$/.exec(input.trim()) ?? [];
  const ms = parseDuration(duration);
  if (ms === undefined) {
    ctx.issues.push({ code: 'custom', input, message: 'start with a duration: a number and s, m, h or d, e.g. 30s, 10m, 2h, 1d' });
    return z.NEVER;
  }
  if (text.trim() === '' || text.length > MAX_TEXT) {
    ctx.issues.push({ code: 'custom', input, message: `after the duration, the text of the reminder (1 to ${MAX_TEXT} characters)` });
    return z.NEVER;
  }
  return { ms, text: text.trim() };
});

/** How far `at` is from now, roughly: `in 10 min`, `in 2 h 5 min`, `in 3 days`. */
function fromNow(at: string): string {
  const minutes = Math.max(0, Math.round((Date.parse(at) - Date.now()) / 60_000));
  if (minutes < 1) return 'in less than a minute';
  if (minutes < 60) return `in ${minutes} min`;
  if (minutes < 48 * 60) return `in ${Math.floor(minutes / 60)} h${minutes % 60 ? ` ${minutes % 60} min` : ''}`;
  return `in ${Math.round(minutes / 1440)} days`;
}

export default definePlugin({
  tools: [
    defineTool({
      name: 'set_reminder',
      description:
        'Remind the user of something later: at the time, the reminder comes back in this conversation as a message. Give inMinutes for "in N minutes/hours" or at for a fixed date-time. Returns the reminder id and when it fires (UTC).',
      args: ReminderArgs,
      timeoutMs: 10_000,
      run: async (args, ctx) => {
        const at = args.at !== undefined ? new Date(args.at) : new Date(Date.now() + (args.inMinutes ?? 0) * 60_000);
        const result = await scheduleReminder(ctx, at, args.text);
        // The person's mistakes (a past time, too many reminders) are answers, not tool failures.
        return 'error' in result ? `Error: ${result.error}` : result;
      },
    }),
  ],
  commands: [
    defineCommand({
      name: 'remind',
      description: 'Set a reminder: I send you the text after the given time',
      usage: '<duration> <text>, e.g. /remind 10m call mom (units: s, m, h, d)',
      args: RemindArgs,
      run: async ({ ms, text }, ctx) => {
        const result = await scheduleReminder(ctx, new Date(Date.now() + ms), text);
        if ('error' in result) return result.error;
        return `Reminder set for ${result.at} (${fromNow(result.at)}): ${text}\nCancel it with /reminders cancel ${result.id}`;
      },
    }),
    defineCommand({
      name: 'reminders',
      description: 'List your pending reminders, or cancel one',
      usage: '[cancel <id>]',
      args: z.string().regex(/^(cancel\s+\S+)?$/, 'usage: /reminders, or /reminders cancel <id>'),
      run: async (args, ctx) => {
        const id = args.split(/\s+/)[1];
        if (id === undefined) {
          const pending = await pendingReminders(ctx);
          if (pending.length === 0)
            return 'You have no pending reminders. Set one with /remind <duration> <text>, e.g. /remind 10m call mom.';
          return [
            `Your pending reminders (UTC):`,
            ...pending.map((r) => `• ${r.id} — ${utc(new Date(r.at))} — ${r.text}`),
            '',
            'Cancel one with /reminders cancel <id>.',
          ].join('\n');
        }
        const key = recordsKey(ctx);
        const record = parseRecord((await ctx.store.hget(key, id)) ?? '');
        if (record === undefined) return `You have no reminder with the id ${id}. Send /reminders to see yours.`;
        const cancelled = await ctx.schedule.cancel(id);
        await ctx.store.hdel(key, id);
        return cancelled
          ? `Cancelled the reminder for ${utc(new Date(record.at))}: ${record.text}`
          : `The reminder ${id} has fired already.`;
      },
    }),
  ],
});
