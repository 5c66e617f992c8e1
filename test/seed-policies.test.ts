/**
 * The five seed policies (examples/policies/*.yaml) are real privacy policies written as Pledge
 * policies. examples/policies/README.md traces every clause of each seed to an element of its
 * file and to the rendered section that shows it. This test holds the files to that table:
 *
 *   - each file validates (no errors) and renders as Markdown and HTML;
 *   - every row's policy element resolves to a value in the file;
 *   - every row's section exists, contains the row's phrase, and is anchored in the HTML;
 *   - every top-level key a file uses is traced by at least one row.
 *
 * Run: npm run build && node scripts/run-tests.mjs seed   (cwd = repository root)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { loadPolicyFile } from '../src/policy/policy.load.js';
import type { Policy } from '../src/policy/policy.model.js';
import { composePolicyDocument, renderPolicy, sectionText } from '../src/policy/render/render.js';

const ROOT = process.cwd();
const README = path.join(ROOT, 'examples/policies/README.md');
const MIN_ROWS = 10;
const TRACE_HEADER = ['#', 'Clause', 'Policy element', 'Section', 'Render shows'];

const SEEDS = [
  { file: 'pm-soft.yaml', company: 'PM Soft' },
  { file: 'plimus.yaml', company: 'Plimus' },
  { file: 'pleres-technology.yaml', company: 'OpMaestro CRM (Pleres Technology)' },
  { file: 'promo-x-crm.yaml', company: 'Promo X CRM' },
  { file: 'plenary-it-solutions.yaml', company: 'Plenary IT Solutions' },
] as const;

interface TraceRow {
  line: number;
  number: string;
  clause: string;
  element: string;
  section: string;
  shows: string;
}

// --- README parsing ------------------------------------------------------------------------------

/** Splits a Markdown table row on unescaped pipes, dropping the outer empty cells. */
function splitRow(line: string): string[] {
  const cells: string[] = [];
  let current = '';
  for (let index = 0; index < line.length; index++) {
    const char = line[index]!;
    if (char === '\\' && line[index + 1] === '|') {
      current += '|';
      index++;
    } else if (char === '|') {
      cells.push(current.trim());
      current = '';
    } else {
      current += char;
    }
  }
  cells.push(current.trim());
  if (cells[0] === '') cells.shift();
  if (cells[cells.length - 1] === '') cells.pop();
  return cells;
}

/** `text`, "text" or plain text → text. */
function unwrap(cell: string): string {
  const trimmed = cell.trim();
  if (trimmed.length >= 2 && ((trimmed.startsWith('`') && trimmed.endsWith('`')) || (trimmed.startsWith('"') && trimmed.endsWith('"')))) {
    return trimmed.slice(1, -1).trim();
  }
  return trimmed;
}

/**
 * The trace table of one company: the first table with the trace header inside the `## …`
 * section whose heading names the file in backticks.
 */
