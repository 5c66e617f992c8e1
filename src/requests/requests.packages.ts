import { strToU8, zipSync } from 'fflate';
import { escapeHtml } from '../core/html.js';
import type { Policy } from '../policy/policy.model.js';
import type { FoundRow } from './requests.systems.js';

/**
 * Access and portability packages: everything found about a person, in three forms built from
 * the same rows —
 * - JSON, machine-readable, grouped by source (datastore → collection → rows) and by category;
 * - a zip with one CSV per collection (`vault/profile.csv`, `shop/orders.csv`…) plus the JSON;
 * - one readable HTML page (every value escaped).
 */
export interface PackageInput {
  requestId: string;
  type: string;
  generatedAt: string;
  organization: string;
  rows: readonly FoundRow[];
}

export interface PackageJson {
  request: { id: string; type: string; generatedAt: string };
  organization: string;
  sources: Record<string, Record<string, Array<{ primaryKey: Record<string, unknown>; fields: Record<string, { category: string; value: unknown }> }>>>;
  categories: Record<string, { name: string; values: Array<{ datastore: string; collection: string; field: string; value: unknown }> }>;
}

export function buildJson(input: PackageInput, policy: Policy): PackageJson {
  const sources: PackageJson['sources'] = {};
  const categories: PackageJson['categories'] = {};
  for (const row of input.rows) {
    const collections = (sources[row.datastore] ??= {});
    const rows = (collections[row.collection] ??= []);
    const fields: Record<string, { category: string; value: unknown }> = {};
    for (const field of row.fields) {
      fields[field.name] = { category: field.category, value: field.value };
      (categories[field.category] ??= { name: policy.categoryName(field.category), values: [] }).values.push({ datastore: row.datastore, collection: row.collection, field: field.name, value: field.value });
    }
    rows.push({ primaryKey: row.primaryKey, fields });
  }
  const sortedCategories = Object.fromEntries(Object.entries(categories).sort(([a], [b]) => a.localeCompare(b)));
  return { request: { id: input.requestId, type: input.type, generatedAt: input.generatedAt }, organization: input.organization, sources, categories: sortedCategories };
}

function text(value: unknown): string {
  if (value === null || value === undefined) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/**
 * One CSV cell (RFC 4180). A cell a spreadsheet would run as a formula (= + - @ at the start)
 * is prefixed with an apostrophe, so opening the file cannot execute anything.
 */
export function csvCell(value: unknown): string {
  let cell = text(value);
  if (/^[=+\-@\t\r]/.test(cell)) cell = `'${cell}`;
  return /[",\r\n]/.test(cell) ? `"${cell.replace(/"/g, '""')}"` : cell;
}

function csvFor(rows: PackageJson['sources'][string][string]): string {
  const keyColumns = [...new Set(rows.flatMap((row) => Object.keys(row.primaryKey)))];
  const fieldColumns = [...new Set(rows.flatMap((row) => Object.keys(row.fields)))];
  const lines = [[...keyColumns, ...fieldColumns].map(csvCell).join(',')];
  for (const row of rows) lines.push([...keyColumns.map((column) => row.primaryKey[column]), ...fieldColumns.map((column) => row.fields[column]?.value)].map(csvCell).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

/** A file name part made of safe characters only (collection names come from datastores). */
function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_').slice(0, 100) || '_';
}

export function buildZip(json: PackageJson): Uint8Array {
  const files: Record<string, Uint8Array> = { 'data.json': strToU8(JSON.stringify(json, null, 2)) };
  for (const [datastore, collections] of Object.entries(json.sources)) {
    for (const [collection, rows] of Object.entries(collections)) files[`${safeName(datastore)}/${safeName(collection)}.csv`] = strToU8(csvFor(rows));
  }
  // Fixed timestamps: the same data yields the same archive.
  return zipSync(files, { level: 6, mtime: new Date('2000-01-01T00:00:00Z') });
}

export function buildHtml(json: PackageJson): string {
  const cell = (value: unknown) => `<td>${escapeHtml(text(value))}</td>`;
  const parts: string[] = [];
  parts.push(
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>Your data — ${escapeHtml(json.organization)}</title>`,
    '<style>body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#111}table{border-collapse:collapse;width:100%;margin:0 0 1.5rem}th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top;word-break:break-word}th{background:#f4f4f4}</style>',
    '</head><body>',
    `<h1>Your data held by ${escapeHtml(json.organization)}</h1>`,
    `<p>Request ${escapeHtml(json.request.id)} (${escapeHtml(json.request.type)}), prepared ${escapeHtml(json.request.generatedAt)}.</p>`,
    '<h2>By kind of data</h2>',
  );
  const categories = Object.entries(json.categories);
  if (categories.length === 0) parts.push('<p>We found no data about you.</p>');
  for (const [category, entry] of categories) {
    parts.push(`<h3>${escapeHtml(entry.name)} <small>(${escapeHtml(category)})</small></h3><table><thead><tr><th>Value</th><th>Where</th></tr></thead><tbody>`);
    for (const value of entry.values) parts.push(`<tr>${cell(value.value)}${cell(`${value.datastore} / ${value.collection} / ${value.field}`)}</tr>`);
    parts.push('</tbody></table>');
  }
  parts.push('<h2>By source</h2>');
  for (const [datastore, collections] of Object.entries(json.sources)) {
    for (const [collection, rows] of Object.entries(collections)) {
      const columns = [...new Set(rows.flatMap((row) => Object.keys(row.fields)))];
      parts.push(`<h3>${escapeHtml(datastore)} / ${escapeHtml(collection)}</h3><table><thead><tr>${columns.map((column) => `<th>${escapeHtml(column)}</th>`).join('')}</tr></thead><tbody>`);
      for (const row of rows) parts.push(`<tr>${columns.map((column) => cell(row.fields[column]?.value)).join('')}</tr>`);
      parts.push('</tbody></table>');
    }
  }
  parts.push('</body></html>');
  return parts.join('\n');
}

export const PACKAGE_FORMATS = {
  json: { contentType: 'application/json; charset=utf-8', extension: 'json' },
  zip: { contentType: 'application/zip', extension: 'zip' },
  html: { contentType: 'text/html; charset=utf-8', extension: 'html' },
} as const;

export type PackageFormat = keyof typeof PACKAGE_FORMATS;

export function buildPackage(input: PackageInput, policy: Policy): Record<PackageFormat, Uint8Array> {
  const json = buildJson(input, policy);
  return { json: strToU8(JSON.stringify(json, null, 2)), zip: buildZip(json), html: strToU8(buildHtml(json)) };
}
