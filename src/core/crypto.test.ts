import assert from 'node:assert/strict';
import { test } from 'node:test';
import { safeEqual, sameTextInConstantTime } from './crypto.js';

test('texts compared in constant time are equal exactly when === says so', () => {
  const token = `Bearer pk_${'x'.repeat(43)}`;
  const cases: Array<[string, string]> = [
    [token, `Bearer pk_${'x'.repeat(43)}`],
    [token, `Bearer pk_${'x'.repeat(42)}y`],
    [token, `bearer pk_${'x'.repeat(43)}`],
    [token, `Bearer pk_${'x'.repeat(42)}`],
    [token, ''],
    ['', ''],
    ['é', 'e'],
    ['\u{1F600}', '\u{1F601}'],
  ];
  for (const [a, b] of cases) {
    assert.equal(sameTextInConstantTime(a, b), a === b, `${a} / ${b}`);
    assert.equal(sameTextInConstantTime(b, a), a === b, `${b} / ${a}`);
    assert.equal(safeEqual(a, b), a === b, `${a} / ${b}`);
  }
});
