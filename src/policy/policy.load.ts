import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { PledgeError } from '../core/errors.js';
import { checkReferences } from './policy.checks.js';
import { formatPath, formatReport, type PendingIssue, type PolicyIssue } from './policy.issues.js';
import { Policy } from './policy.model.js';
import type { PolicyDocument } from './policy.schema.js';
import { checkShape } from './policy.shape.js';
import { parseYamlSource } from './policy.source.js';

/** Policies are short documents; anything larger is a mistake (or an attack), not a policy. */
export const MAX_POLICY_BYTES = 1024 * 1024;

export interface LoadResult {
  /** Present only when there is no error (warnings allowed). */
  policy?: Policy;
  issues: PolicyIssue[];
}

function fileIssue(file: string, code: string, message: string, line = 1, column = 1): LoadResult {
  return { issues: [{ severity: 'error', code, file, line, column, path: '', message }] };
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`;
}

/** Decodes strict UTF-8, or says where the first invalid byte is. */
function decodeUtf8(bytes: Uint8Array): { text: string } | { line: number; column: number } {
  try {
    return { text: new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes) };
  } catch {
    // Find the first byte that breaks decoding; report it as line:column of the valid prefix.
    let low = 0;
    let high = bytes.length;
    while (low < high) {
      const middle = Math.floor((low + high + 1) / 2);
      try {
        // stream: a prefix that ends inside a valid character is not an error.
        new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, middle), { stream: true });
        low = middle;
      } catch {
        high = middle - 1;
      }
    }
    const prefix = new TextDecoder('utf-8').decode(bytes.subarray(0, low));
    const lines = prefix.split('\n');
    return { line: lines.length, column: lines[lines.length - 1]!.length + 1 };
  }
}

/** Validates policy text. `file` is only used to name the place in issues. */
export function loadPolicyText(input: string | Uint8Array, file: string): LoadResult {
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else {
    if (input.byteLength > MAX_POLICY_BYTES) {
      return fileIssue(file, 'file_too_large', `the policy file is ${formatBytes(input.byteLength)}; the limit is ${formatBytes(MAX_POLICY_BYTES)}`);
    }
    const decoded = decodeUtf8(input);
    if (!('text' in decoded)) {
      return fileIssue(file, 'not_utf8', 'the file is not valid UTF-8 text; save it as UTF-8', decoded.line, decoded.column);
    }
    text = decoded.text;
  }
  if (text.length > MAX_POLICY_BYTES) {
    return fileIssue(file, 'file_too_large', `the policy text is over ${formatBytes(MAX_POLICY_BYTES)}`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);

  const source = parseYamlSource(text, file);
  if (source.syntaxErrors.length > 0) {
    return {
      issues: source.syntaxErrors.map((error) => ({
        severity: 'error',
        code: 'yaml_syntax',
        file,
        line: error.line,
        column: error.column,
        path: '',
        message: `YAML: ${error.message}`,
      })),
    };
  }
  if (source.data === null || source.data === undefined) {
    return fileIssue(file, 'empty_file', 'the policy file is empty; run `pledge init` to write a starter policy');
  }
  if (typeof source.data !== 'object' || Array.isArray(source.data)) {
    return fileIssue(file, 'not_a_mapping', 'the policy must be a mapping of keys (pledge:, policy:, organization:, …) at the top level');
  }

  const place = (pending: PendingIssue): PolicyIssue => ({
    severity: pending.severity,
    code: pending.code,
    file,
    ...source.positionOf(pending.path, pending.at),
    path: formatPath(pending.path),
    message: pending.message,
    ...(pending.suggestion ? { suggestion: pending.suggestion } : {}),
  });

  const shapeIssues = checkShape(source.data);
  if (shapeIssues.length > 0) return { issues: sortIssues(shapeIssues.map(place)) };

  const document = source.data as PolicyDocument;
  const issues = sortIssues(checkReferences(document).map(place));
  if (issues.some((issue) => issue.severity === 'error')) return { issues };
  return { policy: new Policy(document), issues };
}

function sortIssues(issues: PolicyIssue[]): PolicyIssue[] {
  return issues.sort((a, b) => a.line - b.line || a.column - b.column);
}

/** Reads and validates a policy file; never throws for a bad file, it reports. */
export function loadPolicyFile(filePath: string): LoadResult {
  const file = path.relative(process.cwd(), filePath) || filePath;
  let size: number;
  try {
    const stat = statSync(filePath);
    if (!stat.isFile()) return fileIssue(file, 'not_a_file', 'the policy path is not a regular file');
    size = stat.size;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return fileIssue(file, 'file_not_found', code === 'ENOENT' ? 'no such file; run `pledge init` to write a starter policy' : `cannot read the file (${code})`);
  }
  // Checked before reading, so a huge file is never loaded into memory.
  if (size > MAX_POLICY_BYTES) {
    return fileIssue(file, 'file_too_large', `the policy file is ${formatBytes(size)}; the limit is ${formatBytes(MAX_POLICY_BYTES)}`);
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(filePath);
  } catch (error) {
    return fileIssue(file, 'file_unreadable', `cannot read the file (${(error as NodeJS.ErrnoException).code})`);
  }
  return loadPolicyText(bytes, file);
}

/** For callers that cannot go on without a valid policy (the server, the renderer). */
export function requirePolicy(result: LoadResult): Policy {
  if (result.policy) return result.policy;
  const unreadable = result.issues.every((issue) => issue.path === '' && issue.code !== 'yaml_syntax');
  throw new PledgeError(unreadable ? 'policy_unreadable' : 'policy_invalid', formatReport(result.issues), {
    details: { issues: result.issues },
  });
}
