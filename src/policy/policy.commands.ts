import { existsSync } from 'node:fs';
import path from 'node:path';
import { EXIT, UsageError, parseCommandArgs, writeFileAtomic, type CommandIO } from '../cli/io.js';
import { diffPolicies, diffToJson, formatDiff } from './policy.diff.js';
import { askStarterAnswers, defaultStarterAnswers, renderStarterPolicy } from './policy.init.js';
import { formatReport } from './policy.issues.js';
import { loadPolicyFile } from './policy.load.js';
import { policyJsonSchema } from './policy.schema.js';
import { renderPolicy } from './render/render.js';
import { BUILT_IN_CATEGORIES, type CategoryInfo } from './taxonomy.js';

/** `pledge policy validate FILE [--json]` */
export function validateCommand(args: string[], io: CommandIO): number {
  const { values, positionals } = parseCommandArgs(args, { json: { type: 'boolean' } });
  if (positionals.length !== 1) throw new UsageError('usage: pledge policy validate FILE [--json]');
  const file = path.resolve(io.cwd, positionals[0]!);
  const result = loadPolicyFile(file);
  const errors = result.issues.filter((issue) => issue.severity === 'error').length;
  if (values.json) {
    io.out(JSON.stringify({ valid: errors === 0, hash: result.policy?.hash ?? null, issues: result.issues }, null, 2));
  } else if (result.issues.length > 0) {
    (errors > 0 ? io.err : io.out)(formatReport(result.issues));
  }
  if (errors > 0) return EXIT.invalid;
  if (!values.json) io.out(`${positionals[0]}: valid (policy version ${result.policy!.version}, hash ${result.policy!.hash.slice(0, 12)})`);
  return EXIT.ok;
}

/** `pledge policy render FILE [--format md|html] [--out FILE]` */
export function renderCommand(args: string[], io: CommandIO): number {
  const { values, positionals } = parseCommandArgs(args, { format: { type: 'string', short: 'f' }, out: { type: 'string', short: 'o' } });
  if (positionals.length !== 1) throw new UsageError('usage: pledge policy render FILE [--format md|html] [--out FILE]');
  const format = values.format ?? (values.out?.endsWith('.html') ? 'html' : 'md');
  if (format !== 'md' && format !== 'html') throw new UsageError(`--format must be md or html, not "${format}"`);
  const result = loadPolicyFile(path.resolve(io.cwd, positionals[0]!));
  if (!result.policy) {
    io.err(formatReport(result.issues));
    return EXIT.invalid;
  }
  const rendered = renderPolicy(result.policy, format);
  if (values.out) writeFileAtomic(path.resolve(io.cwd, values.out), rendered);
  else io.out(rendered);
  return EXIT.ok;
}

/** `pledge policy diff OLD NEW [--json]` */
export function diffCommand(args: string[], io: CommandIO): number {
  const { values, positionals } = parseCommandArgs(args, { json: { type: 'boolean' } });
  if (positionals.length !== 2) throw new UsageError('usage: pledge policy diff OLD NEW [--json]');
  const [before, after] = positionals.map((file) => loadPolicyFile(path.resolve(io.cwd, file)));
  if (!before!.policy || !after!.policy) {
    io.err(formatReport([...before!.issues, ...after!.issues].filter((issue) => issue.severity === 'error')));
    return EXIT.invalid;
  }
  const changes = diffPolicies(before!.policy, after!.policy);
  io.out(values.json ? JSON.stringify(diffToJson(changes), null, 2) : formatDiff(changes));
  return EXIT.ok;
}

/** `pledge policy schema [--out FILE]` */
export function schemaCommand(args: string[], io: CommandIO): number {
  const { values, positionals } = parseCommandArgs(args, { out: { type: 'string', short: 'o' } });
  if (positionals.length > 0) throw new UsageError('usage: pledge policy schema [--out FILE]');
  const text = `${JSON.stringify(policyJsonSchema(), null, 2)}\n`;
  if (values.out) writeFileAtomic(path.resolve(io.cwd, values.out), text);
  else io.out(text);
  return EXIT.ok;
}

/** `pledge init [--defaults] [--out FILE] [--force]` */
export async function initCommand(args: string[], io: CommandIO, input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    defaults: { type: 'boolean' },
    out: { type: 'string', short: 'o' },
    force: { type: 'boolean' },
  });
  if (positionals.length > 0) throw new UsageError('usage: pledge init [--defaults] [--out FILE] [--force]');
  const target = path.resolve(io.cwd, values.out ?? 'pledge.yaml');
  if (existsSync(target) && !values.force) {
    io.err(`${path.relative(io.cwd, target) || target} already exists; use --force to overwrite it`);
    return EXIT.invalid;
  }
  const answers = values.defaults ? defaultStarterAnswers : await askStarterAnswers(input, output);
  writeFileAtomic(target, renderStarterPolicy(answers));
  const schemaFile = path.join(path.dirname(target), 'pledge.schema.json');
  if (!existsSync(schemaFile)) writeFileAtomic(schemaFile, `${JSON.stringify(policyJsonSchema(), null, 2)}\n`);
  const shown = path.relative(io.cwd, target) || target;
  io.out(`wrote ${shown} (and pledge.schema.json for editor autocompletion)\nnext: edit it, then run  pledge policy validate ${shown}  and  pledge serve --policy ${shown}`);
  return EXIT.ok;
}

/** `pledge policy categories [FILE] [--json]`: the taxonomy, plus a policy's own categories. */
export function categoriesCommand(args: string[], io: CommandIO): number {
  const { values, positionals } = parseCommandArgs(args, { json: { type: 'boolean' } });
  if (positionals.length > 1) throw new UsageError('usage: pledge policy categories [FILE] [--json]');
  let categories: CategoryInfo[] = [...BUILT_IN_CATEGORIES.values()];
  const custom = new Set<string>();
  if (positionals[0] !== undefined) {
    const result = loadPolicyFile(path.resolve(io.cwd, positionals[0]));
    if (!result.policy) {
      io.err(formatReport(result.issues));
      return EXIT.invalid;
    }
    categories = [...result.policy.categories.values()];
    for (const category of result.policy.document.categories ?? []) custom.add(category.id);
  }
  categories.sort((a, b) => (a.id < b.id ? -1 : 1));
  if (values.json) {
    io.out(JSON.stringify(categories.map((category) => ({ ...category, custom: custom.has(category.id) })), null, 2));
    return EXIT.ok;
  }
  const width = Math.max(...categories.map((category) => category.id.length));
  io.out(
    categories
      .map((category) => `${category.id.padEnd(width)}  ${category.name}${category.sensitive ? ' (sensitive)' : ''}${custom.has(category.id) ? ' [this policy]' : ''}`)
      .join('\n'),
  );
  return EXIT.ok;
}
