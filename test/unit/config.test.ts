import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigSchema, loadConfig } from '../../src/core/config.ts';
import { ConfigError } from '../../src/core/errors.ts';

describe('configuration', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    expect(config.http).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(config.dataDir).toBe('./data');
    expect(config.amqpUrl).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
    expect(config.llm.apiKey).toBeUndefined();
  });

  it('parses API_KEYS and ADMIN_USERS', () => {
    const config = loadConfig({ API_KEYS: 'alice:secret-one, ops:secret-two', ADMIN_USERS: 'http:ops, telegram:12345' });
    expect([...config.apiKeys]).toEqual([
      ['alice', 'secret-one'],
      ['ops', 'secret-two'],
    ]);
    expect(config.adminUsers.has('telegram:12345')).toBe(true);
  });

  it.each([
    ['HTTP_PORT', 'eighty'],
    ['HTTP_PORT', '70000'],
    ['API_KEYS', 'no-colon-here'],
    ['API_KEYS', 'alice:short'],
    ['OPENAI_BASE_URL', 'not a url'],
    ['LOG_LEVEL', 'loud'],
    ['AMQP_URL', '::'],
    ['QUOTA_TZ', 'Mars/Olympus_Mons'],
    ['QUOTA_PUBLIC_REQUESTS_PER_DAY', '-1'],
    ['QUOTA_PUBLIC_TOKENS_PER_DAY', 'lots'],
    ['TELEGRAM_MODE', 'push'],
    ['TELEGRAM_WEBHOOK_URL', 'bot.example.com/hook'],
    ['TELEGRAM_WEBHOOK_SECRET', 'has spaces and $'],
    ['TELEGRAM_MAX_UPDATE_AGE', '0'],
  ])('stops with a message naming %s when it is %j', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`${name}:`));
  });

  it('is documented variable by variable in README.md and .env.example', () => {
    const readme = readFileSync('README.md', 'utf8');
    const example = readFileSync('.env.example', 'utf8');
    for (const name of Object.keys(ConfigSchema.shape)) {
      expect(readme, `README.md lacks ${name}`).toContain(`\`${name}\``);
      expect(example, `.env.example lacks ${name}`).toMatch(new RegExp(`^#? ?${name}=`, 'm'));
    }
  });
});
