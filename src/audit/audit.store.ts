import { sql, SqliteAdapter, type Kysely, type Selectable, type Transaction } from 'kysely';
import { insertRowsInSqliteTransaction, jsonRowFields, preparedOnPostgres, rowsAsJson, runStatement, type Database, type SqliteConnection } from '../core/db.js';
import type { Tables } from '../core/db.tables.js';
import { ENTRY_FORMAT, entryRowJson, serializeEntry } from './audit.chain.js';
import type { AuditCheckpointsTable, AuditEntriesTable } from './audit.tables.js';
import type { ChainLink } from './audit.types.js';

export type AuditEntryRow = Selectable<AuditEntriesTable>;
export type AuditCheckpointRow = Selectable<AuditCheckpointsTable>;
type Executor = Kysely<Tables> | Transaction<Tables>;

/** What verification needs of an entry: its seq, its hash, and the text the hash is taken over (which ends with prev_hash). */
export interface ChainRow {
  seq: number;
  hash: string;
  serialized: string;
}

// Rows per INSERT statement: 12 columns × 1,000 rows stays below SQLite's 32,766 and
// PostgreSQL's 65,535 bound parameters.
const MISSING_HEAD = 'the audit_head row is missing (was migration 0003-audit applied?)';
const INSERT_CHUNK = 1_000;

const ENTRY_COLUMNS = ['seq', 'id', 'at', 'actor_type', 'actor_id', 'action', 'target_type', 'target_id', 'purpose', 'details', 'prev_hash', 'hash'] as const;

type Statement = ReturnType<SqliteConnection['prepare']>;

/** The statements of one SQLite connection's appends, prepared once. */
const sqliteStatements = new WeakMap<SqliteConnection, { reserve: Statement; insert: Statement; setHead: Statement; checkpoint: Statement }>();

function statementsOf(connection: SqliteConnection) {
  let statements = sqliteStatements.get(connection);
  if (!statements) {
    statements = {
      reserve: connection.prepare('update "audit_head" set "seq" = "seq" + ? where "id" = 1 returning "seq", "hash"'),
      insert: connection.prepare(`insert into "audit_entries" (${ENTRY_COLUMNS.map((column) => `"${column}"`).join(', ')}) values (${ENTRY_COLUMNS.map((column) => `@${column}`).join(', ')})`),
      setHead: connection.prepare('update "audit_head" set "hash" = ? where "id" = 1'),
      checkpoint: connection.prepare('insert into "audit_checkpoints" ("seq", "hash", "signed_at", "key_id", "signature") values (@seq, @hash, @signed_at, @key_id, @signature) on conflict ("seq") do nothing'),
    };
    sqliteStatements.set(connection, statements);
  }
  return statements;
}

const APPEND_COLUMNS = ['id', 'actor_type', 'actor_id', 'action', 'target_type', 'target_id', 'purpose', 'details', 'middle'] as const;

/**
 * An append on PostgreSQL as one statement: lock the head, chain the new entries after it, insert
 * them and move the head — the database computing each hash with its built-in sha256() over
 * the same text serializeEntry() makes. The text is cut around the two fields only the head
 * decides (seq and prev_hash); the rest of each entry's serialisation (`middle`) arrives ready
 * from Node. One statement is one round trip, and outside a transaction its own transaction: a
 * group commit holds the head for that round trip only, instead of four (begin, reserve,
 * insert, commit).
 *
 * Returns the chain it wrote: row n = 0 is the head it followed, rows 1…N the new entries, so
 * the caller can check every hash against its own computation. Prepared once per connection:
 * planning it costs the database more than running it for a few entries.
 *
 * appendCtes() gives its common table expressions (head, chain, linked, entries, moved), also
 * for statements that write something else together with the entries. `entries` and `at` are
 * the parameters appendParameters() fills; nothing is appended, and the head is not even
 * locked, unless `guard` holds. The statement must select the `chain` rows (n, seq, hash).
 */