function traceTable(markdown: string, file: string): TraceRow[] {
  const lines = markdown.split(/\r?\n/);
  const start = lines.findIndex((line) => /^##\s/.test(line) && line.includes(`\`${file}\``));
  assert.notEqual(start, -1, `README.md has no "## … \`${file}\`" heading`);
  let end = lines.findIndex((line, index) => index > start && /^##\s/.test(line));
  if (end === -1) end = lines.length;

  const headerAt = lines.findIndex((line, index) => index > start && index < end && line.trim().startsWith('|') && splitRow(line).join('|') === TRACE_HEADER.join('|'));
  assert.notEqual(headerAt, -1, `README.md section for ${file} has no trace table with the columns | ${TRACE_HEADER.join(' | ')} |`);
  assert.match(lines[headerAt + 1] ?? '', /^\|\s*-{3,}/, `the trace table of ${file} has no separator line under its header`);

  const rows: TraceRow[] = [];
  for (let index = headerAt + 2; index < end; index++) {
    const line = lines[index]!;
    if (!line.trim().startsWith('|')) break;
    const cells = splitRow(line);
    assert.equal(cells.length, TRACE_HEADER.length, `README.md:${index + 1}: a trace row needs ${TRACE_HEADER.length} cells, found ${cells.length}`);
    const [number, clause, element, section, shows] = cells.map(unwrap) as [string, string, string, string, string];
    for (const [name, value] of [['Clause', clause], ['Policy element', element], ['Section', section], ['Render shows', shows]] as const) {
      assert.ok(value.length > 0, `README.md:${index + 1}: empty ${name}`);
    }
    rows.push({ line: index + 1, number, clause, element, section, shows });
  }
  assert.ok(rows.length >= MIN_ROWS, `the trace table of ${file} has ${rows.length} rows; expected at least ${MIN_ROWS}`);
  return rows;
}

// --- policy paths --------------------------------------------------------------------------------

type Token = { key: string } | { index: number };

/** `rights.requests.erasure.channels[0].address` → keys and indexes. */
function tokenize(elementPath: string): Token[] {
  const tokens: Token[] = [];
  for (const part of elementPath.split('.')) {
    const match = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    assert.ok(match, `cannot read the policy path "${elementPath}" (at "${part}")`);
    if (match[1]) tokens.push({ key: match[1] });
    for (const index of match[2]!.matchAll(/\[(\d+)\]/g)) tokens.push({ index: Number(index[1]) });
  }
  return tokens;
}

/** Keys that select an item of a list, in order of preference. */
const SELECTORS = ['id', 'type', 'name', 'role', 'kind'] as const;

/**
 * Resolves a path in the policy document. A list is entered by index (`[0]`) or by the id, type,
 * name, role or kind of an item; dotted ids (custom categories such as user.partner_data) are
 * matched by joining as many following segments as needed, longest first.
 */
function resolve(document: unknown, elementPath: string): unknown {
  const tokens = tokenize(elementPath);
  let node: unknown = document;
  let position = 0;
  while (position < tokens.length) {
    const token = tokens[position]!;
    if (Array.isArray(node)) {
      const list: unknown[] = node;
      if ('index' in token) {
        node = list[token.index];
        position++;
        continue;
      }
      let found = false;
      for (let take = tokens.length - position; take >= 1 && !found; take--) {
        const slice = tokens.slice(position, position + take);
        if (!slice.every((part) => 'key' in part)) continue;
        const wanted = slice.map((part) => (part as { key: string }).key).join('.');
        for (const selector of SELECTORS) {
          const item = list.find((candidate) => candidate && typeof candidate === 'object' && (candidate as Record<string, unknown>)[selector] === wanted);
          if (item !== undefined) {
            node = item;
            position += take;
            found = true;
            break;
          }
        }
      }
      if (!found) return undefined;
    } else if (node && typeof node === 'object') {
      if (!('key' in token)) return undefined;
      node = (node as Record<string, unknown>)[token.key];
      position++;
    } else {
      return undefined;
    }
    if (node === undefined) return undefined;
  }
  return node;
}

function topLevelKey(elementPath: string): string {
  return /^[^.[]+/.exec(elementPath)?.[0] ?? elementPath;
}

// --- text comparison -----------------------------------------------------------------------------

/** Case-insensitive, whitespace-normalised, typographic quotes and dashes made plain. */
function normalise(value: string): string {
  return value
    .replace(/[\u201C\u201D\u201E\u00AB\u00BB]/g, '"')
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/[\u2013\u2014]/g, '-')
    .replace(/\s+/g, ' ')
    .trim()
    .toLowerCase();
}

// --- the tests -----------------------------------------------------------------------------------

const readme = readFileSync(README, 'utf8');

for (const seed of SEEDS) {
  describe(`seed policy ${seed.company} (${seed.file})`, () => {
    const file = path.join(ROOT, 'examples/policies', seed.file);
    const result = loadPolicyFile(file);
    const errors = result.issues.filter((issue) => issue.severity === 'error');
    const policy = result.policy as Policy | undefined;

    test('validates without errors', () => {
      assert.deepEqual(
        errors.map((issue) => `${issue.line}:${issue.column} ${issue.path}: ${issue.message}`),
        [],
        `${seed.file} does not validate`,
      );
      assert.ok(policy, `${seed.file} produced no policy`);
    });

    test('starts with the schema comment for editors', () => {
      const first = readFileSync(file, 'utf8').split(/\r?\n/, 1)[0];
      assert.equal(first, '# yaml-language-server: $schema=../../schema/pledge.schema.json');
    });

    test('renders as Markdown and HTML', () => {
      assert.ok(policy);
      const markdown = renderPolicy(policy, 'md');
      const html = renderPolicy(policy, 'html');
      assert.ok(markdown.includes(policy.document.organization.name), 'the Markdown names the organization');
      assert.ok(html.includes('<section'), 'the HTML has sections');
    });

    test('the README trace table holds', () => {
      assert.ok(policy);
      const rows = traceTable(readme, seed.file);
      const sections = new Map(composePolicyDocument(policy).sections.map((section) => [section.id, section]));
      const texts = new Map([...sections].map(([id, section]) => [id, normalise(sectionText(section))]));
      const html = renderPolicy(policy, 'html');
      const problems: string[] = [];
      for (const row of rows) {
        const where = `README.md:${row.line} (row ${row.number}, ${row.element})`;
        const value = resolve(policy.document, row.element);
        if (value === undefined || value === null) problems.push(`${where}: "${row.element}" does not resolve to a value in ${seed.file}`);
        const text = texts.get(row.section);
        if (text === undefined) {
          problems.push(`${where}: no rendered section "${row.section}" (sections: ${[...sections.keys()].join(', ')})`);
          continue;
        }
        if (!text.includes(normalise(row.shows))) problems.push(`${where}: section "${row.section}" does not contain "${row.shows}"`);
        if (!html.includes(`id="${row.section}"`)) problems.push(`${where}: the HTML has no element with id="${row.section}"`);
      }
      assert.deepEqual(problems, [], `${problems.length} trace row(s) of ${seed.file} do not hold`);
    });

    test('every top-level key of the file is traced', () => {
      assert.ok(policy);
      const traced = new Set(traceTable(readme, seed.file).map((row) => topLevelKey(row.element)));
      const used = Object.keys(policy.document).filter((key) => key !== 'pledge' && key !== '$schema');
      const untraced = used.filter((key) => !traced.has(key));
      assert.deepEqual(untraced, [], `${seed.file} declares ${untraced.join(', ')} but no README row traces it`);
    });
  });
}

describe('trace-table parsing', () => {
  test('fails loudly when a company section or its table is missing', () => {
    assert.throws(() => traceTable('# nothing here\n', 'absent.yaml'), /no "## … `absent.yaml`" heading/);
    assert.throws(() => traceTable('## X — `x.yaml`\n\nno table\n', 'x.yaml'), /no trace table/);
    const short = ['## X — `x.yaml`', '', `| ${TRACE_HEADER.join(' | ')} |`, '|---|---|---|---|---|', '| 1 | a | `policy.version` | introduction | b |', ''].join('\n');
    assert.throws(() => traceTable(short, 'x.yaml'), /has 1 rows; expected at least 10/);
  });

  test('resolves ids, types, names, indexes and dotted ids', () => {
    const document = {
      categories: [{ id: 'user.partner_data', name: 'Partner data' }],
      rights: { requests: [{ type: 'erasure', channels: [{ kind: 'postal', address: 'Somewhere 1' }] }] },
      cookies: [{ name: 'sid', lifetime: 'session' }],
      storage: { transfers: [{ to: 'US' }] },
    };
    assert.equal(resolve(document, 'categories.user.partner_data.name'), 'Partner data');
    assert.equal(resolve(document, 'rights.requests.erasure.channels[0].address'), 'Somewhere 1');
    assert.equal(resolve(document, 'rights.requests.erasure.channels.postal.address'), 'Somewhere 1');
    assert.equal(resolve(document, 'cookies.sid.lifetime'), 'session');
    assert.equal(resolve(document, 'storage.transfers[0].to'), 'US');
    assert.equal(resolve(document, 'storage.transfers[1]'), undefined);
    assert.equal(resolve(document, 'rights.requests.access'), undefined);
  });
});
