import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { ENGINE_OPTIONS, EXIT, UsageError, engineFlags, parseCommandArgs, processIO, writeFileAtomic, type CommandIO } from '../cli/io.js';
import type { Config } from '../core/config.js';
import { MASTER_KEY_FILE, NEXT_MASTER_KEY_FILE, parseMasterKey } from '../core/crypto.js';
import { KEK_REFRESH_MS } from '../core/keyring.js';
import type { Engine } from '../engine.js';
import type { KeyRotation } from './keystore.js';

/** How many walks over the key store and the outbox a rotation makes before it reports what is left behind. */
const MAX_PASSES = 3;

export interface RotationResult {
  kekId: string;
  /** Keyring secrets re-wrapped (0 when an earlier run already switched them). */
  secrets: number;
  dataKeys: number;
  /** Outbox messages not yet delivered (queued, being sent, failed) whose sealed address and data were re-wrapped. */
  outboxMessages: number;
  /**
   * Data keys and outbox messages still under an old KEK at the end (a process runs without
   * the new master key and keeps wrapping under its own): the old key is needed while it is not 0.
   */
  remaining: number;
  /** Of `remaining`, outbox messages. */
  outboxRemaining: number;
  /**
   * Outbox messages sealed under a master key this process does not hold at all: left as they
   * are, they cannot be sent (the sender fails them, `master_key_missing`) unless that key is
   * added to PLEDGE_PREVIOUS_MASTER_KEYS; dropping the old key changes nothing for them.
   */
  outboxUnreadable: number;
  /**
   * Data keys wrapped by a master key this process does not hold: left as they are, those
   * subjects' data cannot be read until that key is added to PLEDGE_PREVIOUS_MASTER_KEYS and
   * the rotation is run again. Not part of `remaining`.
   */
  dataKeysUnreadable: number;
  /**
   * Data keys that fail their integrity check (the stored row was altered or corrupted): left as
   * they are, those subjects' data cannot be read until the rows are restored from a backup —
   * which needs the old master key, so keep it. Not part of `remaining`.
   */
  dataKeysDamaged: number;
  /** The first subjects (up to 10 each) of the two above, for the operator to look into. */
  unopenedSubjects: { unreadable: string[]; damaged: string[] };
}

/**
 * Re-wraps everything under PLEDGE_MASTER_KEY's KEK while other processes keep serving:
 * 1. the keyring's secrets first — that is the switch: every process holding the new KEK
 *    starts wrapping new data keys and sealing new mail under it within KEK_REFRESH_MS (see
 *    Keyring);
 * 2. after waiting for them to notice, every data key still under another KEK, then the sealed
 *    address and data of every outbox message not yet delivered (comms.rotation);
 * 3. walks again while keys or messages under an old KEK keep appearing (made just before the
 *    switch), and reports what is left: what a process without the new key keeps making.
 * `onProgress` counts data keys and messages together.
 */
