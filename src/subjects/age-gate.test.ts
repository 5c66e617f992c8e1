import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkAgeGate, upperBound } from './age-gate.js';

const now = new Date('2026-03-01T12:00:00Z');

test('an age range is read for its upper bound, or tells nothing', () => {
  assert.equal(upperBound('0-9'), 9);
  assert.equal(upperBound(' 10 – 14 years '), 14);
  assert.equal(upperBound('10 to 14'), 14);
  assert.equal(upperBound('under 13'), 12);
  assert.equal(upperBound('<13'), 12);
  assert.equal(upperBound('up to 12'), 12);
  assert.equal(upperBound('12 years old'), 12);
  assert.equal(upperBound('13+'), undefined);
  assert.equal(upperBound('prefer not to say'), undefined);
});

test('without a minimum age, birth dates are still checked for their form and ages pass', () => {
  assert.doesNotThrow(() => checkAgeGate('user.demographic', { date_of_birth: '2020-05-01', age_range: '0-9' }, undefined, now));
  assert.throws(() => checkAgeGate('user.demographic', { dob: '2020-02-30' }, undefined, now), { code: 'invalid_field_value' });
  assert.throws(() => checkAgeGate('user.demographic.date_of_birth', '2027-01-01', undefined, now), { code: 'invalid_field_value' });
});

test('a value nested far down is still found, and no other key is echoed', () => {
  let value: unknown = { dob: '2020-05-01' };
  for (let depth = 0; depth < 30; depth++) value = { 'jane@example.com': value };
  assert.throws(() => checkAgeGate('user.demographic', value, 13, now), (error: Error) => error.message.includes('(key dob)') && !error.message.includes('jane'));
});
