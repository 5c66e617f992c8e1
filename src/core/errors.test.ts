import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERROR_CATALOGUE, PledgeError } from './errors.js';

test('every error code is documented in docs/errors.md, and every documented code exists', () => {
  const documented = new Set([...readFileSync('docs/errors.md', 'utf8').matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)].map((match) => `${match[1]}:${match[2]}`));
  const catalogue = new Set(Object.entries(ERROR_CATALOGUE).map(([code, spec]) => `${code}:${spec.status}`));
  assert.deepEqual([...catalogue].filter((entry) => !documented.has(entry)), [], 'codes missing from docs/errors.md (or with another status)');
  assert.deepEqual([...documented].filter((entry) => !catalogue.has(entry)), [], 'documented codes that no longer exist');
});

test('every code has a title, a description and an HTTP error status', () => {
  for (const [code, spec] of Object.entries(ERROR_CATALOGUE)) {
    assert.match(code, /^[a-z][a-z_]*$/);
    assert.ok(spec.title.length > 0 && spec.description.length > 20, `${code} needs a title and a description`);
    assert.ok(spec.status >= 400 && spec.status < 600, `${code} status`);
  }
});

test('PledgeError carries its code and status', () => {
  const error = new PledgeError('not_found', 'gone', { details: { id: 'sub_1' } });
  assert.equal(error.code, 'not_found');
  assert.equal(error.status, 404);
  assert.deepEqual(error.details, { id: 'sub_1' });
  assert.ok(error instanceof Error);
});
