import type { Kysely, Transaction } from 'kysely';
import type { Tables } from '../core/db.tables.js';
import type { ConsentEventsTable, ConsentReceiptsTable, ConsentSignalsTable, ConsentStateTable, ConsentTargetKind } from './consent.tables.js';

type Executor = Kysely<Tables> | Transaction<Tables>;

/** The only code that touches the consent_* tables. */
export const consentStore = {
  /** One decision, by primary key: the question every purpose-checked read asks. */
  stateOf: (executor: Executor, holder: string, kind: ConsentTargetKind, target: string) =>
    executor
      .selectFrom('consent_state')
      .select(['action', 'source', 'decided_at', 'event_id', 'policy_version'])
      .where('holder', '=', holder)
      .where('target_kind', '=', kind)
      .where('target', '=', target)
      .executeTakeFirst(),

  statesOf: (executor: Executor, holder: string) => executor.selectFrom('consent_state').selectAll().where('holder', '=', holder).execute(),

  eventsOf: (executor: Executor, holder: string, limit: number) =>
    executor.selectFrom('consent_events').selectAll().where('holder', '=', holder).orderBy('id').limit(limit).execute(),

  async insertEvents(executor: Executor, rows: ConsentEventsTable[]): Promise<void> {
    // 14 columns a row: well under every database's parameter limit at 200 rows.
    for (let start = 0; start < rows.length; start += 200) await executor.insertInto('consent_events').values(rows.slice(start, start + 200)).execute();
  },

  /**
   * Moves the projection to this decision unless a later one is already there: two requests
   * racing (or a merge bringing older choices) cannot put an earlier decision back on top.
   */
  async upsertState(executor: Executor, row: ConsentStateTable): Promise<void> {
    await executor
      .insertInto('consent_state')
      .values(row)
      .onConflict((conflict) =>
        conflict.columns(['holder', 'target_kind', 'target']).doUpdateSet({
          action: row.action,
          source: row.source,
          policy_version: row.policy_version,
          event_id: row.event_id,
          decided_at: row.decided_at,
        }).where('consent_state.decided_at', '<=', row.decided_at),
      )
      .execute();
  },

  signalsOf: (executor: Executor, holder: string, signal: ConsentSignalsTable['signal']) =>
    executor.selectFrom('consent_signals').select(['purpose']).where('holder', '=', holder).where('signal', '=', signal).execute(),

  allSignalsOf: (executor: Executor, holder: string) => executor.selectFrom('consent_signals').selectAll().where('holder', '=', holder).execute(),

  /** Records an applied signal; false when another request applied it first. */
  async insertSignal(executor: Executor, row: ConsentSignalsTable): Promise<boolean> {
    const result = await executor.insertInto('consent_signals').values(row).onConflict((conflict) => conflict.doNothing()).executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
  },

  async insertReceipt(executor: Executor, row: ConsentReceiptsTable): Promise<void> {
    await executor.insertInto('consent_receipts').values(row).execute();
  },

  getReceipt: (executor: Executor, id: string) => executor.selectFrom('consent_receipts').selectAll().where('id', '=', id).executeTakeFirst(),
};
