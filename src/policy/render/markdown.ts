import { safeHref, type Block, type Inline, type RenderedDocument, type Section } from './document.js';

/**
 * Markdown (CommonMark + GFM tables) of a rendered policy. Policy text is escaped so it can
 * never become markup: every character with inline meaning is backslash-escaped, line breaks
 * become spaces (so no text can open a heading, list, quote or code block), and a block that
 * starts with "-", "+" or "1." is escaped too. Links appear only for the addresses safeHref
 * allows; anything else is shown as text.
 */

// Characters that can start or close inline markup. ( and ) are safe once [ and ] are escaped;
// "." only matters after digits at the start of a block (see below). <, > and & become
// entities rather than backslash escapes, so not even a naive reader of the Markdown source
// finds a tag in it.
const ESCAPED = new Set(['\\', '`', '*', '_', '[', ']', '#', '|', '~', '$']);
const ENTITIES: Record<string, string> = { '<': '&lt;', '>': '&gt;', '&': '&amp;' };

/** Escapes policy text for Markdown: one line, no markup. */
export function escapeMarkdown(value: string): string {
  let result = '';
  let last = 0;
  for (let index = 0; index < value.length; index++) {
    const char = value[index]!;
    const code = char.charCodeAt(0);
    let replacement: string;
    if (code < 0x20 || code === 0x7f) replacement = ' ';
    else if (ESCAPED.has(char)) replacement = `\\${char}`;
    else if (char === '<' || char === '>' || char === '&') replacement = ENTITIES[char]!;
    else continue;
    result += value.slice(last, index) + replacement;
    last = index + 1;
  }
  return last === 0 ? value : result + value.slice(last);
}

/** Makes escaped text safe at the start of a block: no list marker, no indented code (">" is already an entity). */
function escapeBlockStart(escaped: string): string {
  const value = escaped.trimStart();
  const first = value[0];
  if (first === '-' || first === '+' || first === '=') return `\\${value}`;
  let digits = 0;
  while (digits < value.length && digits < 10 && value.charCodeAt(digits) >= 48 && value.charCodeAt(digits) <= 57) digits++;
  if (digits > 0 && (value[digits] === '.' || value[digits] === ')')) return `${value.slice(0, digits)}\\${value.slice(digits)}`;
  return value;
}

/** A link destination: percent-encodes what would end it or break a table row. */
function destination(href: string): string {
  let result = '';
  for (const char of href) {
    const code = char.charCodeAt(0);
    if (code <= 0x20 || code === 0x7f || '<>()\\"\'`|'.includes(char)) {
      result += `%${code.toString(16).toUpperCase().padStart(2, '0')}`;
    } else {
      result += char;
    }
  }
  return result;
}

/** Wraps strong/emphasis delimiters around the words only, keeping outer spaces outside. */
function delimited(value: string, marker: string): string {
  const core = value.trim();
  if (core.length === 0) return escapeMarkdown(value);
  const start = value.indexOf(core);
  return `${value.slice(0, start).length > 0 ? ' ' : ''}${marker}${escapeMarkdown(core)}${marker}${start + core.length < value.length ? ' ' : ''}`;
}

function codeSpan(value: string, inTable: boolean): string {
  // Code spans show < > & raw; text that holds them is shown as escaped text instead.
  if (value.includes('<') || value.includes('>') || value.includes('&')) return escapeMarkdown(value);
  let content = '';
  for (const char of value) {
    const code = char.charCodeAt(0);
    content += code < 0x20 || code === 0x7f ? ' ' : inTable && char === '|' ? '\\|' : char;
  }
  let longest = 0;
  let run = 0;
  for (const char of content) {
    run = char === '`' ? run + 1 : 0;
    if (run > longest) longest = run;
  }
  const fence = '`'.repeat(longest + 1);
  const pad = content.startsWith('`') || content.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${content}${pad}${fence}`;
}

function inline(content: readonly Inline[], inTable = false): string {
  let result = '';
  content.forEach((part, index) => {
    let rendered: string;
    switch (part.type) {
      case 'text':
        rendered = escapeMarkdown(part.text);
        if (index === 0 && !inTable) rendered = escapeBlockStart(rendered);
        break;
      case 'strong':
        rendered = delimited(part.text, '**');
        break;
      case 'emphasis':
        rendered = delimited(part.text, '*');
        break;
      case 'code':
        rendered = codeSpan(part.text, inTable);
        break;
      case 'link': {
        const href = safeHref(part.href);
        rendered = href ? `[${escapeMarkdown(part.text)}](${destination(href)})` : escapeMarkdown(part.text);
        if (!href && index === 0 && !inTable) rendered = escapeBlockStart(rendered);
        break;
      }
    }
    result += rendered;
  });
  return result.trimEnd();
}

function cell(content: readonly Inline[]): string {
  const rendered = inline(content, true).trim();
  return rendered.length === 0 ? ' ' : rendered;
}

function block(value: Block): string {
  switch (value.type) {
    case 'paragraph':
      return inline(value.content);
    case 'heading':
      return `### ${escapeMarkdown(value.text).trim()}`;
    case 'list':
      return value.items.map((item) => `- ${inline(item)}`).join('\n');
    case 'definitions':
      return value.items.map((item) => `- **${escapeMarkdown(item.term.trim())}:** ${inline(item.details)}`).join('\n');
    case 'table': {
      const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
      const lines = [row(value.head.map((head) => cell([{ type: 'text', text: head }]))), row(value.head.map(() => '---'))];
      for (const cells of value.rows) {
        const padded = value.head.map((_, index) => cell(cells[index] ?? []));
        lines.push(row(padded));
      }
      return lines.join('\n');
    }
  }
}

function section(value: Section): string {
  const parts = [`<a id="${escapeAttribute(value.id)}"></a>\n## ${escapeMarkdown(value.title).trim()}`];
  for (const child of value.blocks) parts.push(block(child));
  return parts.join('\n\n');
}

/** Section ids are generated from [a-z0-9_-]; anything else is dropped rather than trusted. */
function escapeAttribute(value: string): string {
  let result = '';
  for (const char of value) {
    const code = char.charCodeAt(0);
    if ((code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || char === '-' || char === '_') result += char;
  }
  return result;
}

export function toMarkdown(doc: RenderedDocument): string {
  const parts: string[] = [];
  parts.push(`# ${escapeMarkdown(doc.title).trim()}`);
  parts.push(escapeBlockStart(escapeMarkdown(doc.metaLine)));
  parts.push(`**${escapeMarkdown(doc.labels.contents)}**`);
  parts.push(doc.sections.map((value, index) => `${index + 1}. [${escapeMarkdown(value.title).trim()}](#${escapeAttribute(value.id)})`).join('\n'));
  for (const value of doc.sections) parts.push(section(value));
  return `${parts.join('\n\n')}\n`;
}