export function appendCtes(entries: string, at: string, guard = 'true'): string {
  return `head as (select seq, hash from audit_head where id = 1 and (${guard}) for update),
  chain(n, seq, hash) as (
    select 0, head.seq, head.hash from head
    union all
    select c.n + 1, c.seq + 1,
      translate(rtrim(encode(sha256(convert_to('[${JSON.stringify(ENTRY_FORMAT)},' || (c.seq + 1)::text || ',' || (${entries}::jsonb -> c.n ->> ${APPEND_COLUMNS.indexOf('middle')}) || ',"' || c.hash || '"]', 'UTF8')), 'base64'), '='), '+/', '-_')
    from chain c where c.n < jsonb_array_length(${entries}::jsonb)
  ),
  linked as (select n, seq, hash, lag(hash) over (order by n) as prev_hash from chain),
  entries as (
    insert into audit_entries (seq, at, prev_hash, hash, ${APPEND_COLUMNS.slice(0, -1).join(', ')})
    select seq, ${at}, prev_hash, hash, ${jsonRowFields('e', APPEND_COLUMNS.length - 1)}
    from linked cross join lateral (select ${entries}::jsonb -> (linked.n - 1) as e) as entry
    where n > 0
  ),
  moved as (
    update audit_head set seq = last.seq, hash = last.hash
    from (select seq, hash from chain order by n desc limit 1) as last
    where audit_head.id = 1
  )`;
}

const POSTGRES_APPEND_SQL = preparedOnPostgres(`with recursive ${appendCtes('$1', '$2')}
select n, seq, hash from chain order by n`);

/**
 * An append on PostgreSQL of entries Pledge chained itself, after the head its own last append
 * left: the head moves, and the entries are written, only while that is still the head (the
 * update re-checks its condition once it holds the head's row lock). Nothing is hashed in the
 * database, so the statement costs it less than POSTGRES_APPEND_SQL and holds the head for less
 * time; when another writer moved the head, it writes nothing and says so.
 */
const POSTGRES_APPEND_AFTER_SQL = preparedOnPostgres(`with moved as (
    update audit_head set seq = $2, hash = $3 where id = 1 and seq = $4 and hash = $5 returning 1
  ),
  written as (
    insert into audit_entries (${ENTRY_COLUMNS.join(', ')})
    select (e ->> 0)::integer, ${ENTRY_COLUMNS.slice(1)
      .map((_, index) => `e ->> ${index + 1}`)
      .join(', ')}
    from jsonb_array_elements($1::jsonb) as e
    where exists (select 1 from moved)
    returning 1
  )
select count(*)::integer as written from written`);

/** An entry's fields that do not depend on where it lands in the chain, for appendPostgres. */
export type UnchainedEntry = Omit<AuditEntryRow, 'seq' | 'at' | 'prev_hash' | 'hash'> & {
  /** serializeEntry()'s text between seq and prev_hash: `"<id>","<at>",…,"<details>"`. */
  middle: string;
};

/** What an append writes once it knows the head it follows. */
export interface PreparedAppend {
  rows: readonly AuditEntryRow[];
  /** entryMiddle() of each row, as its hash was taken over. */
  middles: readonly string[];
  checkpoints: readonly AuditCheckpointRow[];
  headHash: string;
}