export async function rotateMasterKey(
  engine: Pick<Engine, 'keyring' | 'keystore' | 'database' | 'comms'>,
  options: { batch: number; settleMs?: number; onProgress?: (rotated: number) => void },
): Promise<RotationResult> {
  const settleMs = options.settleMs ?? 2 * KEK_REFRESH_MS;
  const secrets = await engine.keyring.rewrapSecrets(engine.database);
  if (secrets > 0) await sleep(settleMs);
  let dataKeys = 0;
  let outboxMessages = 0;
  let remaining = 0;
  let outbox = { remaining: 0, unreadable: 0 };
  // The keys the last walk could not open: each walk tries them again (a key may have been
  // added to a process since, or the subject erased).
  let unopened: KeyRotation = { rotated: 0, unreadable: [], damaged: [] };
  for (let pass = 1; pass <= MAX_PASSES; pass++) {
    const before = dataKeys + outboxMessages;
    unopened = await engine.keystore.rotateAll(options.batch, (rotated) => options.onProgress?.(before + rotated));
    dataKeys += unopened.rotated;
    const between = dataKeys + outboxMessages;
    outboxMessages += await engine.comms.rewrapSealed(options.batch, (rewrapped) => options.onProgress?.(between + rewrapped));
    outbox = await engine.comms.countSealedToRewrap();
    const keysLeft = (await engine.keystore.countToRotate()) - unopened.unreadable.length - unopened.damaged.length;
    remaining = Math.max(0, keysLeft) + outbox.remaining;
    if (remaining === 0 || pass === MAX_PASSES) break;
    await sleep(settleMs);
  }
  return {
    kekId: engine.keyring.kekId,
    secrets,
    dataKeys,
    outboxMessages,
    remaining,
    outboxRemaining: outbox.remaining,
    outboxUnreadable: outbox.unreadable,
    dataKeysUnreadable: unopened.unreadable.length,
    dataKeysDamaged: unopened.damaged.length,
    unopenedSubjects: { unreadable: unopened.unreadable.slice(0, 10), damaged: unopened.damaged.slice(0, 10) },
  };
}

/**
 * `pledge keys rotate [--batch 1000]`: after PLEDGE_MASTER_KEY was replaced (the old key moved
 * to PLEDGE_PREVIOUS_MASTER_KEYS) on every process, re-wraps every subject's data key, the
 * keyring's secrets and the sealed address and data of mail not yet delivered under the new
 * master key. Field ciphertexts are not touched. Each batch commits on its own, so an
 * interrupted rotation resumes where it stopped when run again.
 *
 * In development (no PLEDGE_MASTER_KEY: the key is the data directory's master.key) it makes
 * the new key itself: written to master.key.next before anything is re-wrapped (a run
 * interrupted later resumes with it), renamed over master.key once everything is. A server
 * running meanwhile picks both files up.
 */
