import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TtlCache } from './ttl-cache.js';

test('entries expire after their time to live', () => {
  let now = 1_000;
  const cache = new TtlCache<string, number>({ max: 10, ttlMs: 500, now: () => now });
  cache.set('a', 1);
  now += 499;
  assert.equal(cache.get('a'), 1);
  now += 1;
  assert.equal(cache.get('a'), undefined);
  assert.equal(cache.size, 0);
});

test('when full, the least recently used entry leaves first', () => {
  const cache = new TtlCache<string, number>({ max: 2, ttlMs: 60_000 });
  cache.set('a', 1);
  cache.set('b', 2);
  assert.equal(cache.get('a'), 1); // a is now the most recently used
  cache.set('c', 3);
  assert.equal(cache.get('b'), undefined);
  assert.equal(cache.get('a'), 1);
  assert.equal(cache.get('c'), 3);
  cache.delete('a');
  assert.equal(cache.get('a'), undefined);
});

test('a time to live of zero caches nothing', () => {
  const cache = new TtlCache<string, number>({ max: 10, ttlMs: 0 });
  assert.equal(cache.set('a', 1), 1);
  assert.equal(cache.get('a'), undefined);
});

test('entries leave in least recently used order, however they were used', () => {
  const cache = new TtlCache<string, number>({ max: 3, ttlMs: 60_000 });
  cache.set('a', 1);
  cache.set('b', 2);
  cache.set('c', 3);
  cache.get('a'); // order, oldest first: b, c, a
  cache.get('c'); // b, a, c
  cache.set('b', 20); // replacing a value uses it: a, c, b
  cache.set('d', 4); // a leaves: c, b, d
  assert.equal(cache.get('a'), undefined);
  cache.delete('b'); // c, d
  cache.set('e', 5); // room left: c, d, e
  cache.set('f', 6); // c leaves: d, e, f
  assert.deepEqual(['b', 'c', 'd', 'e', 'f'].map((key) => cache.get(key)), [undefined, undefined, 4, 5, 6]);
  assert.equal(cache.size, 3);
  cache.clear();
  assert.equal(cache.size, 0);
  cache.set('g', 7);
  assert.equal(cache.get('g'), 7);
});

test('an expired entry makes room without pushing out a live one', () => {
  let now = 0;
  const cache = new TtlCache<string, number>({ max: 2, ttlMs: 100, now: () => now });
  cache.set('a', 1);
  now = 50;
  cache.set('b', 2);
  now = 120; // a has expired, b has not
  assert.equal(cache.get('a'), undefined);
  cache.set('c', 3);
  assert.equal(cache.get('b'), 2);
  assert.equal(cache.get('c'), 3);
});
