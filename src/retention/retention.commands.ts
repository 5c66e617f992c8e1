import { EXIT, UsageError, parseCommandArgs, processIO, type CommandIO } from '../cli/io.js';
import type { Actor } from '../staff/permissions.js';
import type { LegalHold, RetentionReport, RetentionService, SweepProgress } from './retention.service.js';

const RUN_USAGE = 'usage: pledge retention run [--dry-run] [--json] [--batch 10000]';
const HOLDS_USAGE = 'usage: pledge retention holds add --subject SUB_ID --reason TEXT [--expires ISO-DATE] | release HOLD_ID | list [--subject SUB_ID] [--all] [--json]';
const cli: Actor = { type: 'system', id: 'cli' };

export interface RetentionEngine {
  retention: RetentionService;
  close(): Promise<void>;
}

/** A plain text table: columns padded to their widest cell, numbers right-aligned. */
function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((row) => row.map((cell) => (typeof cell === 'number' ? cell.toLocaleString('en') : cell)));
  const widths = headers.map((header, index) => Math.max(header.length, ...cells.map((row) => row[index]!.length)));
  const numeric = headers.map((_, index) => rows.length > 0 && rows.every((row) => typeof row[index] === 'number'));
  const format = (row: string[]) => row.map((cell, index) => (numeric[index] ? cell.padStart(widths[index]!) : cell.padEnd(widths[index]!))).join('  ').trimEnd();
  return [format(headers), widths.map((width) => '-'.repeat(width)).join('  '), ...cells.map(format)].join('\n');
}

export function formatReport(report: RetentionReport): string {
  const verb = report.dryRun ? 'would be affected' : 'affected';
  const rows = report.outcomes.map((outcome) => [outcome.rule, outcome.target, outcome.category, outcome.action, outcome.rows, outcome.keptByException, outcome.skippedByHold]);
  const heading = report.dryRun ? `Retention dry run at ${report.at} (nothing was changed)` : `Retention sweep at ${report.at}`;
  const totals = `${report.totals.rows.toLocaleString('en')} row(s) ${verb}; ${report.totals.keptByException.toLocaleString('en')} kept by exception; ${report.totals.skippedByHold.toLocaleString('en')} skipped by legal hold`;
  // Notes qualify a line (rows still referred to, a datastore that cannot be reached by
  // person, a category no rule covers, the subject kinds a rule is limited to): listed under the table.
  const notes = report.outcomes.flatMap((outcome) => (outcome.note ? [`${outcome.target} ${outcome.rule}: ${outcome.note}`] : []));
  return [heading, '', table(['rule', 'target', 'category', 'action', `rows ${verb}`, 'kept by exception', 'skipped by hold'], rows), '', ...(notes.length > 0 ? ['Notes:', ...notes.map((note) => `- ${note}`), ''] : []), totals].join('\n');
}

/**
 * `pledge retention run [--dry-run] [--json] [--batch N]`: one sweep now. On a terminal a
 * progress bar runs on stderr; otherwise a plain line per target. The summary table (or JSON)
 * goes to stdout.
 */
export async function retentionRunCommand(args: string[], io: CommandIO, openEngine: () => Promise<RetentionEngine>): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { 'dry-run': { type: 'boolean' }, json: { type: 'boolean' }, batch: { type: 'string' } });
  if (positionals.length > 0) throw new UsageError(RUN_USAGE);
  const batchSize = values.batch === undefined ? undefined : Number(values.batch);
  if (batchSize !== undefined && (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 50_000)) throw new UsageError('--batch must be a whole number from 1 to 50000');
  const tty = io === processIO && process.stderr.isTTY === true && !values.json;

  const engine = await openEngine();
  try {
    let lastTarget = '';
    let lastDrawn = 0;
    const onProgress = (progress: SweepProgress) => {
      if (tty) {
        const now = performance.now();
        if (now - lastDrawn < 100 && progress.done < progress.total) return;
        lastDrawn = now;
        const width = 30;
        const filled = progress.total === 0 ? width : Math.min(width, Math.round((progress.done / progress.total) * width));
        process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${progress.done.toLocaleString('en')}/${progress.total.toLocaleString('en')} rows  ${progress.target.padEnd(30).slice(0, 30)}`);
      } else if (!values.json && progress.target !== lastTarget) {
        lastTarget = progress.target;
        io.err(`sweeping ${progress.target} (${progress.done.toLocaleString('en')}/${progress.total.toLocaleString('en')} rows so far)`);
      }
    };
    const report = await engine.retention.run(cli, { dryRun: values['dry-run'] ?? false, ...(batchSize ? { batchSize } : {}), ...(values['dry-run'] ? {} : { onProgress }) });
    if (tty && !report.dryRun) process.stderr.write('\n');
    io.out(values.json ? JSON.stringify(report, null, 2) : formatReport(report));
    return EXIT.ok;
  } finally {
    await engine.close();
  }
}

function formatHold(hold: LegalHold): string[] {
  return [hold.id, hold.subjectId, hold.active ? 'active' : hold.releasedAt ? 'released' : 'lapsed', hold.placedAt, hold.expiresAt ?? '—', hold.reason];
}

/** `pledge retention holds add|release|list`. */
export async function retentionHoldsCommand(args: string[], io: CommandIO, openEngine: () => Promise<RetentionEngine>): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseCommandArgs(rest, {
    subject: { type: 'string' },
    reason: { type: 'string' },
    expires: { type: 'string' },
    all: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (sub === 'add') {
    if (!values.subject || !values.reason || positionals.length > 0) throw new UsageError(HOLDS_USAGE);
  } else if (sub === 'release') {
    if (positionals.length !== 1) throw new UsageError(HOLDS_USAGE);
  } else if (sub === 'list') {
    if (positionals.length > 0) throw new UsageError(HOLDS_USAGE);
  } else {
    throw new UsageError(HOLDS_USAGE);
  }
  const engine = await openEngine();
  try {
    if (sub === 'add' || sub === 'release') {
      const hold = sub === 'add' ? await engine.retention.placeHold(cli, values.subject!, { reason: values.reason!, expiresAt: values.expires }) : await engine.retention.releaseHold(cli, positionals[0]!);
      io.out(values.json ? JSON.stringify(hold, null, 2) : `${sub === 'add' ? 'placed' : 'released'} legal hold ${hold.id} on ${hold.subjectId}${hold.expiresAt && hold.active ? ` (lapses ${hold.expiresAt})` : ''}`);
      return EXIT.ok;
    }
    const holds = await engine.retention.listHolds({ subjectId: values.subject, all: values.all });
    if (values.json) io.out(JSON.stringify({ holds }, null, 2));
    else if (holds.length === 0) io.out(values.all ? 'no legal holds' : 'no legal holds in force');
    else io.out(table(['hold', 'subject', 'state', 'placed', 'expires', 'reason'], holds.map(formatHold)));
    return EXIT.ok;
  } finally {
    await engine.close();
  }
}
