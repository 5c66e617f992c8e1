import path from 'node:path';
import { EXIT, UsageError, parseCommandArgs, type CommandIO } from '../cli/io.js';
import { isId } from '../core/ids.js';
import type { Engine } from '../engine.js';
import { formatReport } from '../policy/policy.issues.js';
import { loadPolicyFile } from '../policy/policy.load.js';
import { isCalendarDate } from '../policy/policy.service.js';

/**
 * `pledge policy publish FILE [--effective YYYY-MM-DD]`: stores FILE as a new policy version
 * (history kept) and, when the change must be told by email, schedules the notices; the outbox
 * worker of `pledge serve` queues and sends them.
 */
export async function policyPublishCommand(args: string[], io: CommandIO, openEngine: () => Promise<Engine>): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { effective: { type: 'string' } });
  if (positionals.length !== 1) throw new UsageError('usage: pledge policy publish FILE [--effective YYYY-MM-DD]');
  const effective = values.effective;
  if (effective !== undefined && !isCalendarDate(effective)) {
    throw new UsageError(`--effective must be a calendar date written YYYY-MM-DD, not "${effective}"`);
  }
  const loaded = loadPolicyFile(path.resolve(io.cwd, positionals[0]!));
  if (!loaded.policy) {
    io.err(formatReport(loaded.issues));
    io.err('pledge policy publish: the policy is invalid; nothing was published.');
    return EXIT.invalid;
  }
  const engine = await openEngine();
  try {
    const result = await engine.comms.publishPolicy({ type: 'system', id: 'cli' }, loaded.policy, effective ?? loaded.policy.effectiveDate);
    if (!result.created) {
      const otherDate = effective !== undefined && effective !== result.version.effectiveDate;
      io.out(`policy version ${result.version.version} (${result.version.id}) is already published, effective ${result.version.effectiveDate}; nothing changed${otherDate ? ` (a published version keeps its effective date: publish a changed file to set another)` : ''}`);
      return EXIT.ok;
    }
    const material = result.changes.filter((change) => change.material).length;
    io.out(`published policy version ${result.version.version} as ${result.version.id}, effective ${result.version.effectiveDate}`);
    io.out(result.previous ? `${result.changes.length} change(s) since ${result.previous.version}, ${material} material` : 'first published version');
    io.out(result.noticesScheduled ? 'notices to registered people are scheduled; pledge serve sends them' : 'no notice by email is due for this change');
    // A running server keeps the policy it started with (its pages, checks and receipts).
    io.out(`servers enforce the policy file they were started with: restart them with ${positionals[0]} on ${result.version.effectiveDate}`);
    return EXIT.ok;
  } finally {
    await engine.close();
  }
}

/**
 * `pledge outbox retry ID… | --all-failed`: failed messages back in the queue, due now, with
 * their attempts counted from zero (audited); `pledge serve`'s worker sends them. Exit 1 when a
 * named message does not exist or has not failed (the others are requeued all the same).
 */
export async function outboxRetryCommand(args: string[], io: CommandIO, openEngine: () => Promise<Engine>): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { 'all-failed': { type: 'boolean' } });
  const all = values['all-failed'] === true;
  if (all === (positionals.length > 0)) throw new UsageError('usage: pledge outbox retry ID… | --all-failed');
  const malformed = positionals.find((id) => !isId(id, 'msg'));
  if (malformed !== undefined) throw new UsageError(`"${malformed}" is not a message id (msg_…)`);
  const engine = await openEngine();
  try {
    const actor = { type: 'system', id: 'cli' } as const;
    if (all) {
      io.out(`requeued ${await engine.comms.retryAllFailed(actor)} failed message(s); pledge serve sends them`);
      return EXIT.ok;
    }
    const ids = [...new Set(positionals)];
    const requeued = new Set(await engine.comms.retryFailed(actor, ids));
    let skipped = 0;
    for (const id of ids) {
      if (requeued.has(id)) continue;
      skipped += 1;
      const status = await engine.comms.get(id).then((row) => row.status, () => undefined);
      io.err(status === undefined ? `${id}: no outbox message has this id` : `${id}: not retried, it is ${status} (only failed messages are)`);
    }
    io.out(`requeued ${requeued.size} failed message(s); pledge serve sends them`);
    return skipped > 0 ? EXIT.invalid : EXIT.ok;
  } finally {
    await engine.close();
  }
}
