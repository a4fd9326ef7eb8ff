import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { API_ERRORS } from '../../src/platforms/http/errors.ts';

describe('the API error catalogue', () => {
  it('matches the table in docs/api.md, code by code and status by status', () => {
    const doc = readFileSync('docs/api.md', 'utf8');
    const documented = new Map([...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1] ?? '', Number(m[2])] as const));
    const catalogue = new Map(Object.entries(API_ERRORS).map(([code, e]) => [code, e.status] as const));
    expect(documented).toEqual(catalogue);
  });
});
