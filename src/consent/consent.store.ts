import { sql, SqliteAdapter, type Kysely, type QueryCreator, type Transaction } from 'kysely';
import { compiledOnce } from '../core/db.js';
import type { Tables } from '../core/db.tables.js';
import type { ConsentEventsTable, ConsentReceiptsTable, ConsentSignalsTable, ConsentStateTable, ConsentTargetKind } from './consent.tables.js';

type Executor = Kysely<Tables> | Transaction<Tables>;

const stateByKey = compiledOnce((db: Kysely<Tables>, holder: string, kind: ConsentTargetKind, target: string) =>
  db
    .selectFrom('consent_state')
    .select(['action', 'source', 'decided_at', 'event_id', 'policy_version'])
    .where('holder', '=', holder)
    .where('target_kind', '=', kind)
    .where('target', '=', target),
);

/** One row per target, the latest decision: one statement may not update a row twice. */
function latestStates(rows: readonly ConsentStateTable[]): ConsentStateTable[] {
  const latest = new Map<string, ConsentStateTable>();
  for (const row of rows) {
    const key = `${row.holder}\u0000${row.target_kind}\u0000${row.target}`;
    const earlier = latest.get(key);
    if (!earlier || earlier.decided_at <= row.decided_at) latest.set(key, row);
  }
  return [...latest.values()];
}

/** The projection's upsert, which never puts an earlier decision over a later one. */
function upsertLatest(creator: QueryCreator<Tables>, rows: ConsentStateTable[]) {
  return creator
    .insertInto('consent_state')
    .values(rows)
    .onConflict((conflict) =>
      conflict
        .columns(['holder', 'target_kind', 'target'])
        .doUpdateSet((eb) => ({
          action: eb.ref('excluded.action'),
          source: eb.ref('excluded.source'),
          policy_version: eb.ref('excluded.policy_version'),
          event_id: eb.ref('excluded.event_id'),
          decided_at: eb.ref('excluded.decided_at'),
        }))
        .where(sql<boolean>`consent_state.decided_at <= excluded.decided_at`),
    );
}

/** The only code that touches the consent_* tables. */
export const consentStore = {
  /** One decision, by primary key: the question every purpose-checked read asks. */
  stateOf: async (executor: Executor, holder: string, kind: ConsentTargetKind, target: string) => (await stateByKey(executor, holder, kind, target))[0],

  statesOf: (executor: Executor, holder: string) => executor.selectFrom('consent_state').selectAll().where('holder', '=', holder).execute(),

  eventsOf: (executor: Executor, holder: string, limit: number) =>
    executor.selectFrom('consent_events').selectAll().where('holder', '=', holder).orderBy('id').limit(limit).execute(),

  /**
   * A group commit's events, the projection moved to them, and their receipts. On PostgreSQL,
   * one statement when they fit its parameter limit (the inserts as data-modifying CTEs of the
   * projection's upsert): each statement is a round trip inside the transaction that holds the
   * next group back.
   */
  async writeDecisions(executor: Executor, events: ConsentEventsTable[], states: readonly ConsentStateTable[], receipts: readonly ConsentReceiptsTable[]): Promise<void> {
    const parameters = events.length * 14 + states.length * 8 + receipts.length * 4;
    if (events.length > 0 && receipts.length > 0 && parameters < 30_000 && !(executor.getExecutor().adapter instanceof SqliteAdapter)) {
      const withInserts = executor
        .with('events', (db) => db.insertInto('consent_events').values(events))
        .with('receipts', (db) => db.insertInto('consent_receipts').values([...receipts]));
      // The CTEs add names the upsert does not use; its tables are the same.
      await upsertLatest(withInserts as unknown as QueryCreator<Tables>, latestStates(states)).execute();
      return;
    }
    await consentStore.insertEvents(executor, events);
    await consentStore.upsertStates(executor, states);
    await consentStore.insertReceipts(executor, receipts);
  },

  async insertEvents(executor: Executor, rows: ConsentEventsTable[]): Promise<void> {
    // 14 columns a row: well under every database's parameter limit at 200 rows.
    for (let start = 0; start < rows.length; start += 200) await executor.insertInto('consent_events').values(rows.slice(start, start + 200)).execute();
  },

  /**
   * Moves the projection to these decisions, unless a later one is already there: two requests
   * racing (or a merge bringing older choices) cannot put an earlier decision back on top. Rows
   * for the same target are first reduced to the latest, as one statement may not update a row
   * twice.
   */
  async upsertStates(executor: Executor, rows: readonly ConsentStateTable[]): Promise<void> {
    const unique = latestStates(rows);
    for (let start = 0; start < unique.length; start += 400) await upsertLatest(executor, unique.slice(start, start + 400)).execute();
  },

  signalsOf: (executor: Executor, holder: string, signal: ConsentSignalsTable['signal']) =>
    executor.selectFrom('consent_signals').select(['purpose']).where('holder', '=', holder).where('signal', '=', signal).execute(),

  allSignalsOf: (executor: Executor, holder: string) => executor.selectFrom('consent_signals').selectAll().where('holder', '=', holder).execute(),

  /** Records an applied signal; false when another request applied it first. */
  async insertSignal(executor: Executor, row: ConsentSignalsTable): Promise<boolean> {
    const result = await executor.insertInto('consent_signals').values(row).onConflict((conflict) => conflict.doNothing()).executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
  },

  async insertReceipts(executor: Executor, rows: readonly ConsentReceiptsTable[]): Promise<void> {
    for (let start = 0; start < rows.length; start += 500) await executor.insertInto('consent_receipts').values(rows.slice(start, start + 500)).execute();
  },

  getReceipt: (executor: Executor, id: string) => executor.selectFrom('consent_receipts').selectAll().where('id', '=', id).executeTakeFirst(),
};
