import { CompiledQuery, sql, SqliteAdapter, type Kysely, type QueryCreator, type Transaction } from 'kysely';
import { compiledFirst, compiledOnce, insertRowsInSqliteTransaction, jsonRowFields, preparedOnPostgres, rowsAsJson, runStatement } from '../core/db.js';
import type { ChainLink, StatementAppend } from '../audit/audit.types.js';
import type { Tables } from '../core/db.tables.js';
import type { ConsentEventsTable, ConsentReceiptsTable, ConsentSignalsTable, ConsentStateTable, ConsentTargetKind } from './consent.tables.js';

type Executor = Kysely<Tables> | Transaction<Tables>;

const stateByKey = compiledFirst((db: Kysely<Tables>, holder: string, kind: ConsentTargetKind, target: string) =>
  db
    .selectFrom('consent_state')
    .select(['action', 'decided_at'])
    .where('holder', '=', holder)
    .where('target_kind', '=', kind)
    .where('target', '=', target),
);

/** A purpose's decision and a recipient's, in one read: may data go to this recipient for this purpose? */
const purposeAndRecipient = compiledOnce((db: Kysely<Tables>, holder: string, purpose: string, recipient: string) =>
  db
    .selectFrom('consent_state')
    .select(['target_kind', 'action', 'source', 'decided_at', 'event_id', 'policy_version'])
    .where('holder', '=', holder)
    .where((eb) =>
      eb.or([
        eb.and([eb('target_kind', '=', 'purpose'), eb('target', '=', purpose)]),
        eb.and([eb('target_kind', '=', 'recipient'), eb('target', '=', recipient)]),
      ]),
    ),
);

/**
 * One row per target, the latest decision (one statement may not update a row twice), in key
 * order: two transactions moving overlapping rows lock them in the same order, so they queue
 * instead of deadlocking.
 */
function latestStates(rows: readonly ConsentStateTable[]): ConsentStateTable[] {
  const latest = new Map<string, ConsentStateTable>();
  for (const row of rows) {
    const key = `${row.holder}\u0000${row.target_kind}\u0000${row.target}`;
    const earlier = latest.get(key);
    if (!earlier || earlier.decided_at <= row.decided_at) latest.set(key, row);
  }
  return [...latest.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, row]) => row);
}

const EVENT_COLUMNS = ['id', 'holder', 'target_kind', 'target', 'action', 'source', 'policy_version', 'country', 'ua_family', 'banner_version', 'merged_from', 'decided_at', 'receipt_id', 'recorded_at'] as const;
const RECEIPT_COLUMNS = ['id', 'holder', 'issued_at', 'body'] as const;
const STATE_COLUMNS = ['holder', 'target_kind', 'target', 'action', 'source', 'policy_version', 'event_id', 'decided_at'] as const;

/**
 * A group's writes on PostgreSQL, each table's rows read from one jsonb parameter (rowsAsJson:
 * one statement text whatever the batch size — a VALUES list of a thousand parameters costs
 * PostgreSQL more to parse and plan than to write): the events from $first, the receipts from
 * the next, the projection's upsert from the one after. `where` filters every row.
 */
function decisionWrites(first: number, where = 'true'): { events: string; receipts: string; states: string } {
  const rowsOf = (parameter: number, columns: readonly string[]) => `select ${jsonRowFields('r', columns.length)} from jsonb_array_elements($${parameter}::jsonb) as r where ${where}`;
  return {
    events: `insert into consent_events (${EVENT_COLUMNS.join(', ')}) ${rowsOf(first, EVENT_COLUMNS)}`,
    receipts: `insert into consent_receipts (${RECEIPT_COLUMNS.join(', ')}) ${rowsOf(first + 1, RECEIPT_COLUMNS)}`,
    states: `insert into consent_state (${STATE_COLUMNS.join(', ')}) ${rowsOf(first + 2, STATE_COLUMNS)}
    ${LATER_DECISION_WINS}`,
  };
}

/** The projection's upsert clause: a row moves to a decision only if it is not earlier than the one there. */
const LATER_DECISION_WINS = `on conflict (holder, target_kind, target) do update set ${STATE_COLUMNS.filter((column) => column !== 'holder' && column !== 'target_kind' && column !== 'target')
  .map((column) => `${column} = excluded.${column}`)
  .join(', ')}
    where consent_state.decided_at <= excluded.decided_at`;

/** The values of decisionWrites' three parameters, in order. */
function decisionParameters(events: readonly ConsentEventsTable[], receipts: readonly ConsentReceiptsTable[], states: readonly ConsentStateTable[]): string[] {
  return [rowsAsJson(events, EVENT_COLUMNS), rowsAsJson(receipts, RECEIPT_COLUMNS), rowsAsJson(latestStates(states), STATE_COLUMNS)];
}

/** A group commit's decisions on PostgreSQL in one statement: the inserts as data-modifying CTEs of the upsert. */
const POSTGRES_DECISIONS_SQL = preparedOnPostgres(
  (() => {
    const writes = decisionWrites(1);
    return `with events as (${writes.events}), receipts as (${writes.receipts})
${writes.states}`;
  })(),
);

/**
 * POSTGRES_DECISIONS_SQL and the audit append of the same group as one statement, committed
 * on its own (see AuditService.statementAppend), guarded by the holders' existence: when a
 * holder of $6 is unknown or erased, nothing is written and the statement answers the refused
 * holders with their status (null: unknown) instead of the chain.
 */
