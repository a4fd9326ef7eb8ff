import { describe, expect, it } from 'vitest';
import { parseEnvAssignment, UserEnv } from '../../src/agent/user-env.ts';
import { ConfigError, ValidationError } from '../../src/core/errors.ts';
import { SecretBox, SecretBoxError } from '../../src/core/secret-box.ts';
import { memoryStores } from '../helpers/memory-stores.ts';

const KEY_A = 'operator-secret-key-number-one';
const KEY_B = 'operator-secret-key-number-two';
const SECRET = 'ghp_SuperSecretToken123';

const openStore = memoryStores();

/** Flips one character of a base64url part of a sealed value. */
function tamper(sealed: string, part: 1 | 2 | 3): string {
  const parts = sealed.split('.');
  const text = parts[part] ?? '';
  const flipped = (text[0] === 'A' ? 'B' : 'A') + text.slice(1);
  parts[part] = flipped;
  return parts.join('.');
}

describe('SecretBox', () => {
  it('round trips and seals to the compact v1 format with a fresh IV', () => {
    const box = new SecretBox(KEY_A);
    const sealed = box.seal(SECRET, 'u1\nTOKEN');
    expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]+$/);
    expect(sealed).not.toContain(SECRET);
    expect(box.open(sealed, 'u1\nTOKEN')).toBe(SECRET);
    expect(box.seal(SECRET, 'u1\nTOKEN')).not.toBe(sealed);
    expect(box.open(box.seal('', 'x'), 'x')).toBe('');
  });

  it('rejects a short SECRET_KEY', () => {
    expect(() => new SecretBox('too-short')).toThrow(ConfigError);
  });

  it('fails with SecretBoxError for another key, another aad, tampering or garbage', () => {
    const box = new SecretBox(KEY_A);
    const sealed = box.seal(SECRET, 'u1\nTOKEN');
    expect(() => new SecretBox(KEY_B).open(sealed, 'u1\nTOKEN')).toThrow(SecretBoxError);
    expect(() => box.open(sealed, 'u2\nTOKEN')).toThrow(SecretBoxError);
    for (const part of [1, 2, 3] as const) expect(() => box.open(tamper(sealed, part), 'u1\nTOKEN')).toThrow(SecretBoxError);
    expect(() => box.open('v2' + sealed.slice(2), 'u1\nTOKEN')).toThrow(SecretBoxError);
    expect(() => box.open('not sealed', 'u1\nTOKEN')).toThrow(SecretBoxError);
    // A truncated tag must not be accepted.
    const [v, iv, tag, ct] = sealed.split('.');
    expect(() => box.open([v, iv, (tag ?? '').slice(0, 6), ct].join('.'), 'u1\nTOKEN')).toThrow(SecretBoxError);
    try {
      box.open(tamper(sealed, 3), 'u1\nTOKEN');
    } catch (err) {
      expect((err as SecretBoxError).code).toBe('SECRET_OPEN_FAILED');
    }
  });
});

