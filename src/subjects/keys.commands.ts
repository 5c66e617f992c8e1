import { EXIT, UsageError, parseCommandArgs, processIO, type CommandIO } from '../cli/io.js';
import type { Engine } from '../engine.js';

/**
 * `pledge keys rotate [--batch 1000]`: after PLEDGE_MASTER_KEY was replaced (the old key moved
 * to PLEDGE_PREVIOUS_MASTER_KEYS), re-wraps every subject's data key and the keyring's secrets
 * under the new master key. Field ciphertexts are not touched. Each batch commits on its own,
 * so an interrupted rotation resumes where it stopped when run again.
 */
export async function keysRotateCommand(args: string[], io: CommandIO, openEngine: () => Promise<Engine>): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { batch: { type: 'string' }, json: { type: 'boolean' } });
  if (positionals.length > 0) throw new UsageError('usage: pledge keys rotate [--batch 1000] [--json]');
  const batch = values.batch === undefined ? 1000 : Number(values.batch);
  if (!Number.isInteger(batch) || batch < 1 || batch > 100_000) throw new UsageError('--batch must be a whole number from 1 to 100000');

  const engine = await openEngine();
  try {
    const started = performance.now();
    const secrets = await engine.keyring.rewrapSecrets(engine.database);
    const total = await engine.keystore.countToRotate();
    const showProgress = io === processIO && process.stderr.isTTY === true && !values.json;
    const done = await engine.keystore.rotateAll(batch, (rotated) => {
      if (!showProgress) return;
      const width = 30;
      const filled = total === 0 ? width : Math.round((rotated / total) * width);
      process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${rotated}/${total} data keys`);
    });
    if (showProgress) process.stderr.write('\n');
    await engine.audit.record([
      { actor: { type: 'system', id: 'cli' }, action: 'keys.rotated', details: { kekId: engine.keyring.kekId, dataKeys: done, secrets } },
    ]);
    const seconds = (performance.now() - started) / 1000;
    if (values.json) io.out(JSON.stringify({ kekId: engine.keyring.kekId, dataKeys: done, secrets, seconds }));
    else io.out(`re-wrapped ${done} data key(s) and ${secrets} keyring secret(s) under key ${engine.keyring.kekId} in ${seconds.toFixed(1)} s; PLEDGE_PREVIOUS_MASTER_KEYS can now be removed`);
    return EXIT.ok;
  } finally {
    await engine.close();
  }
}