function decisionsWithAuditSql(append: StatementAppend, holderStatuses: (ids: string) => string): string {
  const guard = 'not exists (select 1 from refused)';
  // Nothing of the group is written unless its audit entries are (the chain starts at the head).
  const writes = decisionWrites(3, `${guard} and exists (select 1 from chain)`);
  return `with recursive
  statuses as (${holderStatuses('$6::text[]')}),
  refused as (
    select h as holder, (select status from statuses where statuses.id = h) as status
    from unnest($6::text[]) as h
    where not exists (select 1 from statuses where statuses.id = h and statuses.status <> 'erased')
  ),
  ${append.ctes(guard)},
  events as (${writes.events}),
  receipts as (${writes.receipts}),
  states as (${writes.states})
select n, seq, hash, null as holder, null as status from chain
union all
select null, null, null, holder, status from refused`;
}
/** decisionsWithAuditSql's text, built on first use (the audit's CTEs are the same text for every append). */
const decisionsWithAuditTexts = new WeakMap<(ids: string) => string, string>();

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
  stateOf: (executor: Executor, holder: string, kind: ConsentTargetKind, target: string) => stateByKey(executor, holder, kind, target),

  /** The decisions on a purpose and on a recipient (by primary key, in one statement). */
  async purposeAndRecipientStates(executor: Executor, holder: string, purpose: string, recipient: string) {
    const rows = await purposeAndRecipient(executor, holder, purpose, recipient);
    return { purpose: rows.find((row) => row.target_kind === 'purpose'), recipient: rows.find((row) => row.target_kind === 'recipient') };
  },

  statesOf: (executor: Executor, holder: string) => executor.selectFrom('consent_state').selectAll().where('holder', '=', holder).execute(),

  eventsOf: (executor: Executor, holder: string, limit: number) =>
    executor.selectFrom('consent_events').selectAll().where('holder', '=', holder).orderBy('id').limit(limit).execute(),

  /**
   * A group commit's events, the projection moved to them, and their receipts. On PostgreSQL,
   * one statement (POSTGRES_DECISIONS_SQL): each statement is a round trip inside the
   * transaction that holds the next group back.
   */
  async writeDecisions(executor: Executor, events: ConsentEventsTable[], states: readonly ConsentStateTable[], receipts: readonly ConsentReceiptsTable[]): Promise<void> {
    if (!(executor.getExecutor().adapter instanceof SqliteAdapter)) {
      await executor.executeQuery(CompiledQuery.raw(POSTGRES_DECISIONS_SQL, decisionParameters(events, receipts, states)));
      return;
    }
    await consentStore.insertEvents(executor, events);
    await consentStore.upsertStates(executor, states);
    await consentStore.insertReceipts(executor, receipts);
  },

  /**
   * PostgreSQL: a group commit as one statement run on its own (decisionsWithAuditSql), the
   * audit entries riding in it. `holders` are the subjects that must exist and not be erased;
   * `holderStatuses` selects (id, status) of the subjects whose id is in the text[] it is given.
   * Returns the audit chain for `append.settle`, or the refused holders (then nothing was written).
   */
  async writeDecisionsWithAudit(
    db: Kysely<Tables>,
    append: StatementAppend,
    holderStatuses: (ids: string) => string,
    decisions: { events: ConsentEventsTable[]; states: readonly ConsentStateTable[]; receipts: readonly ConsentReceiptsTable[]; holders: readonly string[] },
  ): Promise<{ chain: ChainLink[]; refused: Map<string, string | null> }> {
    let text = decisionsWithAuditTexts.get(holderStatuses);
    if (!text) {
      text = preparedOnPostgres(decisionsWithAuditSql(append, holderStatuses));
      decisionsWithAuditTexts.set(holderStatuses, text);
    }
    const parameters = [...append.parameters, ...decisionParameters(decisions.events, decisions.receipts, decisions.states), decisions.holders];
    const rows = await runStatement<ChainLink & { holder: string | null; status: string | null }>(db, text, parameters);
    const chain: ChainLink[] = [];
    const refused = new Map<string, string | null>();
    for (const row of rows) {
      if (row.holder !== null) refused.set(row.holder, row.status);
      else chain.push({ n: row.n, seq: row.seq, hash: row.hash });
    }
    chain.sort((a, b) => a.n - b.n);
    return { chain, refused };
  },

  // In a SQLite transaction, the inserts below run as prepared single-row statements
  // (insertRowsInSqliteTransaction); elsewhere as Kysely's multi-row inserts.
  async insertEvents(executor: Executor, rows: ConsentEventsTable[]): Promise<void> {
    if (insertRowsInSqliteTransaction(executor, 'consent_events', EVENT_COLUMNS, rows)) return;
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
    if (insertRowsInSqliteTransaction(executor, 'consent_state', STATE_COLUMNS, unique, LATER_DECISION_WINS)) return;
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
    if (insertRowsInSqliteTransaction(executor, 'consent_receipts', RECEIPT_COLUMNS, rows)) return;
    for (let start = 0; start < rows.length; start += 500) await executor.insertInto('consent_receipts').values(rows.slice(start, start + 500)).execute();
  },

  /** The subject a visitor id was identified as, if it was. */
  visitorSubject: async (executor: Executor, visitor: string) =>
    (await executor.selectFrom('consent_visitors').select('subject_id').where('visitor', '=', visitor).executeTakeFirst())?.subject_id,

  /**
   * Ties a visitor id to a subject unless it is tied already; returns the subject it is tied to
   * (another one when an identification into another subject came first).
   */
  async identifyVisitor(trx: Transaction<Tables>, row: { visitor: string; subject_id: string; identified_at: string }): Promise<string> {
    await trx.insertInto('consent_visitors').values(row).onConflict((conflict) => conflict.column('visitor').doNothing()).execute();
    return (await consentStore.visitorSubject(trx, row.visitor))!;
  },

  getReceipt: (executor: Executor, id: string) => executor.selectFrom('consent_receipts').selectAll().where('id', '=', id).executeTakeFirst(),
};
