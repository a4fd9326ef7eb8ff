import { definePlugin, defineTool, z, type PluginContext } from 'switchboard/sdk';

const DEFAULT_API_URL = 'https://api.github.com';

/** `owner/name`: GitHub logins are letters, digits and single hyphens; repository names add `.` and `_`. */
const REPO = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})\/[A-Za-z0-9._-]{1,100}$/;

const CreateIssueArgs = z.object({
  repo: z
    .string()
    .regex(REPO, 'a repository as owner/name, e.g. octocat/hello-world')
    // `.` and `..` would turn the request path into another route.
    .refine((repo) => !/\/\.{1,2}$/.test(repo), 'a repository as owner/name, e.g. octocat/hello-world')
    .describe('The repository as owner/name, e.g. octocat/hello-world'),
  title: z.string().trim().min(1).max(256).describe('The issue title'),
  body: z.string().max(65_536).default('').describe('The issue description (GitHub Markdown)'),
});

const CreatedIssue = z.object({ number: z.number().int(), html_url: z.string() });

/** POSTs the issue; throws an Error that names GitHub's status and message (never the token). */
async function createIssue(args: z.output<typeof CreateIssueArgs>, ctx: PluginContext): Promise<{ number: number; url: string }> {
  const token = ctx.env.GITHUB_TOKEN ?? '';
  const base = (ctx.settings.GITHUB_API_URL ?? DEFAULT_API_URL).replace(/\/+$/, '');
  const [owner = '', name = ''] = args.repo.split('/');
  const url = `${base}/repos/${encodeURIComponent(owner)}/${encodeURIComponent(name)}/issues`;
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/vnd.github+json',
        'x-github-api-version': '2022-11-28',
        'user-agent': 'switchboard',
        'content-type': 'application/json',
      },
      body: JSON.stringify({ title: args.title, body: args.body }),
      signal: ctx.signal,
    });
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    throw new Error(`could not reach GitHub at ${base}: ${describeCause(err)}`);
  }
  const text = await response.text();
  if (!response.ok) throw new Error(hide(failureMessage(response, text, args.repo), token));
  const created = CreatedIssue.safeParse(parseJson(text));
  if (!created.success) throw new Error(`GitHub answered ${response.status} without an issue number and URL`);
  ctx.logger.info({ repo: args.repo, number: created.data.number }, 'issue created');
  return { number: created.data.number, url: created.data.html_url };
}

function failureMessage(response: Response, text: string, repo: string): string {
  const answer = parseJson(text);
  const fields = typeof answer === 'object' && answer !== null ? (answer as { message?: unknown; errors?: unknown }) : {};
  const message = typeof fields.message === 'string' ? fields.message : text.slice(0, 200) || response.statusText;
  const details = Array.isArray(fields.errors) ? fields.errors.map(describeError).filter(Boolean).join('; ') : '';
  const hint = HINTS[response.status]?.(repo);
  return [`GitHub answered ${response.status}: ${message}${details ? ` (${details})` : ''}`, hint].filter(Boolean).join('. ');
}

const HINTS: Record<number, (repo: string) => string> = {
  401: () => 'The GITHUB_TOKEN is missing, wrong or expired; the user can set a new one with /env GITHUB_TOKEN=<token>',
  403: (repo) => `The token may not create issues in ${repo} (it needs the Issues: write permission), or the rate limit was hit`,
  404: (repo) => `The repository ${repo} does not exist or the token cannot see it`,
  410: (repo) => `Issues are turned off in ${repo}`,
};

/** One entry of GitHub's `errors` array (`{ resource, field, code, message }` or a string). */
function describeError(error: unknown): string {
  if (typeof error === 'string') return error;
  if (typeof error !== 'object' || error === null) return '';
  const { field, code, message } = error as { field?: unknown; code?: unknown; message?: unknown };
  if (typeof message === 'string') return message;
  return [field, code].filter((part) => typeof part === 'string').join(' ');
}

function describeCause(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** GitHub does not echo tokens, but an error text must never carry one on. */
function hide(text: string, token: string): string {
  return token.length >= 4 ? text.split(token).join('***') : text;
}

export default definePlugin({
  tools: [
    defineTool({
      name: 'create_issue',
      description:
        'Create an issue in a GitHub repository, as the user (with their GITHUB_TOKEN). The user is asked to confirm first. Returns the issue number and URL.',
      args: CreateIssueArgs,
      confirm: true,
      timeoutMs: 15_000,
      run: createIssue,
    }),
  ],
});
