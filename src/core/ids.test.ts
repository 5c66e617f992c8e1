import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isId, newId } from './ids.js';

test('ids carry their prefix and 26 base32 characters', () => {
  const id = newId('sub');
  assert.match(id, /^sub_[0-9a-hjkmnp-tv-z]{26}$/);
  assert.ok(isId(id, 'sub'));
  assert.ok(!isId(id, 'req'));
  assert.ok(!isId('sub_short', 'sub'));
});

test('ids sort by creation time and do not repeat', () => {
  const earlier = newId('req', Date.UTC(2026, 0, 1));
  const later = newId('req', Date.UTC(2026, 0, 2));
  assert.ok(earlier < later);
  const many = new Set(Array.from({ length: 10_000 }, () => newId('evt')));
  assert.equal(many.size, 10_000);
});
