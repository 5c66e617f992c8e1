import type { Kysely, Transaction } from 'kysely';
import type { Tables } from '../core/db.tables.js';
import type { RetentionAggregatesTable, RetentionDatasetPeopleTable, RetentionHoldsTable } from './retention.tables.js';

type Executor = Kysely<Tables> | Transaction<Tables>;

/** The only code that touches the retention_holds, retention_aggregates, retention_leases and retention_dataset_people tables. */
export const retentionStore = {
  insertHold: async (executor: Executor, row: RetentionHoldsTable) => {
    await executor.insertInto('retention_holds').values(row).execute();
  },

  getHold: (executor: Executor, id: string) => executor.selectFrom('retention_holds').selectAll().where('id', '=', id).executeTakeFirst(),

  releaseHold: async (executor: Executor, id: string, releasedBy: string, at: string) => {
    await executor.updateTable('retention_holds').set({ released_at: at, released_by: releasedBy }).where('id', '=', id).where('released_at', 'is', null).execute();
  },

  /** Holds, newest first; with `activeAt`, only those in force at that time. */
  listHolds: (executor: Executor, filter: { subjectId?: string | undefined; activeAt?: string | undefined; limit: number }) =>
    executor
      .selectFrom('retention_holds')
      .selectAll()
      .$if(filter.subjectId !== undefined, (query) => query.where('subject_id', '=', filter.subjectId!))
      .$if(filter.activeAt !== undefined, (query) =>
        query.where('released_at', 'is', null).where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', filter.activeAt!)])),
      )
      .orderBy('placed_at', 'desc')
      .orderBy('id', 'desc')
      .limit(filter.limit)
      .execute(),

  /** Subjects with a hold in force at `at`. */
  heldSubjects: async (executor: Executor, at: string) =>
    (
      await executor
        .selectFrom('retention_holds')
        .select('subject_id')
        .distinct()
        .where('released_at', 'is', null)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', at)]))
        .execute()
    ).map((row) => row.subject_id),

  isHeld: async (executor: Executor, subjectId: string, at: string) =>
    (await executor
      .selectFrom('retention_holds')
      .select('id')
      .where('subject_id', '=', subjectId)
      .where('released_at', 'is', null)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', at)]))
      .limit(1)
      .executeTakeFirst()) !== undefined,

  /** Adds anonymised counts to the running totals. */
  addAggregates: async (executor: Executor, rows: RetentionAggregatesTable[]) => {
    if (rows.length === 0) return;
    await executor
      .insertInto('retention_aggregates')
      .values(rows)
      .onConflict((conflict) => conflict.columns(['category', 'purpose', 'period']).doUpdateSet((eb) => ({ rows: eb('retention_aggregates.rows', '+', eb.ref('excluded.rows')) })))
      .execute();
  },

  aggregates: (executor: Executor) => executor.selectFrom('retention_aggregates').selectAll().orderBy('category').orderBy('purpose').orderBy('period').execute(),

  /** Takes (or renews) the lease for `holder` when free, expired or already its own. */
  acquireLease: async (executor: Executor, name: string, holder: string, now: string, until: string): Promise<boolean> => {
    const result = await executor
      .updateTable('retention_leases')
      .set({ holder, expires_at: until })
      .where('name', '=', name)
      .where((eb) => eb.or([eb('holder', 'is', null), eb('holder', '=', holder), eb('expires_at', '<=', now)]))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  },

  releaseLease: async (executor: Executor, name: string, holder: string) => {
    await executor.updateTable('retention_leases').set({ holder: null, expires_at: null }).where('name', '=', name).where('holder', '=', holder).execute();
  },

  /** What these people's rows in a datastore were last swept for (subject id → row). */
  sweptPeople: async (executor: Executor, datastore: string, subjectIds: readonly string[]): Promise<Map<string, RetentionDatasetPeopleTable>> => {
    if (subjectIds.length === 0) return new Map();
    const rows = await executor.selectFrom('retention_dataset_people').selectAll().where('datastore', '=', datastore).where('subject_id', 'in', subjectIds).execute();
    return new Map(rows.map((row) => [row.subject_id, row]));
  },

  recordSweptPeople: async (executor: Executor, rows: RetentionDatasetPeopleTable[]) => {
    if (rows.length === 0) return;
    await executor
      .insertInto('retention_dataset_people')
      .values(rows)
      .onConflict((conflict) => conflict.columns(['datastore', 'subject_id']).doUpdateSet((eb) => ({ state: eb.ref('excluded.state'), swept_at: eb.ref('excluded.swept_at') })))
      .execute();
  },
};