describe('UserEnv', () => {
  it('round trips a value', async () => {
    const env = new UserEnv(await openStore(), new SecretBox(KEY_A));
    await env.set('u1', 'GITHUB_TOKEN', SECRET);
    expect(await env.values('u1', ['GITHUB_TOKEN', 'MISSING'])).toEqual({ GITHUB_TOKEN: SECRET });
    await env.set('u1', 'GITHUB_TOKEN', 'replaced = with spaces');
    expect(await env.values('u1', ['GITHUB_TOKEN'])).toEqual({ GITHUB_TOKEN: 'replaced = with spaces' });
    expect(await env.values('u2', ['GITHUB_TOKEN'])).toEqual({});
  });

  it('stores only sealed values in the hash env:<userId>', async () => {
    const store = await openStore();
    await new UserEnv(store, new SecretBox(KEY_A)).set('u1', 'GITHUB_TOKEN', SECRET);
    const hash = await store.hgetall('env:u1');
    expect(Object.keys(hash)).toEqual(['GITHUB_TOKEN']);
    expect(hash['GITHUB_TOKEN']).toMatch(/^v1\./);
    expect(JSON.stringify(hash)).not.toContain(SECRET);
  });

  it('cannot read values with a different SECRET_KEY', async () => {
    const store = await openStore();
    await new UserEnv(store, new SecretBox(KEY_A)).set('u1', 'GITHUB_TOKEN', SECRET);
    const other = new UserEnv(store, new SecretBox(KEY_B));
    expect(await other.values('u1', ['GITHUB_TOKEN'])).toEqual({});
    expect(await other.keys('u1')).toEqual(['GITHUB_TOKEN']);
  });

  it('skips a tampered value without throwing', async () => {
    const store = await openStore();
    const env = new UserEnv(store, new SecretBox(KEY_A));
    await env.set('u1', 'A', 'first');
    await env.set('u1', 'B', 'second');
    const sealed = await store.hget('env:u1', 'A');
    await store.hset('env:u1', { A: tamper(sealed ?? '', 3) });
    expect(await env.values('u1', ['A', 'B'])).toEqual({ B: 'second' });
  });

  it('does not open a value copied to another user or another name', async () => {
    const store = await openStore();
    const env = new UserEnv(store, new SecretBox(KEY_A));
    await env.set('alice', 'GITHUB_TOKEN', SECRET);
    const sealed = (await store.hget('env:alice', 'GITHUB_TOKEN')) ?? '';
    await store.hset('env:mallory', { GITHUB_TOKEN: sealed });
    await store.hset('env:alice', { OTHER: sealed });
    expect(await env.values('mallory', ['GITHUB_TOKEN'])).toEqual({});
    expect(await env.values('alice', ['OTHER', 'GITHUB_TOKEN'])).toEqual({ GITHUB_TOKEN: SECRET });
  });

  it('lists names only, sorted', async () => {
    const env = new UserEnv(await openStore(), new SecretBox(KEY_A));
    await env.set('u1', 'ZED', 'z-secret');
    await env.set('u1', 'ALPHA', 'a-secret');
    await env.set('u1', 'MID_1', 'm-secret');
    const keys = await env.keys('u1');
    expect(keys).toEqual(['ALPHA', 'MID_1', 'ZED']);
    expect(JSON.stringify(keys)).not.toContain('secret');
    expect(await env.keys('nobody')).toEqual([]);
  });

  it('deletes', async () => {
    const store = await openStore();
    const env = new UserEnv(store, new SecretBox(KEY_A));
    await env.set('u1', 'A', 'one');
    await env.set('u1', 'B', 'two');
    expect(await env.delete('u1', 'A')).toBe(true);
    expect(await env.delete('u1', 'A')).toBe(false);
    expect(await env.keys('u1')).toEqual(['B']);
    expect(await env.values('u1', ['A', 'B'])).toEqual({ B: 'two' });
    expect(await env.delete('u1', 'B')).toBe(true);
    expect(await store.hlen('env:u1')).toBe(0);
  });

  it('validates names and values on set without echoing the value', async () => {
    const env = new UserEnv(await openStore(), new SecretBox(KEY_A));
    await expect(env.set('u1', 'lower', SECRET)).rejects.toBeInstanceOf(ValidationError);
    await expect(env.set('u1', 'A', '')).rejects.toBeInstanceOf(ValidationError);
    await expect(env.delete('u1', '1BAD')).rejects.toBeInstanceOf(ValidationError);
    const err: unknown = await env.set('u1', 'A', SECRET.repeat(500)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).not.toContain(SECRET);
    expect(await env.keys('u1')).toEqual([]);
  });
});

describe('parseEnvAssignment', () => {
  it('parses list, set and delete', () => {
    expect(parseEnvAssignment('')).toEqual({ kind: 'list' });
    expect(parseEnvAssignment('   ')).toEqual({ kind: 'list' });
    expect(parseEnvAssignment('GITHUB_TOKEN=ghp_1')).toEqual({ kind: 'set', key: 'GITHUB_TOKEN', value: 'ghp_1' });
    expect(parseEnvAssignment('A=b=c')).toEqual({ kind: 'set', key: 'A', value: 'b=c' });
    expect(parseEnvAssignment('  NAME =  two words here  ')).toEqual({ kind: 'set', key: 'NAME', value: 'two words here' });
    expect(parseEnvAssignment('-GITHUB_TOKEN')).toEqual({ kind: 'delete', key: 'GITHUB_TOKEN' });
    expect(parseEnvAssignment(`X${'_'.repeat(63)}=v`)).toMatchObject({ kind: 'set' });
  });

  it('rejects bad names', () => {
    for (const text of ['lower=value', 'Mixed=value', '1ABC=value', 'A-B=value', '=value', `X${'_'.repeat(64)}=v`, '-lower', '-']) {
      const parsed = parseEnvAssignment(text);
      expect(parsed.kind, text).toBe('error');
    }
  });

  it('rejects a missing value and never echoes what was typed', () => {
    const missing = parseEnvAssignment('TOKEN=   ');
    expect(missing.kind).toBe('error');
    if (missing.kind === 'error') expect(missing.message).toMatch(/missing value/i);

    for (const text of [SECRET, `lower=${SECRET}`, `-${SECRET}`, `TOKEN=${'x'.repeat(5000)}${SECRET}`]) {
      const parsed = parseEnvAssignment(text);
      expect(parsed.kind, text).toBe('error');
      if (parsed.kind === 'error') {
        expect(parsed.message).not.toContain(SECRET);
        expect(parsed.message).not.toContain('xxxx');
      }
    }
  });
});
