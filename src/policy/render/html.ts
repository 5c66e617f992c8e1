import { escapeHtml } from '../../core/html.js';
import { safeHref, type Block, type Inline, type RenderedDocument, type Section } from './document.js';

/**
 * A standalone, accessible HTML5 page of a rendered policy: no scripts, no external
 * resources, one small stylesheet that also prints well. Everything that comes from the
 * policy goes through escapeHtml; links appear only for the addresses safeHref allows.
 *
 * Accessibility: lang on <html>, a skip link to <main>, one <h1>, an <h2> per section (each
 * <section> labelled by its heading), <h3> inside sections, tables with a caption and scoped
 * header cells, wide tables in a focusable scroll region.
 */

export { escapeHtml };

const STYLE = `
:root{color-scheme:light dark;--text:#1b1b1b;--muted:#575757;--bg:#fff;--link:#0a52c4;--border:#c9c9c9;--head:#f3f3f3}
@media (prefers-color-scheme:dark){:root{--text:#ececec;--muted:#b4b4b4;--bg:#141414;--link:#8fb8ff;--border:#4a4a4a;--head:#222}}
*,*::before,*::after{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font:1.0625rem/1.6 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;overflow-wrap:break-word}
header,nav,main{max-width:48rem;margin:0 auto;padding:0 1.25rem}
header{padding-top:2.5rem}
h1{font-size:2rem;line-height:1.2;margin:0 0 .5rem}
h2{font-size:1.45rem;line-height:1.25;margin:2.5rem 0 .75rem;padding-top:1rem;border-top:1px solid var(--border)}
h3{font-size:1.15rem;line-height:1.3;margin:1.75rem 0 .5rem}
nav h2{border-top:0;margin-top:1rem;padding-top:0;font-size:1.15rem}
.meta{color:var(--muted);margin:0 0 1rem}
a{color:var(--link);text-underline-offset:.15em}
a:focus-visible,[tabindex]:focus-visible{outline:3px solid var(--link);outline-offset:2px}
.skip-link{position:absolute;left:-10000px;top:auto}
.skip-link:focus{left:1rem;top:1rem;z-index:1;padding:.5rem 1rem;background:var(--bg);border:2px solid var(--link)}
nav ol{padding-left:1.5rem;columns:2;column-gap:2.5rem}
nav li{break-inside:avoid}
li{margin:.3rem 0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1.25rem}
dt{font-weight:600}
dd{margin:0}
.table-scroll{overflow-x:auto;margin:1rem 0}
table{border-collapse:collapse;width:100%;font-size:.95rem}
caption{text-align:left;font-weight:600;padding:0 0 .4rem}
th,td{border:1px solid var(--border);padding:.45rem .6rem;text-align:left;vertical-align:top}
thead th{background:var(--head)}
tbody th{font-weight:400}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}
main{padding-bottom:3rem}
main:focus{outline:none}
@media (max-width:40rem){nav ol{columns:1}dl{grid-template-columns:1fr}dd{margin-bottom:.5rem}}
@media print{
body{font-size:11pt;color:#000;background:#fff}
.skip-link,nav{display:none}
header,main{max-width:none;padding:0}
h2{border-top:0;break-after:avoid}
h3{break-after:avoid}
tr,li,dd{break-inside:avoid}
a{color:#000}
a.ref[href^="http"]::after{content:" (" attr(href) ")";font-size:.9em}
.table-scroll{overflow:visible}
thead th{background:none}
}
`.trim();

/** True when the link text already shows the address, so print need not repeat it. */
function showsAddress(part: { text: string; href: string }): boolean {
  return part.text === part.href || `mailto:${part.text}` === part.href || part.href.startsWith('tel:');
}

function inline(content: readonly Inline[]): string {
  let result = '';
  for (const part of content) {
    switch (part.type) {
      case 'text':
        result += escapeHtml(part.text);
        break;
      case 'strong':
        result += `<strong>${escapeHtml(part.text)}</strong>`;
        break;
      case 'emphasis':
        result += `<em>${escapeHtml(part.text)}</em>`;
        break;
      case 'code':
        result += `<code>${escapeHtml(part.text)}</code>`;
        break;
      case 'link': {
        const href = safeHref(part.href);
        if (!href) {
          result += escapeHtml(part.text);
        } else {
          const external = !href.startsWith('#') && !showsAddress(part);
          result += `<a href="${escapeHtml(href)}"${external ? ' class="ref"' : ''}>${escapeHtml(part.text)}</a>`;
        }
        break;
      }
    }
  }
  return result;
}

function block(value: Block): string {
  switch (value.type) {
    case 'paragraph':
      return `<p>${inline(value.content)}</p>`;
    case 'heading':
      return `<h3>${escapeHtml(value.text)}</h3>`;
    case 'list':
      return `<ul>\n${value.items.map((item) => `<li>${inline(item)}</li>`).join('\n')}\n</ul>`;
    case 'definitions':
      return `<dl>\n${value.items.map((item) => `<dt>${escapeHtml(item.term)}</dt><dd>${inline(item.details)}</dd>`).join('\n')}\n</dl>`;
    case 'table': {
      const caption = escapeHtml(value.caption);
      const head = value.head.map((cell) => `<th scope="col">${escapeHtml(cell)}</th>`).join('');
      const rows = value.rows.map((cells) => {
        const rendered = value.head.map((_, index) => {
          const content = inline(cells[index] ?? []);
          return index === 0 && value.rowHeaders ? `<th scope="row">${content}</th>` : `<td>${content}</td>`;
        });
        return `<tr>${rendered.join('')}</tr>`;
      });
      return [
        `<div class="table-scroll" role="region" aria-label="${caption}" tabindex="0">`,
        `<table>`,
        `<caption>${caption}</caption>`,
        `<thead><tr>${head}</tr></thead>`,
        `<tbody>`,
        ...rows,
        `</tbody>`,
        `</table>`,
        `</div>`,
      ].join('\n');
    }
  }
}

function section(value: Section): string {
  const id = escapeHtml(value.id);
  return [
    `<section id="${id}" aria-labelledby="${id}-title">`,
    `<h2 id="${id}-title">${escapeHtml(value.title)}</h2>`,
    ...value.blocks.map(block),
    `</section>`,
  ].join('\n');
}

export function toHtml(doc: RenderedDocument): string {
  const contents = doc.sections.map((value) => `<li><a href="#${escapeHtml(value.id)}">${escapeHtml(value.title)}</a></li>`).join('\n');
  return [
    '<!doctype html>',
    `<html lang="${escapeHtml(doc.lang)}">`,
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(doc.title)}</title>`,
    `<style>\n${STYLE}\n</style>`,
    '</head>',
    '<body>',
    `<a class="skip-link" href="#main">${escapeHtml(doc.labels.skipLink)}</a>`,
    '<header>',
    `<h1>${escapeHtml(doc.title)}</h1>`,
    `<p class="meta">${escapeHtml(doc.metaLine)}</p>`,
    '</header>',
    '<nav aria-labelledby="contents-title">',
    `<h2 id="contents-title">${escapeHtml(doc.labels.contents)}</h2>`,
    `<ol>\n${contents}\n</ol>`,
    '</nav>',
    '<main id="main" tabindex="-1">',
    ...doc.sections.map(section),
    '</main>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
