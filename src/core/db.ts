import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { CompiledQuery, Kysely, Migrator, PostgresDialect, sql, type Compilable, type Migration, type MigrationProvider, type Transaction } from 'kysely';
import { PledgeError } from './errors.js';
import { ChangeListener, WHERE_SQL, type Where } from './pg-changes.js';
import type { Tables } from './db.tables.js';
import { MIGRATIONS } from './migrations/index.js';
import { JOURNAL_SIZE_LIMIT, startCheckpointer, type Checkpointer } from './sqlite-checkpointer.js';
import { inWriteTransaction, WRITE_LOCK_WAIT_MS, WriteWaitingSqliteDialect } from './sqlite-writes.js';
import { loadSqlite } from './sqlite.js';

/**
 * The engine's own database: an embedded SQLite file by default, PostgreSQL when the
 * configured URL says so. Both are reached through Kysely, so stores write one query.
 *
 *   const database = openDatabase('sqlite:/var/lib/pledge/pledge.db');
 *   await migrate(database);
 *   await database.db.selectFrom('policy_versions').selectAll().execute();
 */
export type DialectName = 'sqlite' | 'postgres';

export interface Database<T = Tables> {
  readonly db: Kysely<T>;
  readonly dialect: DialectName;
  /**
   * SQLite only: runs `work` synchronously on the connection Kysely uses, once no Kysely query
   * or transaction holds it, inside a write transaction (taken as beginWrite does, committed
   * when `work` returns, rolled back when it throws). For a multi-statement write on the
   * hottest path (the audit's group commit), where Kysely's per-statement round trips through
   * its queue cost more than SQLite.
   */
  readonly sqlite?: { exclusive<R>(work: (connection: SqliteConnection) => R): Promise<R> };
  /**
   * PostgreSQL only: the changes NOTIFYed on `channel` as they commit, on a connection of its
   * own, with the fence that tells when every change committed before a request is known
   * (ChangeListener). Closed with the database.
   */
  readonly changes?: (channel: string, onChange: (payload: string) => void, onReset: () => void) => ChangeListener;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** PostgreSQL: where ChangeListeners connect (a session, never a transaction-mode pooler); false: no listening, every read goes to the database. Default: `url`. */
  listenUrl?: string | false | undefined;
}

