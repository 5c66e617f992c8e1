import { hash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { serializeEntry } from '../src/audit/audit.chain.js';
import { AuditService } from '../src/audit/audit.service.js';
import { auditStore } from '../src/audit/audit.store.js';
import type { AuditEvent } from '../src/audit/audit.types.js';
import { systemClock } from '../src/core/clock.js';
import { migrate, openDatabase } from '../src/core/db.js';
import { temporaryDirectory } from '../test/support/databases.js';
import { median, type ResultRow } from './support.js';

const TARGET = 300_000;

function benchEvent(index: number): AuditEvent {
  const read = index % 4 !== 0;
  return {
    actor: index % 7 === 0 ? { type: 'system', id: 'retention' } : { type: 'staff', id: 'stf_01jd3xq8m2v7k9r4t6w8y0z2b4', role: 'support' },
    action: read ? 'data.read' : 'data.write',
    target: { type: 'subject', id: `sub_01jd3xq8m2v7k9r4t6${String(index % 1_000_000).padStart(6, '0')}` },
    purpose: read ? 'order_fulfilment' : 'account',
    details: read ? { categories: ['user.contact.email', 'user.name'], justified: index % 3 === 0 } : { categories: ['user.contact.address'], fields: 2 },
  };
}

async function seconds(fn: () => Promise<unknown> | unknown): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/**
 * `pledge audit verify` throughput: a 300,000-entry chain (a checkpoint every 1,000) on a
 * temporary SQLite file, verified whole three times; the median counts. Ceiling, same run:
 * SHA-256 of the same entries' serialisations, already in memory, in a plain loop — the
 * hashing verify cannot avoid — so the ratio is what reading rows, comparing links and
 * checking signatures add on top.
 */
export async function benchAuditVerify(entries = 300_000): Promise<ResultRow[]> {
  const directory = temporaryDirectory('pledge-bench-audit-');
  const database = openDatabase(`sqlite:${path.join(directory.path, 'audit.db')}`);
  try {
    await migrate(database);
    const seed = randomBytes(32);
    const audit = new AuditService(database, { secret: () => seed }, systemClock, { checkpointIntervalMs: 0 });

    const batch = 10_000;
    const buildSeconds = await seconds(async () => {
      for (let start = 0; start < entries; start += batch) {
        const events = Array.from({ length: Math.min(batch, entries - start) }, (_, i) => benchEvent(start + i));
        await database.db.transaction().execute((trx) => audit.appendWithin(trx, events));
      }
    });

    await audit.verify({ fromSeq: entries - 20_000 }); // warm-up
    const runs: number[] = [];
    for (let i = 0; i < 3; i++) {
      let result: Awaited<ReturnType<AuditService['verify']>> | undefined;
      const elapsed = await seconds(async () => {
        result = await audit.verify();
      });
      if (!result?.ok || result.entries !== entries) throw new Error(`the benchmark chain did not verify: ${JSON.stringify(result)}`);
      runs.push(entries / elapsed);
    }

    // Reading alone (the same batched queries verify makes, no hashing): where the rest goes.
    const readRuns: number[] = [];
    for (let i = 0; i < 3; i++) {
      let count = 0;
      const elapsed = await seconds(async () => {
        for (let after = 0; ; ) {
          const rows = await auditStore.chainAfter(database, after, 5000);
          if (rows.length === 0) break;
          count += rows.length;
          after = rows[rows.length - 1]!.seq;
        }
      });
      readRuns.push(count / elapsed);
    }

    const serialised: string[] = [];
    for (let after = 0; ; ) {
      const rows = await auditStore.entriesAfter(database.db, after, 50_000);
      if (rows.length === 0) break;
      for (const row of rows) serialised.push(serializeEntry(row));
      after = rows[rows.length - 1]!.seq;
    }
    const ceilingRuns: number[] = [];
    for (let i = 0; i < 3; i++) {
      let last = '';
      const elapsed = await seconds(() => {
        for (const text of serialised) last = hash('sha256', text, 'base64url');
      });
      if (!last) throw new Error('nothing hashed');
      ceilingRuns.push(serialised.length / elapsed);
    }
    await audit.close();

    const measured = median(runs);
    const ceiling = median(ceilingRuns);
    const rate = (value: number) => `${Math.round(value).toLocaleString('en')} entries/s`;
    return [
      {
        benchmark: `audit verify, ${entries.toLocaleString('en')} entries + ${entries / 1000} checkpoints on SQLite (median of 3)`,
        measured: rate(measured),
        ceiling: `${rate(ceiling)} (SHA-256 of the serialised entries alone)`,
        ratio: `${((measured / ceiling) * 100).toFixed(0)}% of ceiling`,
        target: `≥ ${TARGET.toLocaleString('en')} entries/s`,
        verdict: measured >= TARGET ? 'pass' : 'FAIL',
      },
      {
        benchmark: 'audit verify: reading the rows alone, same queries, no hashing (median of 3)',
        measured: rate(median(readRuns)),
        ceiling: '—',
        ratio: '—',
        target: '—',
        verdict: 'info',
      },
      {
        benchmark: `audit append through appendWithin, ${batch.toLocaleString('en')} entries per transaction, SQLite`,
        measured: rate(entries / buildSeconds),
        ceiling: '—',
        ratio: '—',
        target: '—',
        verdict: 'info',
      },
    ];
  } finally {
    await database.close();
    directory.remove();
  }
}
