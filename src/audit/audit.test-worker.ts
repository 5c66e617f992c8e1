/**
 * A second process for the audit tests: opens the test database given on the command line and
 * appends through its own AuditService — group-committed record() calls and appendWithin
 * transactions, interleaved — so the test can run two of these against one database at once.
 * It prints `ready` once connected and starts when a line arrives on stdin.
 *
 *   node dist/src/audit/audit.test-worker.js <database-url> <master-key-hex> <rounds> <label>
 */
import { pathToFileURL } from 'node:url';
import { manualClock } from '../core/clock.js';
import { openDatabase, type Database } from '../core/db.js';
import { Keyring } from '../core/keyring.js';
import { AuditService } from './audit.service.js';
import type { AuditEvent } from './audit.types.js';

export async function appendWorkload(audit: AuditService, database: Database, rounds: number, label: string): Promise<number> {
  const event = (round: number, index: number): AuditEvent => ({
    actor: { type: 'system', id: label },
    action: 'test.append',
    target: { type: 'subject', id: `sub_${label}_${round}_${index}` },
    details: { round, index, worker: label },
  });
  let written = 0;
  for (let round = 0; round < rounds; round++) {
    await Promise.all([0, 1, 2].map((call) => audit.record([event(round, call * 2), event(round, call * 2 + 1)])));
    await database.db.transaction().execute((trx) => audit.appendWithin(trx, [event(round, 6), event(round, 7)]));
    written += 8;
  }
  return written;
}

async function main(): Promise<void> {
  const [url, masterKeyHex, rounds, label] = process.argv.slice(2);
  if (!url || !masterKeyHex || !rounds || !label) throw new Error('usage: audit.test-worker.js URL MASTER_KEY_HEX ROUNDS LABEL');
  const database = openDatabase(url);
  try {
    const clock = manualClock();
    const keyring = await Keyring.open(database, Buffer.from(masterKeyHex, 'hex'), [], clock);
    const audit = new AuditService(database, keyring, clock, { checkpointEvery: 10, checkpointIntervalMs: 0 });
    // A start barrier: both processes begin appending together, not one after the other's start-up.
    process.stdout.write('ready\n');
    await new Promise((resolve) => process.stdin.once('data', resolve));
    process.stdin.pause();
    const written = await appendWorkload(audit, database, Number(rounds), label);
    await audit.close();
    process.stdout.write(`${JSON.stringify({ written })}\n`);
  } finally {
    await database.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
    process.exitCode = 1;
  });
}
