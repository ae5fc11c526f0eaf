/** Plain-text tables and key/value blocks for human output. */

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** `key  value` lines, keys padded to the longest; a multi-line value is indented under its key. */
export function renderKeyValues(pairs: [string, string][]): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length));
  return (
    pairs
      .map(([k, v]) => {
        const [first = '', ...rest] = v.split('\n');
        const pad = ' '.repeat(width + 2);
        return [`${k.padEnd(width)}  ${first}`.trimEnd(), ...rest.map((l) => (pad + l).trimEnd())].join('\n');
      })
      .join('\n') + '\n'
  );
}

/** A titled block of text (a script, captured stdout), each line indented by two spaces. */
export function renderBlock(title: string, text: string, note = ''): string {
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  return `${title}:${note ? ` ${note}` : ''}\n${body
    .split('\n')
    .map((l) => `  ${l}`.trimEnd())
    .join('\n')}\n`;
}
