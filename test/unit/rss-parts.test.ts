import { describe, expect, it } from 'vitest';
import { isPublicAddress } from '../../src/platforms/rss/address-guard.ts';
import { formatItem, itemKey } from '../../src/platforms/rss/feed-items.ts';

describe('feed address checks', () => {
  it.each([
    ['10.1.2.3', false],
    ['172.16.0.1', false],
    ['192.168.1.1', false],
    ['127.0.0.1', false],
    ['169.254.169.254', false],
    ['100.64.0.1', false],
    ['0.0.0.0', false],
    ['224.0.0.1', false],
    ['::1', false],
    ['fe80::1', false],
    ['fc00::1', false],
    ['::ffff:127.0.0.1', false],
    ['::ffff:10.0.0.1', false],
    ['not an ip', false],
    ['8.8.8.8', true],
    ['93.184.216.34', true],
    ['2606:4700:4700::1111', true],
    ['::ffff:8.8.8.8', true],
  ])('%s is public: %s', (ip, expected) => {
    expect(isPublicAddress(ip)).toBe(expected);
  });
});

describe('feed items', () => {
  it('are the same item by guid, else link, else title', () => {
    const base = { summary: undefined, publishedAt: undefined };
    expect(itemKey({ ...base, guid: 'g', link: 'l1', title: 't1' })).toBe(itemKey({ ...base, guid: 'g', link: 'l2', title: 't2' }));
    expect(itemKey({ ...base, guid: undefined, link: 'l', title: 't1' })).toBe(
      itemKey({ ...base, guid: undefined, link: 'l', title: 't2' }),
    );
    expect(itemKey({ ...base, guid: undefined, link: undefined, title: 't' })).toBeDefined();
    expect(itemKey({ ...base, guid: undefined, link: undefined, title: undefined })).toBeUndefined();
  });

  it('format as a linked bold title, a short summary and the feed name, with Markdown characters kept as text', () => {
    const text = formatItem(
      { guid: 'g', link: 'https://example.com/a', title: 'C *pointers* [explained]', summary: 'word '.repeat(200), publishedAt: undefined },
      'Low_level blog',
    );
    const [title, , summary, , feed] = text.split('\n');
    expect(title).toBe('**[C \\*pointers\\* \\[explained\\]](https://example.com/a)**');
    expect(summary?.length).toBeLessThanOrEqual(301);
    expect(summary?.endsWith('…')).toBe(true);
    expect(feed).toBe('_Low\\_level blog_');
  });
});
