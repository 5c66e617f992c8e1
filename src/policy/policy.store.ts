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
   * Records the policy the engine runs with, once per distinct content. Safe when several
   * processes start together: the unique hash makes the insert a no-op for all but one.
   */
  async record(policy: Policy, now: Date, onFirstRecord?: (trx: Transaction<Tables>, id: string) => Promise<void>): Promise<PolicyVersionRow> {
    await this.database.db.transaction().execute(async (trx) => {
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
      .executeTakeFirstOrThrow();
    return { id: row.id, version: row.version, hash: row.hash, effectiveDate: row.effective_date, recordedAt: row.recorded_at };
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
}
