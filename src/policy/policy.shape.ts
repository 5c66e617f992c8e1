import type { ErrorObject } from 'ajv';
import { closestMatch } from '../core/suggest.js';
import type { PathSegment, PendingIssue } from './policy.issues.js';
// Compiled at build time (scripts/build-validator.mjs): compiling the schema at run time
// would cost every start about 150 ms and 15 MB.
import validate from './policy.validator.js';

/**
 * Checks a parsed policy against the JSON Schema and turns Ajv's errors into issues a person
 * can act on: the key that is unknown (and the one probably meant), the value that is not
 * one of the allowed words, the required key that is missing.
 */

function pathOf(instancePath: string, data: unknown): PathSegment[] {
  const segments: PathSegment[] = [];
  let node = data;
  for (const raw of instancePath.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      const index = Number(key);
      segments.push(index);
      node = node[index];
    } else {
      segments.push(key);
      node = node && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
    }
  }
  return segments;
}

function describeType(value: unknown): string {
  if (value === null) return 'nothing (null)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `text "${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`;
  return `${typeof value} ${String(value)}`;
}

const TYPE_WORDS: Record<string, string> = {
  string: 'text',
  array: 'a list',
  object: 'a mapping of keys to values',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
};

function issueFor(error: ErrorObject, data: unknown): PendingIssue {
  const path = pathOf(error.instancePath, data);
  const hint = (error.parentSchema as Record<string, unknown> | undefined)?.['x-hint'] as string | undefined;
  const base = { severity: 'error' as const, path };
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = (error.params as { additionalProperty: string }).additionalProperty;
      const allowed = Object.keys(((error.parentSchema as { properties?: object })?.properties ?? {}));
      const guess = closestMatch(key, allowed);
      return {
        ...base,
        code: 'unknown_key',
        path: [...path, key],
        at: 'key',
        message: `unknown key "${key}"`,
        suggestion: guess ? `did you mean "${guess}"?` : `allowed keys here: ${allowed.join(', ')}`,
      };
    }
    case 'required': {
      const key = (error.params as { missingProperty: string }).missingProperty;
      return { ...base, code: 'missing_key', at: 'key', message: `missing required key "${key}"` };
    }
    case 'enum': {
      const allowed = (error.params as { allowedValues: unknown[] }).allowedValues.map(String);
      const guess = typeof error.data === 'string' ? closestMatch(error.data, allowed) : undefined;
      return {
        ...base,
        code: 'invalid_value',
        message: `${describeType(error.data)} is not one of ${allowed.join(', ')}`,
        ...(guess ? { suggestion: `did you mean "${guess}"?` } : {}),
      };
    }
    case 'const':
      return { ...base, code: 'invalid_value', message: `must be ${JSON.stringify((error.params as { allowedValue: unknown }).allowedValue)}, got ${describeType(error.data)}` };
    case 'type': {
      const expected = String((error.params as { type: string }).type);
      return { ...base, code: 'wrong_type', message: `expected ${TYPE_WORDS[expected] ?? expected}, got ${describeType(error.data)}` };
    }
    case 'pattern':
    case 'format':
      return { ...base, code: 'invalid_format', message: `${describeType(error.data)} is not ${hint ?? `a valid ${String((error.params as { format?: string }).format ?? 'value')}`}` };
    case 'minItems':
      return { ...base, code: 'too_few_items', message: `needs at least ${(error.params as { limit: number }).limit} item(s)` };
    case 'uniqueItems':
      return { ...base, code: 'duplicate_item', message: `lists the same item twice (items ${(error.params as { j: number; i: number }).j} and ${(error.params as { i: number }).i})` };
    case 'minLength':
      return { ...base, code: 'empty_text', message: 'must not be empty' };
    case 'maxLength':
      return { ...base, code: 'text_too_long', message: `is longer than ${(error.params as { limit: number }).limit} characters` };
    case 'minimum':
    case 'maximum':
      return { ...base, code: 'out_of_range', message: `${String(error.data)} is ${error.keyword === 'minimum' ? 'below' : 'above'} the ${error.keyword} of ${(error.params as { limit: number }).limit}` };
    case 'anyOf': {
      const description = (error.parentSchema as { description?: string })?.description;
      return { ...base, code: 'invalid_value', message: `${describeType(error.data)} is not valid here${description ? `: expected ${description}` : ''}` };
    }
    default:
      return { ...base, code: 'invalid_value', message: error.message ?? 'is not valid' };
  }
}

export function checkShape(data: unknown): PendingIssue[] {
  if (validate(data)) return [];
  const errors = validate.errors ?? [];
  // A failed union reports each branch and then itself; keep only the union's own error.
  const unionPaths = new Set(errors.filter((error) => error.keyword === 'anyOf').map((error) => error.instancePath));
  const kept = errors.filter((error) => error.keyword === 'anyOf' || !unionPaths.has(error.instancePath));
  const seen = new Set<string>();
  const issues: PendingIssue[] = [];
  for (const error of kept) {
    const issue = issueFor(error, data);
    const key = `${issue.path.join('/')}|${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  // A misspelt required key shows up twice: as unknown ("triger") and as missing ("trigger").
  // Report it once, as the typo, which names both.
  const typos = new Set(
    issues
      .filter((issue) => issue.code === 'unknown_key' && issue.suggestion?.startsWith('did you mean'))
      .map((issue) => `${issue.path.slice(0, -1).join('/')}|${/"([^"]+)"/.exec(issue.suggestion!)?.[1]}`),
  );
  return issues.filter((issue) => {
    if (issue.code !== 'missing_key') return true;
    const missing = /"([^"]+)"/.exec(issue.message)?.[1];
    return !typos.has(`${issue.path.join('/')}|${missing}`);
  });
}
