import assert from 'node:assert/strict';
import { PledgeError, type ErrorCode } from '../../src/core/errors.js';

/**
 * Awaits `promise` and checks it fails with a PledgeError of `code` (and a message matching
 * `message`, when given); returns the error for further checks.
 *
 *   const error = await rejects(vault.subjects.readData(actor, id, 'marketing'), 'purpose_not_permitted');
 */
export async function rejects(promise: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<PledgeError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof PledgeError, `expected PledgeError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}
