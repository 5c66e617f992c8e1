import { PledgeError } from '../core/errors.js';
import { covers } from '../policy/taxonomy.js';
import { emailAddressProblem } from './identities.js';

/**
 * Checks on the shape of a field value that the vault makes before anything else reads it.
 *
 * A value is free-form JSON, and a request body of a few kilobytes can nest arrays thousands
 * deep: every recursive reader (JSON.stringify, the age gate, a reader of the stored value
 * later) would then fail with a stack overflow. No personal data needs more than a few levels,
 * so anything deeper than MAX_FIELD_DEPTH is refused up front, by a walk that does not recurse.
 */
export const MAX_FIELD_DEPTH = 32;

/** Refuses a value nesting objects and arrays more than MAX_FIELD_DEPTH levels deep ("x" is 0, [] is 1). */
export function requireShallowValue(category: string, value: unknown): void {
  const pending: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  for (let next = pending.pop(); next; next = pending.pop()) {
    if (next.value === null || typeof next.value !== 'object') continue;
    const depth = next.depth + 1;
    if (depth > MAX_FIELD_DEPTH) throw new PledgeError('invalid_field_value', `the value of "${category}" nests objects and arrays more than ${MAX_FIELD_DEPTH} levels deep`);
    for (const child of Array.isArray(next.value) ? next.value : Object.values(next.value)) pending.push({ value: child, depth });
  }
}

const EMAIL_CATEGORY = 'user.contact.email';

/**
 * An email address stored as a field must be one that could be written to: the same rules as
 * an email identity (a domain name, at most 64 bytes before the @, no invisible characters).
 * Applies to user.contact.email and the categories a policy declares under it.
 */
export function requireValidEmailField(category: string, value: unknown): void {
  if (!covers(EMAIL_CATEGORY, category)) return;
  const problem = typeof value === 'string' ? emailAddressProblem(value) : 'it is not text';
  // The value itself is never put in the message: it is personal data.
  if (problem) throw new PledgeError('invalid_field_value', `the value of "${category}" is not an email address: ${problem}`);
}
