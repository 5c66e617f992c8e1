import type { Transaction } from 'kysely';
import type { Tables } from '../core/db.tables.js';
import type { Database } from '../core/db.js';
import { newId } from '../core/ids.js';
import { canonicalJson, type Policy } from './policy.model.js';

export interface PolicyVersionRow {
  id: string;
  version: string;
  hash: string;
  effectiveDate: string;
  recordedAt: string;
}

/** The only code that touches the policy_versions table. */
export class PolicyStore {
  constructor(private readonly database: Database) {}

  /**
   * Records `policy` as the first version when none is recorded yet, and returns the stored
   * version with its content (undefined when it was never published). Only the first start
   * records a version this way: every later one is published (pledge policy publish), so that
   * a change always goes through its diff and its notices, and a command run with another
   * file cannot put that file on record. Safe when several processes start together: the
   * unique hash makes the insert a no-op for all but one.
   */
  async recordFirst(policy: Policy, now: Date, onFirstRecord?: (trx: Transaction<Tables>, id: string) => Promise<void>): Promise<PolicyVersionRow | undefined> {
    await this.database.db.transaction().execute(async (trx) => {
      if (await trx.selectFrom('policy_versions').select('id').limit(1).executeTakeFirst()) return;
      const inserted = await trx
      .insertInto('policy_versions')
      .values({
        id: newId('pol', now.getTime()),
        version: policy.version,
        hash: policy.hash,
        effective_date: policy.effectiveDate,
        document: canonicalJson(policy.document),
        recorded_at: now.toISOString(),
      })
      .onConflict((conflict) => conflict.column('hash').doNothing())
      .returning('id')
      .executeTakeFirst();
      if (inserted && onFirstRecord) await onFirstRecord(trx, inserted.id);
    });
    const row = await this.database.db
      .selectFrom('policy_versions')
      .select(['id', 'version', 'hash', 'effective_date', 'recorded_at'])
      .where('hash', '=', policy.hash)
      .executeTakeFirst();
    return row ? versionRow(row) : undefined;
  }

  async list(): Promise<PolicyVersionRow[]> {
    const rows = await this.database.db
      .selectFrom('policy_versions')
      .select(['id', 'version', 'hash', 'effective_date', 'recorded_at'])
      .orderBy('recorded_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
    return rows.map((row) => ({ id: row.id, version: row.version, hash: row.hash, effectiveDate: row.effective_date, recordedAt: row.recorded_at }));
  }

  // --- publication

  /**
   * Stores a published version with its effective date, unless the same document is stored
   * already (then returns that one, `created: false`). `within` runs in the same transaction
   * with the version stored just before it, so what a publication starts (the notice run)
   * commits with it or not at all.
   */
  async publish(
    policy: Policy,
    effectiveDate: string,
    now: Date,
    within: (trx: Transaction<Tables>, row: PolicyVersionRow, previous: PolicyVersionDocument | undefined) => Promise<void>,
  ): Promise<{ row: PolicyVersionRow; created: boolean }> {
    return this.database.db.transaction().execute(async (trx) => {
      const existing = await trx.selectFrom('policy_versions').select(['id', 'version', 'hash', 'effective_date', 'recorded_at']).where('hash', '=', policy.hash).executeTakeFirst();
      if (existing) return { row: versionRow(existing), created: false };
      const previous = await trx.selectFrom('policy_versions').selectAll().orderBy('recorded_at', 'desc').orderBy('id', 'desc').limit(1).executeTakeFirst();
      const row = { id: newId('pol', now.getTime()), version: policy.version, hash: policy.hash, effective_date: effectiveDate, document: canonicalJson(policy.document), recorded_at: now.toISOString() };
      await trx.insertInto('policy_versions').values(row).execute();
      await within(trx, versionRow(row), previous ? { ...versionRow(previous), document: previous.document } : undefined);
      return { row: versionRow(row), created: true };
    });
  }

  async get(id: string): Promise<PolicyVersionDocument | undefined> {
    const row = await this.database.db.selectFrom('policy_versions').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? { ...versionRow(row), document: row.document } : undefined;
  }

  /** The version in force on `day` (YYYY-MM-DD): the latest whose effective date has come. */
  async activeOn(day: string): Promise<PolicyVersionRow | undefined> {
    const row = await this.database.db
      .selectFrom('policy_versions')
      .select(['id', 'version', 'hash', 'effective_date', 'recorded_at'])
      .where('effective_date', '<=', day)
      .orderBy('effective_date', 'desc')
      .orderBy('recorded_at', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? versionRow(row) : undefined;
  }
}

export interface PolicyVersionDocument extends PolicyVersionRow {
  /** Canonical JSON of the validated document. */
  document: string;
}

function versionRow(row: { id: string; version: string; hash: string; effective_date: string; recorded_at: string }): PolicyVersionRow {
  return { id: row.id, version: row.version, hash: row.hash, effectiveDate: row.effective_date, recordedAt: row.recorded_at };
}