export async function keysRotateCommand(
  args: string[],
  io: CommandIO,
  openEngine: (flags: { dataDir?: string; databaseUrl?: string }, adjust: (config: Config) => Config) => Promise<Engine>,
): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { batch: { type: 'string' }, json: { type: 'boolean' }, ...ENGINE_OPTIONS });
  if (positionals.length > 0) throw new UsageError('usage: pledge keys rotate [--batch 1000] [--json] [--data-dir DIR] [--database-url URL]');
  const batch = values.batch === undefined ? 1000 : Number(values.batch);
  if (!Number.isInteger(batch) || batch < 1 || batch > 100_000) throw new UsageError('--batch must be a whole number from 1 to 100000');

  let keyFiles: { current: string; next: string } | undefined;
  const engine = await openEngine(engineFlags(values), (config) => {
    const files = developmentKeyFiles(config);
    if (!files) return config;
    keyFiles = files;
    if (!existsSync(files.next)) writeFileAtomic(files.next, `${randomBytes(32).toString('hex')}\n`, 0o600);
    const current = readFileSync(files.current, 'utf8');
    const next = readFileSync(files.next, 'utf8');
    parseMasterKey(next, files.next);
    return { ...config, masterKey: next.trim(), previousMasterKeys: [current.trim(), ...config.previousMasterKeys] };
  });
  try {
    const started = performance.now();
    const total = (await engine.keystore.countToRotate()) + (await engine.comms.countSealedToRewrap()).remaining;
    const showProgress = io === processIO && process.stderr.isTTY === true && !values.json;
    const result = await rotateMasterKey(engine, {
      batch,
      onProgress: (rotated) => {
        if (!showProgress) return;
        const width = 30;
        const filled = Math.min(width, total === 0 ? width : Math.round((rotated / total) * width));
        process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${rotated}/${total} data keys and messages`);
      },
    });
    if (showProgress) process.stderr.write('\n');
    const { unopenedSubjects, ...counts } = result;
    await engine.audit.record([
      { actor: { type: 'system', id: 'cli' }, action: 'keys.rotated', details: { ...counts } },
    ]);
    // Only now is the old key file safe to replace: nothing needs the old key any more (a
    // damaged key restored from a backup would need it again).
    const complete = result.remaining === 0 && result.dataKeysUnreadable === 0 && result.dataKeysDamaged === 0;
    if (keyFiles && complete) renameSync(keyFiles.next, keyFiles.current);
    const seconds = (performance.now() - started) / 1000;
    if (values.json) io.out(JSON.stringify({ ...result, seconds }));
    else io.out(`re-wrapped ${result.dataKeys} data key(s), ${result.outboxMessages} outbox message(s) and ${result.secrets} keyring secret(s) under key ${result.kekId} in ${seconds.toFixed(1)} s`);
    if (result.outboxUnreadable > 0) {
      io.err(
        `${result.outboxUnreadable} outbox message(s) are sealed under a master key that is neither PLEDGE_MASTER_KEY nor one of PLEDGE_PREVIOUS_MASTER_KEYS and were left as they are: they cannot be sent (they fail with master_key_missing). If that key still exists, add it to PLEDGE_PREVIOUS_MASTER_KEYS, run pledge keys rotate again, then pledge outbox retry --all-failed.`,
      );
    }
    const subjects = (ids: readonly string[], count: number) => `${ids.join(', ')}${count > ids.length ? ', …' : ''}`;
    if (result.dataKeysUnreadable > 0) {
      io.err(
        `${result.dataKeysUnreadable} data key(s) are wrapped by a master key that is neither PLEDGE_MASTER_KEY nor one of PLEDGE_PREVIOUS_MASTER_KEYS and were left as they are: those subjects' data cannot be read (${subjects(unopenedSubjects.unreadable, result.dataKeysUnreadable)}). If that key still exists, add it to PLEDGE_PREVIOUS_MASTER_KEYS and run pledge keys rotate again.`,
      );
    }
    if (result.dataKeysDamaged > 0) {
      io.err(
        `${result.dataKeysDamaged} data key(s) fail their integrity check (the stored row was altered or corrupted) and were left as they are: those subjects' data cannot be read until their subject_keys rows are restored from a backup (${subjects(unopenedSubjects.damaged, result.dataKeysDamaged)}). Keep the old master key: a restored row needs it. pledge audit verify tells whether the change was recorded.`,
      );
    }
    if (result.remaining > 0) {
      io.err(
        `${result.remaining - result.outboxRemaining} data key(s) and ${result.outboxRemaining} outbox message(s) are still under another master key: a process sharing the database runs without the new one and keeps wrapping under its own. Restart every process with the new PLEDGE_MASTER_KEY and the old one in PLEDGE_PREVIOUS_MASTER_KEYS, then run pledge keys rotate again. Keep the old key until it reports none left: until then, dropping it loses those people's data and that mail.`,
      );
      return EXIT.invalid;
    }
    if (!complete) return EXIT.invalid;
    if (keyFiles) io.out(`the new master key is in ${keyFiles.current}`);
    else if (!values.json) io.out('every process may now be restarted without PLEDGE_PREVIOUS_MASTER_KEYS');
    // Nothing waits on the old key any more, but mail that no key held here opens will never be
    // sent unless someone adds its key: that is for the operator to act on, as the warning says.
    return result.outboxUnreadable > 0 ? EXIT.invalid : EXIT.ok;
  } finally {
    await engine.close();
  }
}

/** The key files a development rotation replaces, or undefined when the key comes from PLEDGE_MASTER_KEY. */
function developmentKeyFiles(config: Config): { current: string; next: string } | undefined {
  if (config.masterKey !== undefined || config.environment === 'production') return undefined;
  const current = path.join(config.dataDir, MASTER_KEY_FILE);
  if (!existsSync(current)) throw new UsageError(`there is no master key to rotate: neither PLEDGE_MASTER_KEY nor ${current} is set`);
  return { current, next: path.join(config.dataDir, NEXT_MASTER_KEY_FILE) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
