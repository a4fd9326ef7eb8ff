import { describe, expect, it } from 'vitest';
import {
  escapeHtml,
  plainTextChunks,
  renderTelegramHtml,
  splitTelegramMessage,
  toMarkdownDocument,
} from '../../src/platforms/telegram/format.ts';

const LIMIT = 4096;
const ALLOWED_TAGS = new Set(['b', 'i', 'u', 's', 'code', 'pre', 'a', 'blockquote', 'tg-spoiler']);

/** What Telegram's HTML mode would reject in `html`: unknown tags, unbalanced tags, unescaped text, nesting in code. */
function htmlProblems(html: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  let last = 0;
  for (const match of html.matchAll(/<(\/?)([^\s<>/]+)([^<>]*)>/g)) {
    problems.push(...textProblems(html.slice(last, match.index)));
    last = match.index + match[0].length;
    const [tag, closing = '', name = '', attributes = ''] = match;
    if (!ALLOWED_TAGS.has(name)) problems.push(`unknown tag ${tag}`);
    if (closing) {
      const opened = stack.pop();
      if (opened !== name || attributes) problems.push(`${tag} closes <${opened ?? 'nothing'}>`);
      continue;
    }
    if (!attributesAllowed(name, attributes, stack.at(-1))) problems.push(`${tag} not allowed inside <${stack.at(-1) ?? ''}>`);
    stack.push(name);
  }
  problems.push(...textProblems(html.slice(last)));
  if (stack.length > 0) problems.push(`unclosed ${stack.join(', ')}`);
  return problems;
}

function attributesAllowed(name: string, attributes: string, parent: string | undefined): boolean {
  if (parent === 'code' || (parent === 'pre' && name !== 'code')) return false;
  if (name === 'a') return /^ href="([^"<>&]|&(lt|gt|amp|quot);)+"$/.test(attributes);
  if (name === 'code' && parent === 'pre') return /^( class="language-[\w+#.-]+")?$/.test(attributes);
  return attributes === '';
}

function textProblems(text: string): string[] {
  return /[<>]|&(?!(lt|gt|amp|quot);)/.test(text) ? [`unescaped text: ${text}`] : [];
}

function expectValidChunks(chunks: readonly string[], limit: number): void {
  for (const chunk of chunks) {
    expect(chunk.length).toBeLessThanOrEqual(limit);
    expect(htmlProblems(chunk), chunk).toEqual([]);
  }
}

function decodeEntities(text: string): string {
  return text
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&');
}

function visibleText(html: string): string {
  return decodeEntities(html.replace(/<[^>]*>/g, ''));
}

function normalised(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** The contents of every `<pre><code class="language-…">` in order, by language. */
function codeByLanguage(chunks: readonly string[]): Map<string, string> {
  const code = new Map<string, string>();
  for (const chunk of chunks) {
    for (const [, language = '', content = ''] of chunk.matchAll(/<pre><code class="language-([^"]+)">([\s\S]*?)<\/code><\/pre>/g)) {
      code.set(language, (code.get(language) ?? '') + decodeEntities(content));
    }
  }
  return code;
}

function lines(count: number, line: (i: number) => string): string {
  return Array.from({ length: count }, (_, i) => line(i)).join('\n');
}

const longCode = {
  typescript: lines(70, (i) => `  const item${i} = items.filter((x) => x.size < ${i} && x.name !== "a_${i}"); // <T> & co`),
  python: lines(25, (i) => `def f_${i}(*args, **kwargs):  return [x for x in args if x > ${i} and x < 2 * ${i}]`),
  bash: 'grep -r "a<b" . | wc -l && echo done',
};

function longAnswer(): string {
  const paragraph = (i: number): string =>
    `Paragraph ${i} explains **step ${i}** of the plan with a [reference link](https://example.com/docs/${i}?a=1&b=2), ` +
    `some \`inline_code < ${i}\`, a_b_c identifiers and 2 * 3 * 4 arithmetic. It has a second sentence, and a third one! ` +
    `Then it keeps going with _emphasis_ and ~~old text~~ so that it is long enough to matter.`;
  return [
    '# Migration guide',
    paragraph(1),
    paragraph(2),
    '## Steps',
    '- First\n  - nested one\n  - nested two\n    1. deep\n- Second with [a link](https://example.org)\n- Third',
    `\`\`\`typescript\n${longCode.typescript}\n\`\`\``,
    paragraph(3),
    '> A quoted warning with **bold** text.\n> And a second line.',
    `\`\`\`python\n${longCode.python}\n\`\`\``,
    ...Array.from({ length: 12 }, (_, i) => paragraph(i + 4)),
    `\`\`\`bash\n${longCode.bash}\n\`\`\``,
    '---',
    paragraph(99),
  ].join('\n\n');
}

