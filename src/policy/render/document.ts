/**
 * The rendered policy as a small, format-neutral document: sections of paragraphs, lists,
 * tables and definition lists made of inline runs. compose.ts writes every word of it from a
 * Policy; markdown.ts and html.ts only lay it out and escape it, so both formats always say
 * exactly the same thing.
 *
 * Inline text is a single line: the renderers turn any newline inside it into a space, so
 * policy text can never start a new Markdown block. Paragraph breaks are separate blocks.
 */

export type Inline =
  | { type: 'text'; text: string }
  | { type: 'strong'; text: string }
  | { type: 'emphasis'; text: string }
  | { type: 'code'; text: string }
  /** Rendered as a link only when safeHref accepts `href`; otherwise as its text. */
  | { type: 'link'; text: string; href: string };

export type Block =
  | { type: 'paragraph'; content: Inline[] }
  /** A subheading inside a section (h3), e.g. one purpose of how-we-use. */
  | { type: 'heading'; text: string }
  | { type: 'list'; items: Inline[][] }
  | {
      type: 'table';
      /** Names the table for assistive technology (HTML caption). */
      caption: string;
      head: string[];
      rows: Inline[][][];
      /** The first cell of each row names the row (rendered as <th scope="row">). */
      rowHeaders?: boolean;
    }
  | { type: 'definitions'; items: Array<{ term: string; details: Inline[] }> };

export interface Section {
  /** Stable anchor (introduction, who-we-are, …, notice-<id>, contact). */
  id: string;
  title: string;
  blocks: Block[];
}

export interface RenderedDocument {
  title: string;
  /** BCP 47 language tag of the page. */
  lang: string;
  version: string;
  /** YYYY-MM-DD, as the policy declares it. */
  effectiveDate: string;
  /** "Version 1.0 · Effective 15 January 2026", shown under the title. */
  metaLine: string;
  /** Words the layouts need besides the sections. */
  labels: { contents: string; skipLink: string };
  sections: Section[];
}

// --- builders ----------------------------------------------------------------------------------

export const text = (value: string): Inline => ({ type: 'text', text: value });
export const strong = (value: string): Inline => ({ type: 'strong', text: value });
export const emphasis = (value: string): Inline => ({ type: 'emphasis', text: value });
export const code = (value: string): Inline => ({ type: 'code', text: value });
export const link = (value: string, href: string): Inline => ({ type: 'link', text: value, href });
export const paragraph = (...content: Array<Inline | string>): Block => ({
  type: 'paragraph',
  content: content.map((part) => (typeof part === 'string' ? text(part) : part)),
});
export const heading = (value: string): Block => ({ type: 'heading', text: value });
export const list = (items: Inline[][]): Block => ({ type: 'list', items });

// --- links -------------------------------------------------------------------------------------

function isFragmentChar(code: number): boolean {
  return (
    (code >= 48 && code <= 57) || // 0-9
    (code >= 65 && code <= 90) || // A-Z
    (code >= 97 && code <= 122) || // a-z
    code === 45 || // -
    code === 95 // _
  );
}

/**
 * The href to emit for a link, or undefined when it must be shown as text: only http(s):,
 * mailto: and tel: addresses and fragment links within the page (#contact) are allowed, so a
 * policy can never produce a javascript: or data: link. Whitespace and control characters
 * anywhere disqualify the address rather than being silently dropped.
 */
export function safeHref(href: string): string | undefined {
  if (href.length === 0 || href.length > 2048) return undefined;
  for (let index = 0; index < href.length; index++) {
    const code = href.charCodeAt(index);
    if (code <= 0x20 || code === 0x7f) return undefined;
  }
  if (href.charCodeAt(0) === 35 /* # */) {
    if (href.length === 1) return undefined;
    for (let index = 1; index < href.length; index++) if (!isFragmentChar(href.charCodeAt(index))) return undefined;
    return href;
  }
  const lower = href.slice(0, 8).toLowerCase();
  if (lower.startsWith('https://') || lower.startsWith('http://')) return href.length > (lower.startsWith('https://') ? 8 : 7) ? href : undefined;
  if (lower.startsWith('mailto:') || lower.startsWith('tel:')) return href.length > (lower.startsWith('tel:') ? 4 : 7) ? href : undefined;
  return undefined;
}

// --- plain text --------------------------------------------------------------------------------

/** The text of inline runs, as a reader sees it (links by their text). */
export function inlineText(content: readonly Inline[]): string {
  let result = '';
  for (const part of content) result += part.text;
  return result;
}

function blockText(block: Block): string {
  switch (block.type) {
    case 'paragraph':
      return inlineText(block.content);
    case 'heading':
      return block.text;
    case 'list':
      return block.items.map(inlineText).join('\n');
    case 'table':
      return [block.head.join('\t'), ...block.rows.map((row) => row.map(inlineText).join('\t'))].join('\n');
    case 'definitions':
      return block.items.map((item) => `${item.term}: ${inlineText(item.details)}`).join('\n');
  }
}

/** The plain text of a section: its title, then each block, one per line (table cells tab-separated). */
export function sectionText(section: Section): string {
  return [section.title, ...section.blocks.map(blockText)].join('\n');
}