/** The only code that touches the audit tables. */
export const auditStore = {
  /**
   * Reserves `count` seqs by moving the head forward, and returns the previous head. Being an
   * UPDATE, it is the first write of the append: on PostgreSQL it takes the head's row lock
   * (held to commit, so appends from every process queue here); on SQLite it takes the
   * database write lock before anything is read, so the head it returns cannot be stale.
   */
  async reserve(trx: Transaction<Tables>, count: number): Promise<{ seq: number; hash: string }> {
    const row = await trx
      .updateTable('audit_head')
      .set((eb) => ({ seq: eb('seq', '+', count) }))
      .where('id', '=', 1)
      .returning(['seq', 'hash'])
      .executeTakeFirst();
    if (!row) throw new Error(MISSING_HEAD);
    return { seq: row.seq - count, hash: row.hash };
  },

  /**
   * An append on SQLite, synchronous, inside the write transaction Database.sqlite.exclusive
   * holds (the write lock was taken before the head is read): reserve the seqs, write the
   * entries `build` makes after that head, move the head's hash.
   */
  appendSqlite(connection: SqliteConnection, count: number, build: (head: { seq: number; hash: string }) => PreparedAppend): void {
    const statements = statementsOf(connection);
    const row = statements.reserve.get(count) as { seq: number; hash: string } | undefined;
    if (!row) throw new Error(MISSING_HEAD);
    const { rows, checkpoints, headHash } = build({ seq: row.seq - count, hash: row.hash });
    for (const entry of rows) statements.insert.run(entry);
    statements.setHead.run(headHash);
    for (const checkpoint of checkpoints) statements.checkpoint.run(checkpoint);
  },

  /** The values of appendCtes' `entries` and `at` parameters, in that order. */
  appendParameters: (entries: readonly UnchainedEntry[], at: string): [string, string] => [rowsAsJson(entries, APPEND_COLUMNS), at],

  /** See POSTGRES_APPEND_SQL. `executor` is the database (its own transaction) or a transaction. */
  async appendPostgres(executor: Executor, entries: readonly UnchainedEntry[], at: string): Promise<ChainLink[]> {
    const rows = await runStatement<ChainLink>(executor, POSTGRES_APPEND_SQL, auditStore.appendParameters(entries, at));
    if (rows.length === 0) throw new Error(MISSING_HEAD);
    return rows;
  },

  /**
   * See POSTGRES_APPEND_AFTER_SQL: `rows` chained after `after`, on their own (not in a
   * transaction). False when `after` was no longer the head, and then nothing was written.
   */
  async appendAfter(database: Kysely<Tables>, after: { seq: number; hash: string }, { rows, middles, headHash }: PreparedAppend): Promise<boolean> {
    // rowsAsJson(rows, ENTRY_COLUMNS), from the text each entry was hashed over.
    const json = `[${rows.map((row, index) => entryRowJson(row.seq, middles[index]!, row.prev_hash, row.hash)).join(',')}]`;
    const [result] = await runStatement<{ written: number }>(database, POSTGRES_APPEND_AFTER_SQL, [json, after.seq + rows.length, headHash, after.seq, after.hash]);
    return result?.written === rows.length;
  },

  async setHeadHash(trx: Transaction<Tables>, hash: string): Promise<void> {
    await trx.updateTable('audit_head').set({ hash }).where('id', '=', 1).execute();
  },

  async insertEntries(trx: Transaction<Tables>, rows: readonly AuditEntryRow[]): Promise<void> {
    if (insertRowsInSqliteTransaction(trx, 'audit_entries', ENTRY_COLUMNS, rows)) return;
    for (let start = 0; start < rows.length; start += INSERT_CHUNK) {
      await trx.insertInto('audit_entries').values(rows.slice(start, start + INSERT_CHUNK)).execute();
    }
  },

  /**
   * The entries and the head's new hash. On PostgreSQL, one statement (the insert as a
   * data-modifying CTE of the head's update) when the entries fit one: every statement is a
   * round trip, made while the head's row lock holds every other append back.
   */
  async writeEntries(trx: Transaction<Tables>, rows: readonly AuditEntryRow[], headHash: string): Promise<void> {
    if (rows.length > 0 && rows.length <= INSERT_CHUNK && !(trx.getExecutor().adapter instanceof SqliteAdapter)) {
      await trx
        .with('entries', (db) => db.insertInto('audit_entries').values([...rows]))
        .updateTable('audit_head')
        .set({ hash: headHash })
        .where('id', '=', 1)
        .execute();
      return;
    }
    await auditStore.insertEntries(trx, rows);
    await auditStore.setHeadHash(trx, headHash);
  },

  /** Checkpoints are idempotent per seq: two processes signing the same head write one row. */
  async insertCheckpoints(executor: Executor, rows: readonly AuditCheckpointRow[]): Promise<void> {
    if (rows.length === 0) return;
    await executor
      .insertInto('audit_checkpoints')
      .values([...rows])
      .onConflict((conflict) => conflict.column('seq').doNothing())
      .execute();
  },

  async head(executor: Executor): Promise<{ seq: number; hash: string } | undefined> {
    return executor.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirst();
  },

  async latestCheckpoint(executor: Executor): Promise<AuditCheckpointRow | undefined> {
    return executor.selectFrom('audit_checkpoints').selectAll().orderBy('seq', 'desc').limit(1).executeTakeFirst();
  },

  /** The last checkpoint at or before `seq`. */
  async latestCheckpointUpTo(executor: Executor, seq: number): Promise<AuditCheckpointRow | undefined> {
    return executor.selectFrom('audit_checkpoints').selectAll().where('seq', '<=', seq).orderBy('seq', 'desc').limit(1).executeTakeFirst();
  },

  /** The next `limit` entries after `afterSeq`, in chain order: the verifier's read. */
  async entriesAfter(executor: Executor, afterSeq: number, limit: number): Promise<AuditEntryRow[]> {
    return executor.selectFrom('audit_entries').select(ENTRY_COLUMNS).where('seq', '>', afterSeq).orderBy('seq').limit(limit).execute();
  },

  /**
   * The next entries after `afterSeq` as verification reads them. On SQLite the database
   * builds the serialisation itself with json_array(), in the same field order as
   * serializeEntry(): three columns per row instead of twelve is what makes verification fast
   * (better-sqlite3 pays per column; see bench/audit.bench.ts). json_array() is a correct JSON
   * encoder, so a row it serialises to the written text is the written row; where it might
   * format an untampered row differently, the verifier re-checks that row with
   * serializeEntry() before reporting it.
   */
  async chainAfter(database: Database, afterSeq: number, limit: number): Promise<ChainRow[]> {
    if (database.dialect === 'sqlite') {
      return database.db
        .selectFrom('audit_entries')
        .select([
          'seq',
          'hash',
          sql<string>`json_array(${ENTRY_FORMAT}, seq, id, at, actor_type, actor_id, action, target_type, target_id, purpose, details, prev_hash)`.as('serialized'),
        ])
        .where('seq', '>', afterSeq)
        .orderBy('seq')
        .limit(limit)
        .execute();
    }
    const rows = await auditStore.entriesAfter(database.db, afterSeq, limit);
    return rows.map((row) => ({ seq: row.seq, hash: row.hash, serialized: serializeEntry(row) }));
  },

  async entry(executor: Executor, seq: number): Promise<AuditEntryRow | undefined> {
    return executor.selectFrom('audit_entries').select(ENTRY_COLUMNS).where('seq', '=', seq).executeTakeFirst();
  },

  async entryHash(executor: Executor, seq: number): Promise<string | undefined> {
    const row = await executor.selectFrom('audit_entries').select('hash').where('seq', '=', seq).executeTakeFirst();
    return row?.hash;
  },

  async checkpointsBetween(executor: Executor, afterSeq: number, toSeq: number): Promise<AuditCheckpointRow[]> {
    return executor.selectFrom('audit_checkpoints').selectAll().where('seq', '>', afterSeq).where('seq', '<=', toSeq).orderBy('seq').execute();
  },

  async checkpointsAfter(executor: Executor, afterSeq: number, limit: number): Promise<AuditCheckpointRow[]> {
    return executor.selectFrom('audit_checkpoints').selectAll().where('seq', '>', afterSeq).orderBy('seq').limit(limit).execute();
  },

  async list(executor: Executor, query: { fromSeq: number; limit: number; targetId?: string; action?: string }): Promise<AuditEntryRow[]> {
    let select = executor.selectFrom('audit_entries').select(ENTRY_COLUMNS).where('seq', '>=', query.fromSeq);
    if (query.targetId !== undefined) select = select.where('target_id', '=', query.targetId);
    if (query.action !== undefined) select = select.where('action', '=', query.action);
    return select.orderBy('seq').limit(query.limit).execute();
  },
};