describe('renderTelegramHtml', () => {
  it('escapes <, > and & and leaves underscores, stars and backticks in code as they were', () => {
    expect(renderTelegramHtml('a_b_c and 2 * 3 * 4, x < y && y > z')).toBe('a_b_c and 2 * 3 * 4, x &lt; y &amp;&amp; y &gt; z');
    expect(renderTelegramHtml('my_var_name and snake_case_here')).toBe('my_var_name and snake_case_here');
    expect(renderTelegramHtml('`a < b && *c*` and ``x`y``')).toBe('<code>a &lt; b &amp;&amp; *c*</code> and <code>x`y</code>');
    expect(renderTelegramHtml("```py\nprint(`x` if a_b else '<&>') # **not bold**\n```")).toBe(
      '<pre><code class="language-py">print(`x` if a_b else \'&lt;&amp;&gt;\') # **not bold**</code></pre>',
    );
    expect(renderTelegramHtml('escaped \\*stars\\* stay')).toBe('escaped *stars* stay');
  });

  it('resolves character references in prose and links, but not in code', () => {
    expect(renderTelegramHtml('AT&amp;T &copy; 2025, a &lt; b &#62; c, [q](https://e.com/?a=1&amp;b=2) `&amp;`')).toBe(
      'AT&amp;T © 2025, a &lt; b &gt; c, <a href="https://e.com/?a=1&amp;b=2">q</a> <code>&amp;amp;</code>',
    );
  });

  it('renders headings, emphasis, strikethrough and links in Telegram tags', () => {
    expect(renderTelegramHtml('# Title\n\nSome **bold**, *italic*, ~~gone~~ and [a link](https://example.com/?a=1&b="2").')).toBe(
      '<b>Title</b>\n\nSome <b>bold</b>, <i>italic</i>, <s>gone</s> and <a href="https://example.com/?a=1&amp;b=&quot;2&quot;">a link</a>.',
    );
    expect(renderTelegramHtml('![a diagram](https://example.com/d.png)')).toBe('<a href="https://example.com/d.png">a diagram</a>');
    expect(renderTelegramHtml('[relative](/docs) and [bad](javascript:alert(1))')).toBe('relative and bad');
  });

  it('renders lists as bullet lines, nested lists indented under their parent', () => {
    expect(renderTelegramHtml('- one\n  - two\n    1. three\n- four\n\n3. x\n4. y')).toBe(
      '• one\n  • two\n    1. three\n• four\n\n3. x\n4. y',
    );
    expect(renderTelegramHtml('- [ ] todo\n- [x] done')).toBe('• ☐ todo\n• ☑ done');
  });

  it('renders quotes, rules, line breaks and tables', () => {
    expect(renderTelegramHtml('> quoted **text**\n> second line\n\nafter')).toBe(
      '<blockquote>quoted <b>text</b>\nsecond line</blockquote>\n\nafter',
    );
    expect(renderTelegramHtml('above\n\n---\n\nline one\nline two  \nline three')).toBe('above\n\n———\n\nline one\nline two\nline three');
    expect(renderTelegramHtml('| a | b |\n|---|---|\n| 1 | <2> |')).toBe('<pre>| a | b |\n|---|---|\n| 1 | &lt;2&gt; |</pre>');
  });

  it('shows raw HTML from the Markdown as text, never as markup', () => {
    expect(renderTelegramHtml('<script>alert(1)</script>')).toBe('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(renderTelegramHtml('say <b>hi</b> & <a href="x">bye</a>')).toBe(
      'say &lt;b&gt;hi&lt;/b&gt; &amp; &lt;a href="x"&gt;bye&lt;/a&gt;',
    );
  });

  it('keeps code out of other entities, as Telegram requires', () => {
    expect(renderTelegramHtml('**bold `code` more**')).toBe('<b>bold </b><code>code</code><b> more</b>');
    expect(renderTelegramHtml('[`cmd`](https://example.com)')).toBe('<a href="https://example.com">cmd</a>');
  });
});