export function openDatabase<T = Tables>(url: string, options: DatabaseOptions = {}): Database<T> {
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length);
    if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const SQLite = loadSqlite();
    const connection = new SQLite(file);
    // WAL lets readers proceed during a write; busy_timeout waits instead of failing when
    // another process (a second CLI, a backup) holds the lock for a moment.
    // Larger pages make shallower B-trees for the long text keys (ids, blind indexes) we store;
    // it only takes effect when the file is created.
    connection.pragma('page_size = 8192');
    connection.pragma('journal_mode = WAL');
    connection.pragma('synchronous = NORMAL');
    connection.pragma('foreign_keys = ON');
    connection.pragma(`busy_timeout = ${WRITE_LOCK_WAIT_MS}`);
    // A 64 MB page cache (allocated only as it fills) keeps the hot index pages of a growing
    // database in memory; the 2 MB default makes bulk writes re-read pages from disk.
    connection.pragma('cache_size = -65536');
    connection.pragma('temp_store = MEMORY');
    connection.pragma('wal_autocheckpoint = 10000');
    connection.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
    // A process that keeps running (a server) moves the log back into the file from a thread
    // of its own; a command that ends within a second never starts one.
    let checkpointer: Checkpointer | undefined;
    const startsCheckpointer = file === ':memory:' ? undefined : setTimeout(() => {
      // The thread keeps the log short; the commit's own checkpoint only catches up if it stops.
      connection.pragma('wal_autocheckpoint = 40000');
      checkpointer = startCheckpointer(file, CHECKPOINT_INTERVAL_MS, () => {
        if (connection.open) connection.pragma('wal_autocheckpoint = 10000');
      });
    }, 1_000);
    startsCheckpointer?.unref();
    const cached = withStatementCache(connection);
    const db = new Kysely<T>({ dialect: new WriteWaitingSqliteDialect({ database: cached }, connection) });
    // An in-memory database is private to its connection: there the reads share it too.
    const reader = file === ':memory:' ? undefined : sqliteReader(file);
    if (reader) readers.set(db, reader);
    writeConnections.set(db.getExecutor().adapter, cached);
    return {
      db,
      dialect: 'sqlite',
      sqlite: {
        exclusive: (work) => db.connection().execute(() => inWriteTransaction(connection, work)),
      },
      close: async () => {
        clearTimeout(startsCheckpointer);
        await checkpointer?.stop();
        reader?.close();
        await db.destroy();
      },
    };
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    // pg is loaded on first use: SQLite installs never pay for it at start.
    let created: Promise<import('pg').Pool> | undefined;
    const pool = () => {
      created ??= import('pg').then(({ default: pg }) => {
        const instance = new pg.Pool({ connectionString: url, max: 10, Client: preparingClient(pg.Client) });
        // An idle client losing its connection must not crash the process; the next query reconnects.
        instance.on('error', () => {});
        return instance;
      });
      return created;
    };
    const db = new Kysely<T>({ dialect: new PostgresDialect({ pool }) });
    readers.set(db, postgresReader(pool));
    pools.set(db, pool);
    const listeners: ChangeListener[] = [];
    const tablesAt = async (): Promise<Where> => (await (await pool()).query<Where>(WHERE_SQL)).rows[0]!;
    const connectListener = async () => {
      const { default: pg } = await import('pg');
      // Named, so operators can tell it in pg_stat_activity (it idles between fences, listening).
      // Kept alive by TCP too: it may idle for long between fences.
      const client = new pg.Client({ connectionString: options.listenUrl || url, application_name: LISTENER_APPLICATION_NAME, keepAlive: true });
      await client.connect();
      return client;
    };
    return {
      db,
      dialect: 'postgres',
      ...(options.listenUrl === false ? {} : { changes: (channel: string, onChange: (payload: string) => void, onReset: () => void) => {
        const listener = new ChangeListener(connectListener, tablesAt, channel, onChange, onReset);
        listeners.push(listener);
        return listener;
      } }),
      close: async () => {
        await Promise.all(listeners.map((listener) => listener.close()));
        await db.destroy();
      },
    };
  }
  throw new PledgeError('config_invalid', 'the database URL must start with sqlite: or postgres://');
}

/** The application_name of the connections that LISTEN for changes (ChangeListener). */
export const LISTENER_APPLICATION_NAME = 'pledge-changes';

/** How often the checkpointer thread moves the write-ahead log back into the SQLite file. */
const CHECKPOINT_INTERVAL_MS = 500;

/**
 * Where the hottest single-statement reads run (see compiledOnce), beside Kysely rather than
 * through it: Kysely queues every query of a SQLite file behind the one connection it holds —
 * including behind a transaction waiting on something else — and its pipeline costs more than
 * SQLite's own work for a primary-key read.
 */
interface Reader {
  /** The rows of `sql`, or with `first` only the first row (undefined when there is none). */
  all(sql: string, parameters: readonly unknown[], first: boolean): Promise<unknown>;
  close(): void;
}

const readers = new WeakMap<object, Reader>();

/**
 * A second, read-only connection to the same SQLite file. Under WAL a reader never waits for
 * the writer and sees only committed data, so it cannot observe a transaction of the main
 * connection half-done. Opened on first use: most CLI commands never read this way.
 *
 * Reads asked while the event loop handles one round of I/O (the requests of many connections)
 * run together, in one read transaction, once that round is over. Each transaction of its own
 * would take and drop a lock on the shared-memory index with two system calls, which cost more
 * than the primary-key read itself; together they share one. The transaction starts after every
 * read of the round was asked, so each sees every write committed before it was asked, as a
 * read of its own would: nothing is cached.
 */
