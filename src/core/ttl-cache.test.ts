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
