import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requestIdGenerator } from './request-ids.js';

describe('request ids', () => {
  it('never repeat within a process, and two processes draw different prefixes', () => {
    const next = requestIdGenerator();
    const ids = Array.from({ length: 10_000 }, () => next());
    assert.equal(new Set(ids).size, ids.length);
    const prefixOf = (id: string) => id.slice(0, id.indexOf('-'));
    assert.equal(new Set(ids.map(prefixOf)).size, 1);
    const other = requestIdGenerator();
    assert.notEqual(prefixOf(other()), prefixOf(ids[0]!));
  });

  it('are safe in a header, a URL and a log line', () => {
    const next = requestIdGenerator();
    for (let index = 0; index < 1000; index++) assert.match(next(), /^[A-Za-z0-9_-]{8}-[0-9a-z]+$/);
  });
});
