import { sql } from 'kysely';
import { manualClock } from '../src/core/clock.js';
import { RetentionService } from '../src/retention/retention.service.js';
import type { Actor } from '../src/staff/permissions.js';
import { createTestVault } from '../test/support/vault.js';
import type { TestDialect } from '../test/support/databases.js';
import { targetRow, type ResultRow } from './support.js';

const actor: Actor = { type: 'system', id: 'bench' };
const CATEGORIES = ['user.device.ip_address', 'user.device.cookie_id', 'user.device.browser', 'user.behavior.browsing_history'];

/**
 * A retention sweep over `total` expired vault fields (four browsing categories per visitor,
 * collected in 2020, rule browsing_logs: 90 days) beside as many fresh ones that must stay.
 * The rows are generated inside the database (recursive CTE / generate_series) so that
 * seeding a million takes seconds; the values are opaque strings of a ciphertext's length,
 * which the sweep never opens. Peak RSS is sampled every 20 ms during the sweep: batching
 * keeps it flat whatever the number of rows.
 */
export async function benchRetentionSweep(dialect: TestDialect, total = 1_000_000): Promise<ResultRow[]> {
  const now = '2026-03-01T12:00:00.000Z';
  const vault = await createTestVault(dialect, { clock: manualClock(now) });
  try {
    const subjects = Math.ceil(total / CATEGORIES.length);
    const fresh = Math.ceil(subjects / 10);
    const db = vault.database.db;
    const old = '2020-01-01T00:00:00.000Z';
    const series =
      dialect === 'sqlite'
        ? (count: number) => sql`with recursive n(i) as (select 0 union all select i + 1 from n where i < ${count - 1}) select i from n`
        : (count: number) => sql`select generate_series(0, ${count - 1}) as i`;
    const pad = dialect === 'sqlite' ? sql`printf('%026d', i)` : sql`lpad(i::text, 26, '0')`;
    const value = dialect === 'sqlite' ? sql`hex(randomblob(48))` : sql`md5(i::text) || md5((i + 1)::text) || md5((i + 2)::text)`;
    const seedStarted = performance.now();
    for (const [prefix, count, stamp] of [['sub_', subjects, old], ['sub_f', fresh, now]] as const) {
      await sql`insert into subjects (id, kinds, status, restricted, created_at, updated_at, last_activity_at, closed_at, erased_at)
        select ${prefix} || ${pad}, '["visitor"]', 'active', 0, ${stamp}, ${stamp}, ${stamp}, null, null from (${series(count)}) as n`.execute(db);
      for (const category of CATEGORIES) {
        await sql`insert into subject_fields (subject_id, category, value, source, partner, purpose, collected_at, updated_at)
          select ${prefix} || ${pad}, ${category}, ${value}, 'automatic', null, 'analytics', ${stamp}, ${stamp} from (${series(count)}) as n`.execute(db);
      }
    }
    if (dialect === 'postgres') await sql`analyze`.execute(db);
    const seedSeconds = (performance.now() - seedStarted) / 1000;

    const retention = new RetentionService({ database: vault.database, subjects: vault.subjects, audit: vault.audit, policy: vault.policy, clock: vault.clock });
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let peak = rssBefore;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    const started = performance.now();
    const report = await retention.run(actor);
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);

    const expected = subjects * CATEGORIES.length;
    if (report.totals.rows !== expected) throw new Error(`swept ${report.totals.rows} rows, expected ${expected}`);
    const left = Number((await db.selectFrom('subject_fields').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    if (left !== fresh * CATEGORIES.length) throw new Error(`${left} fields left, expected ${fresh * CATEGORIES.length}`);
    const name = dialect === 'sqlite' ? 'SQLite' : 'PostgreSQL';
    const mb = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(0)} MB`;
    // The target is for a million rows; a smaller run is scaled to it (linear: batches of equal cost).
    const scaled = (seconds * 1_000_000) / expected;
    return [
      targetRow(
        `retention sweep deleting ${expected.toLocaleString('en')} expired vault fields (${(fresh * CATEGORIES.length).toLocaleString('en')} fresh kept; batches of 10,000, audited; ${name}; seeded in ${seedSeconds.toFixed(0)} s)`,
        `${seconds.toFixed(1)} s (${Math.round(expected / seconds).toLocaleString('en')} rows/s)${expected === 1_000_000 ? '' : `; ${scaled.toFixed(1)} s per million`}`,
        '≤ 20 s per 1,000,000',
        scaled <= 20,
      ),
      { benchmark: `retention sweep, resident memory (${name}, ${expected.toLocaleString('en')} rows)`, measured: `peak ${mb(peak)}, ${mb(peak - rssBefore)} above the start of the sweep`, ceiling: '—', ratio: '—', target: 'flat (batched)', verdict: 'info' },
    ];
  } finally {
    await vault.close();
  }
}