function sqliteReader(file: string): Reader {
  let connection: CachedConnection | undefined;
  let pending: PendingRead[] = [];
  let scheduled = false;

  const open = (): CachedConnection => {
    if (!connection) {
      const opened = new (loadSqlite())(file, { readonly: true });
      opened.pragma('busy_timeout = 5000');
      opened.pragma('cache_size = -16384');
      connection = withStatementCache(opened);
    }
    return connection;
  };
  const flush = (): void => {
    scheduled = false;
    const reads = pending;
    pending = [];
    // A read alone needs no transaction around it: its statement is one.
    const together = reads.length > 1 ? open().connection : undefined;
    try {
      together?.exec('BEGIN');
    } catch (error) {
      for (const read of reads) read.reject(error);
      return;
    }
    try {
      // Reads of the same row in one round (a subject many requests read at once) share one
      // look-up: in one read transaction, each would have seen the same rows.
      for (const [statement, groups] of groupBy(reads, (read) => read.statement)) {
        for (const askers of sameLookups(groups)) {
          try {
            shareRows(askers, (statement.all as (...values: unknown[]) => Array<Record<string, unknown>>).apply(statement, askers[0]!.parameters as unknown[]));
          } catch (error) {
            for (const read of askers) read.reject(error);
          }
        }
      }
    } finally {
      // Ending a read-only transaction cannot lose anything; it only lets the log be reset.
      if (together?.inTransaction) together.exec('COMMIT');
    }
  };

  return {
    all(text: string, parameters: readonly unknown[], first: boolean): Promise<unknown> {
      return new Promise<unknown>((resolve, reject) => {
        pending.push({ statement: open().prepare(text), parameters, first, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    },
    close() {
      // Reads already asked are answered, not dropped.
      if (scheduled) flush();
      connection?.close();
      connection = undefined;
    },
  };
}

/** A lookup waiting for its turn's read transaction, with its statement prepared. */
interface PendingRead extends PendingLookup {
  statement: SqliteStatement;
}

/** The SQLite connection behind each Kysely instance's adapter (which its transactions share), with Kysely's statement cache. */
const writeConnections = new WeakMap<object, CachedConnection>();

/**
 * Inserts `rows` into `table` inside the SQLite transaction `trx`: one prepared single-row
 * statement, run per row on the transaction's own connection. A group commit's multi-row
 * inserts through Kysely were built and compiled anew for every group (their text changes with
 * the number of rows), which cost more than SQLite's writing them. `conflict` follows the
 * VALUES list (an upsert's ON CONFLICT clause). False, with nothing written, when `trx` is not
 * a SQLite transaction: the caller writes through Kysely.
 */
export function insertRowsInSqliteTransaction<R>(trx: Kysely<Tables> | Transaction<Tables>, table: string, columns: ReadonlyArray<keyof R & string>, rows: readonly R[], conflict = ''): boolean {
  const cached = trx.isTransaction ? writeConnections.get(trx.getExecutor().adapter) : undefined;
  if (!cached) return false;
  // The transaction holds the connection: nothing else runs on it until it ends.
  if (!cached.connection.inTransaction) throw new PledgeError('internal', 'a SQLite insert ran outside its transaction');
  const statement = cached.prepare(`insert into "${table}" (${columns.map((column) => `"${column}"`).join(', ')}) values (${columns.map(() => '?').join(', ')}) ${conflict}`);
  const run = statement.run as (...values: unknown[]) => unknown;
  for (const row of rows) run.apply(statement, columns.map((column) => row[column]));
  return true;
}

/**
 * Reads on the shared pool as named statements (each connection parses the text once), and
 * lookups that arrive together answered together: every call of the same statement made while
 * the event loop handles one round of I/O — the requests of many connections — is sent as one
 * query, so fifty concurrent requests cost a few round trips instead of fifty, and callers asking
 * for the same row share one look-up. While a batch of a statement is on its way, callers of that
 * statement gather for the next one, sent a turn of the event loop after it lands: each query
 * costs the event loop about as much to send (the socket write wakes the database) as a request
 * costs to answer, so fewer, fuller batches leave more of it for requests. A batch is sent after
 * its callers asked, so it sees every write committed before them: nothing is cached.
 */
function postgresReader(pool: () => Promise<import('pg').Pool>): Reader {
  const run = async <R>(text: string, values: unknown[]): Promise<R[]> => (await (await pool()).query({ name: statementName(text), text, values })).rows as R[];
  // A batch comes back as arrays (pg builds no object per row); each caller's rows are built once, without the ordinal.
  const runBatch = async (text: string, values: unknown[]) => (await pool()).query<unknown[]>({ name: statementName(text), text, values, rowMode: 'array' });
  const runAlone = (text: string, call: PendingLookup): void => void run<Record<string, unknown>>(text, call.parameters as unknown[]).then((rows) => shareRows([call], rows), call.reject);
  const pending = new Map<string, PendingLookup[]>();
  // Statements whose batched form PostgreSQL refused (a column that is not text): run alone.
  const alone = new Set<string>();
  let scheduled = false;
  // Batches of each statement on their way: while one is, later callers gather for the next.
  const inFlight = new Set<string>();
  const schedule = (): void => {
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
  const landed = (text: string): void => {
    inFlight.delete(text);
    // The next batch leaves a turn of the event loop later, not at once: the answers this batch
    // brought go out now, and what their clients ask next, arriving meanwhile, joins the
    // callers already waiting. Sent at once, the batch would carry only those, and under load
    // the requests split into two halves taking turns (a third more queries for a consent
    // decision on PostgreSQL, which cost the process more than the turn: bench/RESULTS.md).
    if (pending.has(text)) setImmediate(schedule);
  };

  const flush = (): void => {
    scheduled = false;
    const groups = [...pending].filter(([text]) => !inFlight.has(text));
    for (const [text] of groups) pending.delete(text);
    for (const [text, calls] of groups) {
      inFlight.add(text);
      // Callers asking the same thing share one look-up (a hot subject read by many requests
      // at once): the batch carries each distinct set of values once.
      const askers = sameLookups(calls);
      const rejectAll = (error: unknown): void => {
        for (const call of calls) call.reject(error);
      };
      const answer = (index: number, rows: Array<Record<string, unknown>>): void => shareRows(askers[index]!, rows);
      if (askers.length === 1) {
        run<Record<string, unknown>>(text, askers[0]![0]!.parameters as unknown[])
          .then((rows) => answer(0, rows), rejectAll)
          .finally(() => landed(text));
        continue;
      }
      const arity = calls[0]!.parameters.length;
      const columns = Array.from({ length: arity }, (_, index) => textArrayLiteral(askers.map((same) => same[0]!.parameters[index] as string)));
      runBatch(batchedLookupSql(text, arity), columns).then(
        ({ rows, fields }) => {
          const byAsker: Array<Record<string, unknown>[]> = askers.map(() => []);
          // The ordinal is the first column; the row is built from the others, in order.
          const names = fields.map((field) => field.name);
          for (const values of rows) {
            const row: Record<string, unknown> = {};
            for (let column = 1; column < names.length; column++) row[names[column]!] = values[column];
            byAsker[Number(values[0]) - 1]!.push(row);
          }
          for (let index = 0; index < askers.length; index++) answer(index, byAsker[index]!);
        },
        (error: unknown) => {
          const code = (error as { code?: string }).code;
          if (code !== '42883' && code !== '42804') return rejectAll(error);
          alone.add(text);
          for (const call of calls) runAlone(text, call);
        },
      ).finally(() => landed(text));
    }
  };

  return {
    all(text: string, parameters: readonly unknown[], first: boolean): Promise<unknown> {
      // Only text parameters go into a batch: they travel as text[] columns, compared as text.
      if (parameters.length === 0 || alone.has(text) || !allText(parameters)) return run(text, parameters as unknown[]).then((rows) => (first ? rows[0] : rows));
      return new Promise<unknown>((resolve, reject) => {
        const calls = pending.get(text);
        const call: PendingLookup = { parameters, first, resolve, reject };
        if (calls) calls.push(call);
        else pending.set(text, [call]);
        if (!inFlight.has(text)) schedule();
      });
    },
    close() {},
  };
}

/** The pool behind each PostgreSQL root instance (not its transactions), for runStatement. */
const pools = new WeakMap<object, () => Promise<import('pg').Pool>>();

/**
 * Runs a statement text marked preparedOnPostgres with its values and returns its rows. On a
 * PostgreSQL root instance, outside any transaction, it goes to the pool as a named statement
 * directly: Kysely's connection provider and result handling cost a group commit's statement
 * more in Node than binding it. In a transaction, or on SQLite, it runs through Kysely.
 */
export async function runStatement<R>(executor: Kysely<Tables> | Transaction<Tables>, text: string, values: readonly unknown[]): Promise<R[]> {
  const pool = pools.get(executor);
  if (pool) return (await (await pool()).query({ name: statementName(text), text, values: values as unknown[] })).rows as R[];
  return (await executor.executeQuery<R>(CompiledQuery.raw(text, [...values]))).rows;
}

/**
 * Statement texts run as named prepared statements on PostgreSQL, whoever runs them (Kysely,
 * inside a transaction or not): each connection parses and plans such a text once, instead of
 * on every execution. For fixed texts on hot paths only — planning the audit append costs the
 * database more than running it for a handful of entries.
 */
const preparedTexts = new Set<string>();

/** Marks `text` as one to prepare once per PostgreSQL connection (see preparedTexts); returns it. */
export function preparedOnPostgres(text: string): string {
  preparedTexts.add(text);
  return text;
}

const statementNames = new Map<string, string>();
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (!name) {
    name = `pledge_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return name;
}

/**
 * The pg client class the pool makes connections with: a query of a prepared text (as Kysely
 * sends it, text and values) goes out named.
 */
function preparingClient(Client: typeof import('pg').Client): typeof import('pg').Client {
  return class PreparingClient extends Client {
    // pg's query() has many overloads; only the (text, values) form Kysely uses is rewritten.
    override query(...args: unknown[]): never {
      const [text, values] = args;
      const query = super.query as (...rest: unknown[]) => never;
      if (args.length === 2 && typeof text === 'string' && Array.isArray(values) && preparedTexts.has(text)) {
        return query.call(this, { name: statementName(text), text, values });
      }
      return query.apply(this, args);
    }
  };
}

interface PendingLookup {
  parameters: readonly unknown[];
  /** The caller wants the first row only (or undefined), not the list. */
  first: boolean;
  resolve: (answer: unknown) => void;
  reject: (error: unknown) => void;
}

function allText(values: readonly unknown[]): boolean {
  for (let index = 0; index < values.length; index++) if (typeof values[index] !== 'string') return false;
  return true;
}

/**
 * Lookups of one statement grouped by their values, in the order first asked: each group is
 * answered by one look-up. Values are compared as text, so only lookups whose values are all
 * strings are grouped (the PostgreSQL reader batches nothing else); any other stays alone.
 * Grouped by the first value, then compared value by value: no key text is built per lookup
 * (building and hashing one was the largest cost of grouping a batch).
 */
function sameLookups<L extends PendingLookup>(calls: readonly L[]): L[][] {
  const groups: L[][] = [];
  const byFirstValue = new Map<string, L[][]>();
  for (const call of calls) {
    const values = call.parameters;
    if (values.length === 0 || !allText(values)) {
      groups.push([call]);
      continue;
    }
    const candidates = byFirstValue.get(values[0] as string);
    const same = candidates?.find((group) => sameAfterFirst(group[0]!.parameters, values));
    if (same) same.push(call);
    else {
      const group = [call];
      groups.push(group);
      if (candidates) candidates.push(group);
      else byFirstValue.set(values[0] as string, [group]);
    }
  }
  return groups;
}

/** Two lookups' values, already known to share the first, are the same from the second on. */
function sameAfterFirst(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let index = 1; index < a.length; index++) if (a[index] !== b[index]) return false;
  return true;
}

/** `items` by key, each group in the order its items came, the groups in the order first seen. */
function groupBy<T, K>(items: readonly T[], keyOf: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const same = groups.get(key);
    if (same) same.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

/**
 * One look-up's rows to every caller that asked it (the list, or the first row for those that
 * want only it): each gets rows of its own, so one changing its copy does not change another's.
 */
function shareRows(askers: readonly PendingLookup[], rows: Array<Record<string, unknown>>): void {
  const taker = askers[0]!;
  taker.resolve(taker.first ? rows[0] : rows);
  for (let index = 1; index < askers.length; index++) {
    const other = askers[index]!;
    other.resolve(other.first ? rows[0] && copyRow(rows[0]) : rows.map(copyRow));
  }
}

const copyRow = (row: Record<string, unknown>): Record<string, unknown> => ({ ...row });

const BATCH_ORDINAL = 'pledge_batch_ordinal';
const batchedTexts = new Map<string, string>();

/**
 * The statement `text` (placeholders $1…$n) run once per row of the parameter arrays:
 *
 *   select k.ordinality::int4 as pledge_batch_ordinal, q.*
 *   from unnest($1::text[], $2::text[]) with ordinality as k(p1, p2, ordinality)
 *   cross join lateral (<text with $1 → k.p1, $2 → k.p2>) as q
 *
 * Each caller's rows come back tagged with its position; within a caller they keep the order
 * the statement gives them.
 */
export function batchedLookupSql(text: string, arity: number): string {
  const key = `${arity}\u0000${text}`;
  let batched = batchedTexts.get(key);
  if (!batched) {
    const slots = Array.from({ length: arity }, (_, index) => `p${index + 1}`);
    const arrays = slots.map((_, index) => `$${index + 1}::text[]`).join(', ');
    const inner = text.replace(/\$(\d+)/g, (_, number: string) => `k.p${number}`);
    batched = `select k.ordinality::int4 as ${BATCH_ORDINAL}, q.* from unnest(${arrays}) with ordinality as k(${slots.join(', ')}, ordinality) cross join lateral (${inner}) as q`;
    batchedTexts.set(key, batched);
  }
  return batched;
}

const HAS_QUOTE_OR_BACKSLASH = /["\\]/;
const QUOTE_OR_BACKSLASH = /["\\]/g;

/**
 * A text[] parameter as PostgreSQL's array literal, `{"a","b"}`, which pg passes on as it is.
 * pg would build the same text from a JavaScript array, escaping every element with two
 * regular-expression replacements; the values of look-ups (ids, codes) almost never hold a
 * quote or a backslash, so each is tested once (a third of a replacement's cost) and escaped
 * only then. Every element is quoted: an unquoted NULL, empty string or space would mean
 * something else.
 */
export function textArrayLiteral(values: readonly string[]): string {
  let literal = '{';
  for (let index = 0; index < values.length; index++) {
    const value = values[index]!;
    literal += `${index === 0 ? '' : ','}"${HAS_QUOTE_OR_BACKSLASH.test(value) ? value.replace(QUOTE_OR_BACKSLASH, '\\$&') : value}"`;
  }
  return `${literal}}`;
}

/**
 * Rows as one JSON text — an array per row, `columns` in order — for PostgreSQL statements that
 * take a whole batch as one jsonb parameter and read it back with jsonRowFields (one statement
 * text, whatever the batch size). One JSON text rather than a text[] per column: pg escapes each
 * element of an array parameter in JavaScript, which cost more of a group commit's time in Node
 * than everything else it does; JSON.stringify is native. Undefined becomes null.
 */
export function rowsAsJson<T, C extends keyof T>(rows: readonly T[], columns: readonly C[]): string {
  return JSON.stringify(rows.map((row) => columns.map((column) => row[column] ?? null)));
}

/** `row ->> 0, row ->> 1, …`: the `count` fields of a row rowsAsJson wrote, as text (null stays null). */
export function jsonRowFields(row: string, count: number): string {
  return Array.from({ length: count }, (_, index) => `${row} ->> ${index}`).join(', ');
}

export type SqliteConnection = InstanceType<ReturnType<typeof loadSqlite>>;
type SqliteStatement = ReturnType<SqliteConnection['prepare']>;

/** A connection with its prepared statements cached by text (the least recently used evicted). */
type CachedConnection = ReturnType<typeof withStatementCache>;

/**
 * Kysely prepares every query anew; SQLite's prepare costs as much as running a small query.
 * Statements are cached by their SQL text, which roughly halves the cost of repeated reads and
 * bulk inserts. Kysely, the reader and insertRowsInSqliteTransaction each run one statement at
 * a time on their connection, so a cached statement is never in use twice.
 */
function withStatementCache(connection: SqliteConnection, size = 256) {
  const cache = new Map<string, SqliteStatement>();
  return {
    connection,
    prepare(sql: string): SqliteStatement {
      let statement = cache.get(sql);
      if (statement) {
        // Refresh its place: the cache evicts the least recently used.
        cache.delete(sql);
      } else {
        statement = connection.prepare(sql);
        if (cache.size >= size) cache.delete(cache.keys().next().value!);
      }
      cache.set(sql, statement);
      return statement;
    },
    close(): void {
      cache.clear();
      connection.close();
    },
  };
}

/**
 * Brings the schema up to date. Safe to run from several processes at once, even on a fresh
 * database: on PostgreSQL an advisory lock serialises them; on SQLite the file lock does.
 */
export async function migrate<T>(database: Database<T>, migrations: Record<string, Migration> = MIGRATIONS, tablePrefix = ''): Promise<string[]> {
  const run = async (db: Kysely<unknown>) => {
    const provider: MigrationProvider = { getMigrations: async () => migrations };
    // Kysely looks for its bookkeeping tables in every schema it can see; name the schema we
    // work in, or another tenant's tables on the same server would be taken for ours.
    const schema =
      database.dialect === 'postgres' ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(db)).rows[0]?.schema : undefined;
    const migrator = new Migrator({
      db,
      provider,
      ...(schema ? { migrationTableSchema: schema } : {}),
      ...(tablePrefix ? { migrationTableName: `${tablePrefix}migration`, migrationLockTableName: `${tablePrefix}migration_lock` } : {}),
    });
    const { error, results } = await migrator.migrateToLatest();
    if (error) {
      throw new PledgeError('database_unavailable', `database migration failed: ${(error as Error).message ?? String(error)}`, { cause: error });
    }
    return (results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName);
  };
  const db = database.db as Kysely<unknown>;
  if (database.dialect === 'sqlite') {
    // Kysely's migrator takes no lock on SQLite. Two processes migrating a fresh file at once:
    // the loser's transaction rolls back whole (SQLite DDL is transactional), and its retry
    // finds the work done.
    for (let attempt = 1; ; attempt++) {
      try {
        return await run(db);
      } catch (error) {
        if (attempt >= 5) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
      }
    }
  }
  // On PostgreSQL the migrator's own lock table may not exist yet on a fresh database, so
  // creating it races: a session advisory lock, held on a connection of its own, serialises
  // the processes first.
  return db.connection().execute(async (lockConnection) => {
    await sql`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`.execute(lockConnection);
    try {
      // Kysely's look for its tables scans every schema the role can see, and fails (3F000)
      // when another schema — another tenant's, a finished test's — is dropped during the scan.
      for (let attempt = 1; ; attempt++) {
        try {
          return await run(db);
        } catch (error) {
          if (attempt >= 3 || (error as { cause?: { code?: string } }).cause?.code !== '3F000') throw error;
        }
      }
    } finally {
      await sql`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`.execute(lockConnection);
    }
  });
}

/** Arbitrary, fixed: the advisory lock id all Pledge processes take around migrations. */
const MIGRATION_LOCK_KEY = 7_346_810_021;

/** Cheap liveness probe for /health. */
export async function ping<T>(database: Database<T>): Promise<boolean> {
  try {
    await sql`select 1`.execute(database.db);
    return true;
  } catch {
    return false;
  }
}

/**
 * A query built and compiled once per dialect, then run with new values: the hottest reads
 * (an API key, a subject with its fields, a data key) skip Kysely's builder and compiler, which
 * otherwise cost about as much as SQLite running the query. `build` is called once with
 * stand-in values; where each lands among the compiled parameters is remembered, so later
 * calls bind the real values in the same places. Only for plain values (no arrays for IN).
 *
 *   const subjectById = compiledOnce((db: Kysely<Tables>, id: string) => db.selectFrom('subjects').selectAll().where('id', '=', id));
 *   const rows = await subjectById(executor, subjectId);
 */
export function compiledOnce<DB, A extends unknown[], R>(build: (db: Kysely<DB>, ...values: A) => Compilable<R>): (executor: Kysely<DB>, ...values: A) => Promise<R[]> {
  const run = compiledRunner(build);
  return (executor, ...values) => run(executor, values, false) as Promise<R[]>;
}

/**
 * compiledOnce for a look-up of one row (by a key): resolves with the row, or undefined. The
 * reader hands the row over itself, without a promise and a turn of its own to take it out
 * of the list — on the hottest reads, that was work on every call.
 */
export function compiledFirst<DB, A extends unknown[], R>(build: (db: Kysely<DB>, ...values: A) => Compilable<R>): (executor: Kysely<DB>, ...values: A) => Promise<R | undefined> {
  const run = compiledRunner(build);
  return (executor, ...values) => run(executor, values, true) as Promise<R | undefined>;
}

interface CompiledEntry<R> {
  query: CompiledQuery<R>;
  slots: Array<{ value: number } | { constant: unknown }>;
  /** The compiled parameters are the call's values, in order: bound as they come. */
  inOrder: boolean;
  /** Where a read outside any transaction runs (see Reader); undefined: through Kysely. */
  reader: Reader | undefined;
}

function compiledRunner<DB, A extends unknown[], R>(build: (db: Kysely<DB>, ...values: A) => Compilable<R>): (executor: Kysely<DB>, values: A, first: boolean) => Promise<unknown> {
  // Keyed by the dialect's adapter class: one process may talk to SQLite and PostgreSQL.
  const compiled = new Map<unknown, Omit<CompiledEntry<R>, 'reader'>>();
  // Each executor's entry, found with one look-up on later calls.
  const byExecutor = new WeakMap<object, CompiledEntry<R>>();
  const entryFor = (executor: Kysely<DB>, values: A): CompiledEntry<R> => {
    const adapterClass = executor.getExecutor().adapter.constructor;
    let shared = compiled.get(adapterClass);
    if (!shared) {
      const standIns = values.map((_, index) => ({ standIn: index }));
      const query = build(executor, ...(standIns as unknown as A)).compile();
      const slots = query.parameters.map((parameter) => {
        const index = standIns.indexOf(parameter as { standIn: number });
        return index >= 0 ? { value: index } : { constant: parameter };
      });
      preparedOnPostgres(query.sql);
      const inOrder = slots.length === values.length && slots.every((slot, index) => 'value' in slot && slot.value === index);
      shared = { query, slots, inOrder };
      compiled.set(adapterClass, shared);
    }
    // A transaction reads through itself, and lives for a few statements: nothing to remember.
    if (executor.isTransaction) return { ...shared, reader: undefined };
    // A read outside any transaction (the root instance) goes to the reader.
    const entry = { ...shared, reader: shared.query.query.kind === 'SelectQueryNode' ? readers.get(executor) : undefined };
    byExecutor.set(executor, entry);
    return entry;
  };
  const run = (executor: Kysely<DB>, values: A, first: boolean): Promise<unknown> => {
    const entry = byExecutor.get(executor) ?? entryFor(executor, values);
    const parameters = entry.inOrder ? values : entry.slots.map((slot) => ('value' in slot ? values[slot.value] : slot.constant));
    if (entry.reader) return entry.reader.all(entry.query.sql, parameters, first);
    return executor.executeQuery<R>({ ...entry.query, parameters }).then((result) => (first ? result.rows[0] : result.rows));
  };
  // Not an async function: the reader's promise is handed back as it is, without another
  // promise and turn around it on every hot read. A failure still arrives as a rejection.
  return (executor, values, first) => {
    try {
      return run(executor, values, first);
    } catch (error) {
      return Promise.reject(error as Error);
    }
  };
}
