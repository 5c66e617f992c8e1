import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isId, newId, uuidV7 } from './ids.js';

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

test('ids made in the same millisecond sort in the order they were made', () => {
  const now = Date.UTC(2026, 5, 1, 12);
  const made = Array.from({ length: 1000 }, () => newId('cns', now));
  assert.deepEqual([...made].sort(), made);
  assert.equal(new Set(made).size, made.length);
  assert.ok(made.every((id) => id.slice(4, 14) === made[0]!.slice(4, 14)), 'the time part is the millisecond given');
  const uuids = Array.from({ length: 1000 }, () => uuidV7(now));
  assert.deepEqual([...uuids].sort(), uuids);
});

test('UUIDs of version 7 have the standard form, version and variant, and sort by creation time', () => {
  const id = uuidV7(Date.UTC(2026, 11, 3, 12));
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(id.slice(0, 13).replace('-', ''), Date.UTC(2026, 11, 3, 12).toString(16).padStart(12, '0'));
  assert.ok(uuidV7(Date.UTC(2026, 0, 1)) < uuidV7(Date.UTC(2026, 0, 2)));
  const many = new Set(Array.from({ length: 10_000 }, () => uuidV7()));
  assert.equal(many.size, 10_000);
});