describe('splitTelegramMessage', () => {
  const markdown = longAnswer();
  const chunks = splitTelegramMessage(markdown);

  it('keeps every chunk of a long answer within the limit and valid on its own', () => {
    expect(markdown.length).toBeGreaterThan(10_000);
    expect(longCode.typescript.length).toBeGreaterThan(LIMIT);
    expect(chunks.length).toBeGreaterThan(2);
    expectValidChunks(chunks, LIMIT);
  });

  it('packs blocks into as few messages as the limit allows', () => {
    const total = renderTelegramHtml(markdown).length;
    expect(chunks.length).toBeLessThanOrEqual(Math.ceil(total / LIMIT) + 2);
    expect(splitTelegramMessage(Array.from({ length: 20 }, (_, i) => `Short paragraph ${i}.`).join('\n\n'))).toHaveLength(1);
  });

  it('loses no visible text', () => {
    const joined = chunks.map(visibleText).join('\n');
    expect(normalised(joined)).toBe(normalised(visibleText(renderTelegramHtml(markdown))));
  });

  it('splits long code blocks at line ends into blocks that reopen with the same language', () => {
    expect(codeByLanguage(chunks)).toEqual(new Map(Object.entries(longCode)));
    const tsPieces = chunks.flatMap((chunk) => [...chunk.matchAll(/<code class="language-typescript">([\s\S]*?)<\/code>/g)]);
    expect(tsPieces.length).toBeGreaterThan(1);
    for (const piece of tsPieces.slice(0, -1)) expect(piece[1]).toMatch(/\n$/);
  });

  it('cuts at paragraph boundaries and leaves paragraphs that fit whole', () => {
    const paragraphs = ['a', 'b', 'c'].map((letter) => `${letter.repeat(5)} ${'word '.repeat(300).trim()}.`);
    const split = splitTelegramMessage(paragraphs.join('\n\n'));
    expect(split).toEqual([`${paragraphs[0]}\n\n${paragraphs[1]}`, paragraphs[2]]);
  });

  it('splits an overlong paragraph at sentences, then words, then anywhere', () => {
    const sentences = Array.from({ length: 80 }, (_, i) => `Sentence number ${i} is here.`).join(' ');
    for (const chunk of splitTelegramMessage(sentences, 200)) expect(chunk).toMatch(/^Sentence .*\.$/);
    const words = Array.from({ length: 100 }, (_, i) => `word${i}`).join(' ');
    for (const chunk of splitTelegramMessage(words, 50)) expect(chunk).toMatch(/^word\d+( word\d+)*$/);
    const unbroken = '😀'.repeat(100);
    const pieces = splitTelegramMessage(unbroken, 51);
    expect(pieces.join('')).toBe(unbroken);
    for (const piece of pieces) expect(piece).toMatch(/^(😀)+$/);
  });

  it('never cuts inside a tag, even with many links and formatting near the cut', () => {
    const links = Array.from({ length: 300 }, (_, i) => `[**link ${i}**](https://example.com/page/${i}?x=1&y=2) and _more_`).join(' ');
    const quoted = `> ${links}`;
    for (const source of [links, quoted]) {
      const whole = normalised(visibleText(renderTelegramHtml(source)));
      for (let limit = 120; limit <= LIMIT; limit += 397) {
        const split = splitTelegramMessage(source, limit);
        expectValidChunks(split, limit);
        expect(normalised(split.map(visibleText).join(' '))).toBe(whole);
      }
    }
  });

  it('still fits when a link is longer than a whole message, by dropping its markup', () => {
    const split = splitTelegramMessage(`see [this](https://example.com/${'a'.repeat(5000)}) now`);
    expectValidChunks(split, LIMIT);
    expect(normalised(split.map(visibleText).join(' '))).toBe('see this now');
  });

  it('returns nothing for an empty answer and refuses a limit too small to make progress', () => {
    expect(splitTelegramMessage('')).toEqual([]);
    expect(splitTelegramMessage('  \n\n ')).toEqual([]);
    expect(() => splitTelegramMessage('hello', 3)).toThrow(RangeError);
  });
});

describe('plainTextChunks', () => {
  it('respects the limit and loses no characters', () => {
    const text = longAnswer();
    const chunks = plainTextChunks(text, 1000);
    expect(chunks.length).toBeGreaterThan(10);
    for (const chunk of chunks) expect(chunk.length).toBeLessThanOrEqual(1000);
    expect(normalised(chunks.join(' '))).toBe(normalised(text));
    expect(chunks.join('')).not.toContain('&lt;');
  });

  it('prefers paragraph breaks and cuts unbroken text exactly', () => {
    expect(plainTextChunks(`${'a '.repeat(30).trim()}\n\n${'b '.repeat(30).trim()}`, 80)).toEqual([
      'a '.repeat(30).trim(),
      'b '.repeat(30).trim(),
    ]);
    const unbroken = 'x'.repeat(250);
    expect(plainTextChunks(unbroken, 100)).toEqual(['x'.repeat(100), 'x'.repeat(100), 'x'.repeat(50)]);
  });
});

describe('toMarkdownDocument', () => {
  it('names the file for the UTC time and keeps the Markdown as UTF-8', () => {
    const markdown = '# Ответ 🚀\n\n`code`';
    const document = toMarkdownDocument(markdown, new Date('2025-01-31T23:59:58.123Z'));
    expect(document.filename).toBe('answer-20250131-235958.md');
    expect(document.content.toString('utf8')).toBe(markdown);
    expect(toMarkdownDocument('x').filename).toMatch(/^answer-\d{8}-\d{6}\.md$/);
  });
});

describe('escapeHtml', () => {
  it('escapes the four characters Telegram knows entities for, and nothing else', () => {
    expect(escapeHtml(`<a href="x">Tom & 'Jerry'</a>`)).toBe(`&lt;a href=&quot;x&quot;&gt;Tom &amp; 'Jerry'&lt;/a&gt;`);
  });
});
