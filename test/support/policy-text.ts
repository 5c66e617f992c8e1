import assert from 'node:assert/strict';
import { loadPolicyText } from '../../src/policy/policy.load.js';
import type { PolicyIssue } from '../../src/policy/policy.issues.js';

/** `base` with one textual edit; fails the test if the edit did not apply. */
export function editedText(base: string, search: string | RegExp, replacement: string): string {
  const text = base.replace(search, replacement);
  assert.notEqual(text, base, `edit ${String(search)} did not apply`);
  return text;
}

/** The errors (not warnings) a policy text yields. */
export function errorsOf(text: string): PolicyIssue[] {
  return loadPolicyText(text, 'pledge.yaml').issues.filter((issue) => issue.severity === 'error');
}

/** The 1-based line of the first occurrence of `needle`: where an issue must point. */
export function lineOf(text: string, needle: string): number {
  const index = text.indexOf(needle);
  assert.ok(index >= 0, `"${needle}" not in text`);
  return text.slice(0, index).split('\n').length;
}
