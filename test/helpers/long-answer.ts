/** A function in a code block, with characters HTML must escape. */
export function codeSample(n: number): string {
  return `function f${n}(a, b) {\n  if (a < b && b > 0) return "<tag>" + a;\n  return b;\n}`;
}

/** A Markdown answer of more than 10,000 characters: headings, links, nested lists and code blocks, in sections. */
export function longMarkdownAnswer(sections = 18): { text: string; sections: number } {
  const section = (n: number): string =>
    [
      `## Section ${n}`,
      `Read [the guide](https://example.com/docs?page=${n}&lang=en) before you *start*. ${'Some prose to fill the page. '.repeat(12)}`,
      `- item one of ${n}\n- item **two** of ${n}\n  1. nested\n  2. list`,
      '```js\n' + codeSample(n) + '\n```',
    ].join('\n\n');
  return { text: Array.from({ length: sections }, (_, i) => section(i)).join('\n\n'), sections };
}
