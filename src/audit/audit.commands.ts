import { ENGINE_OPTIONS, EXIT, UsageError, engineFlags, parseCommandArgs, processIO, type CommandIO } from '../cli/io.js';
import type { AuditService, AuditVerifyProgress } from './audit.service.js';

const USAGE = 'usage: pledge audit verify [--from SEQ] [--expect SEQ:HASH] [--json] [--progress] [--data-dir DIR] [--database-url URL]';

/**
 * `pledge audit verify [--from SEQ] [--json] [--progress]`: walks the whole chain (or from
 * SEQ on) and checks every hash, link and checkpoint signature. Exit 0 when intact, 1 with
 * the first problem:
 *
 *   audit chain broken at entry 1234: hash_mismatch — entry 1234 does not hash to its stored hash: …
 *
 * Progress (entries/s) goes to stderr once a second when stderr is a terminal, or with --progress.
 *
 * The entries after the last signed checkpoint can be removed together with the head without
 * breaking anything the chain can show; the report names them. `--expect SEQ:HASH` (the head a
 * previous run printed, kept outside the database) fails unless that entry is still there:
 *
 *   pledge audit verify --json > last.json      # keep it where the database's admins cannot write
 *   pledge audit verify --expect "$(jq -r '"\(.head.seq):\(.head.hash)"' last.json)"
 */
export async function auditVerifyCommand(
  args: string[],
  io: CommandIO,
  openEngine: (flags: { dataDir?: string; databaseUrl?: string }) => Promise<{ audit: AuditService; close(): Promise<void> }>,
): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    json: { type: 'boolean' },
    from: { type: 'string' },
    progress: { type: 'boolean' },
    expect: { type: 'string' },
    ...ENGINE_OPTIONS,
  });
  if (positionals.length > 0) throw new UsageError(USAGE);
  let fromSeq: number | undefined;
  if (values.from !== undefined) {
    if (!/^[1-9][0-9]{0,14}$/.test(values.from)) throw new UsageError(`--from must be an entry number (1, 2, …), not "${values.from}"`);
    fromSeq = Number(values.from);
  }
  let expect: { seq: number; hash: string } | undefined;
  if (values.expect !== undefined) {
    const match = /^([1-9][0-9]{0,14}):([A-Za-z0-9_-]{43})$/.exec(values.expect);
    if (!match) throw new UsageError('--expect must be SEQ:HASH, the head an earlier `pledge audit verify --json` reported');
    expect = { seq: Number(match[1]), hash: match[2]! };
  }
  const showProgress = values.progress ?? (io === processIO && process.stderr.isTTY === true && !values.json);

  const engine = await openEngine(engineFlags(values));
  try {
    const started = performance.now();
    let lastPrinted = started;
    const onProgress = showProgress
      ? (progress: AuditVerifyProgress) => {
          const now = performance.now();
          if (now - lastPrinted < 1000) return;
          lastPrinted = now;
          const rate = progress.entries / ((now - started) / 1000);
          const of = progress.headSeq > 0 ? ` of ${progress.headSeq.toLocaleString('en')}` : '';
          io.err(`verified ${progress.seq.toLocaleString('en')}${of} (${Math.round(rate).toLocaleString('en')} entries/s)`);
        }
      : undefined;
    const result = await engine.audit.verify({ ...(fromSeq !== undefined ? { fromSeq } : {}), ...(expect ? { expect } : {}), ...(onProgress ? { onProgress } : {}) });
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0 ? Math.round(result.entries / seconds) : result.entries;

    if (values.json) {
      io.out(JSON.stringify({ ...result, seconds: Number(seconds.toFixed(3)), entriesPerSecond: rate, keyId: engine.audit.keyId }, null, 2));
    } else if (result.ok) {
      io.out(
        `audit chain intact: ${result.entries.toLocaleString('en')} entries${fromSeq ? ` from entry ${fromSeq}` : ''}, ${result.checkpoints.toLocaleString('en')} signed checkpoints (key ${engine.audit.keyId}), verified in ${seconds.toFixed(1)} s (${rate.toLocaleString('en')} entries/s)`,
      );
      const unsigned = result.unsigned;
      if (unsigned) {
        const range = unsigned.fromSeq === unsigned.toSeq ? `entry ${unsigned.fromSeq}` : `entries ${unsigned.fromSeq}–${unsigned.toSeq}`;
        const after = unsigned.lastCheckpointSeq === null ? 'no signed checkpoint yet' : `after the last signed checkpoint (entry ${unsigned.lastCheckpointSeq})`;
        io.out(`not yet signed: ${range}, ${after}; removed together with the head they would go unnoticed. Next time pass --expect ${result.head!.seq}:${result.head!.hash}`);
      }
    } else {
      const problem = result.firstProblem!;
      io.err(`audit chain broken at entry ${problem.seq}: ${problem.problem} — ${problem.message}`);
    }
    return result.ok ? EXIT.ok : EXIT.invalid;
  } finally {
    await engine.close();
  }
}
