/**
 * A problem found in a policy file, with the place it was found. Both the CLI
 * (`pledge policy validate`) and the HTTP layer report these; formatIssue gives the one
 * text form: `pledge.yaml:14:7: error: purposes[2].categories[0]: unknown category …`.
 */
export type PathSegment = string | number;

export interface PolicyIssue {
  severity: 'error' | 'warning';
  /** Stable machine name of the check, e.g. unknown_category. */
  code: string;
  file: string;
  line: number;
  column: number;
  /** Where in the policy, e.g. purposes[2].categories[0]; empty for the whole file. */
  path: string;
  message: string;
  /** A likely fix, shown after the message. */
  suggestion?: string;
}

/** An issue before it is placed in the file: checks work on paths, the loader adds positions. */
export interface PendingIssue {
  severity: 'error' | 'warning';
  code: string;
  path: PathSegment[];
  message: string;
  suggestion?: string;
  /** Point at the key rather than its value (an unknown key, for instance). */
  at?: 'key' | 'value';
}

export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out.length === 0 ? segment : `.${segment}`;
  }
  return out;
}

export function formatIssue(issue: PolicyIssue): string {
  const place = `${issue.file}:${issue.line}:${issue.column}`;
  const where = issue.path ? `${issue.path}: ` : '';
  const hint = issue.suggestion ? ` — ${issue.suggestion}` : '';
  return `${place}: ${issue.severity}: ${where}${issue.message}${hint}`;
}

export function formatReport(issues: readonly PolicyIssue[]): string {
  const errors = issues.filter((issue) => issue.severity === 'error').length;
  const warnings = issues.length - errors;
  const lines = issues.map(formatIssue);
  lines.push(`${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}`);
  return lines.join('\n');
}
