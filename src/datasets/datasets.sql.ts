import { PledgeError } from '../core/errors.js';
import { loadSqlite } from '../core/sqlite.js';

/**
 * The company's own SQL datastores: PostgreSQL, MySQL/MariaDB and SQLite, reached through
 * their drivers directly (their schemas are not ours, so there is no typed query builder to
 * lean on). Every table and column name comes from the validated policy and is quoted by the
 * dialect; every value is bound as a parameter, never written into the SQL text.
 *
 *   const store = openSqlDatastore('shop', 'postgres://…', { timeoutMs: 30_000 });
 *   await store.read((session) => session.query('select 1', []));
 *   await store.write(async (session) => { await session.execute(sql, params); }); // one transaction
 */
export type Row = Record<string, unknown>;
export type SqlDialectName = 'sqlite' | 'postgres' | 'mysql';

export interface SqlSession {
  readonly dialect: SqlDialect;
  query(sql: string, params: readonly unknown[]): Promise<Row[]>;
  execute(sql: string, params: readonly unknown[]): Promise<number>;
}

export interface SqlDatastore {
  readonly id: string;
  readonly dialect: SqlDialect;
  /** Reads outside any write transaction. */
  read<T>(work: (session: SqlSession) => Promise<T>): Promise<T>;
  /** One transaction: committed when `work` resolves, rolled back whole when it throws. */
  write<T>(work: (session: SqlSession) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface SqlDialect {
  readonly name: SqlDialectName;
  quote(identifier: string): string;
  placeholder(index: number): string;
  /** Appended to a select inside a write transaction, so rows cannot change before they are written. */
  readonly lockSuffix: string;
  /** How the dialect stores true in a restrict column. */
  readonly trueValue: unknown;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function quoteWith(mark: string) {
  return (identifier: string) => {
    // The policy schema already limits names to this pattern; this is the last line of defence.
    if (!NAME.test(identifier)) throw new PledgeError('internal', 'refusing to quote an identifier that is not a plain name');
    return `${mark}${identifier}${mark}`;
  };
}

export const DIALECTS: Record<SqlDialectName, SqlDialect> = {
  sqlite: { name: 'sqlite', quote: quoteWith('"'), placeholder: () => '?', lockSuffix: '', trueValue: 1 },
  postgres: { name: 'postgres', quote: quoteWith('"'), placeholder: (index) => `$${index}`, lockSuffix: ' for update', trueValue: true },
  mysql: { name: 'mysql', quote: quoteWith('`'), placeholder: () => '?', lockSuffix: ' for update', trueValue: 1 },
};

// --- building statements ----------------------------------------------------------------------

/** Collects bound values and hands out their placeholders in order. */
export class Params {
  readonly values: unknown[] = [];
  constructor(private readonly dialect: SqlDialect) {}
  add(value: unknown): string {
    this.values.push(value);
    return this.dialect.placeholder(this.values.length);
  }
}

/** `a in (?, ?)` or, for several columns, `(a, b) in ((?, ?), (?, ?))`. */
export function inList(dialect: SqlDialect, params: Params, columns: readonly string[], tuples: ReadonlyArray<readonly unknown[]>): string {
  if (columns.length === 1) return `${dialect.quote(columns[0]!)} in (${tuples.map((tuple) => params.add(tuple[0])).join(', ')})`;
  const list = tuples.map((tuple) => `(${tuple.map((value) => params.add(value)).join(', ')})`).join(', ');
  return `(${columns.map(dialect.quote).join(', ')}) in (${list})`;
}

/** `a > ?` or `(a, b) > (?, ?)`: the keyset that pages through rows in primary-key order. */
export function after(dialect: SqlDialect, params: Params, columns: readonly string[], values: readonly unknown[]): string {
  if (columns.length === 1) return `${dialect.quote(columns[0]!)} > ${params.add(values[0])}`;
  return `(${columns.map(dialect.quote).join(', ')}) > (${values.map((value) => params.add(value)).join(', ')})`;
}

// --- failures -----------------------------------------------------------------------------------

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EPIPE', 'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_ACCESS_DENIED_ERROR', 'ER_BAD_DB_ERROR', 'ER_LOCK_WAIT_TIMEOUT', 'SQLITE_BUSY', 'SQLITE_CANTOPEN', 'SQLITE_LOCKED',
  // PostgreSQL: statement timeout or cancel, admin shutdown, cannot connect, database missing, lock timeout.
  '57014', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', '28000', '28P01', '3D000', '55P03', '40P01', '40001',
]);

/**
 * Turns a driver error into a PledgeError without its message: drivers quote values in them
 * ("Duplicate entry 'jane@…'"), and values of a company database are personal data.
 */
export function datastoreError(datastore: string, error: unknown, doing: string): PledgeError {
  if (error instanceof PledgeError) return error;
  const code = String((error as { code?: unknown })?.code ?? (error as Error)?.name ?? 'unknown');
  const timedOut = /timeout|timed out/i.test((error as Error)?.message ?? '');
  if (UNAVAILABLE_CODES.has(code) || timedOut) {
    return new PledgeError('dataset_unavailable', `datastore "${datastore}" could not be reached or did not answer in time while ${doing} (${timedOut && !UNAVAILABLE_CODES.has(code) ? 'timeout' : code}); nothing was changed there`, { cause: error, details: { datastore, reason: code } });
  }
  return new PledgeError('dataset_query_failed', `datastore "${datastore}" refused a query while ${doing} (${code}); nothing was changed there`, { cause: error, details: { datastore, reason: code } });
}

// --- connections ------------------------------------------------------------------------------

export interface SqlDatastoreOptions {
  timeoutMs: number;
  /** SQLite only: create the file when missing (the shop builder); a datastore of the policy must exist. */
  create?: boolean;
}

export function sqlDialectOf(url: string): SqlDialectName | undefined {
  if (/^postgres(ql)?:\/\//.test(url)) return 'postgres';
  if (/^(mysql|mariadb):\/\//.test(url)) return 'mysql';
  if (url.startsWith('sqlite:')) return 'sqlite';
  return undefined;
}

export function openSqlDatastore(id: string, url: string, options: SqlDatastoreOptions): SqlDatastore {
  switch (sqlDialectOf(url)) {
    case 'sqlite':
      return openSqlite(id, url, options);
    case 'postgres':
      return openPostgres(id, url, options);
    case 'mysql':
      return openMysql(id, url, options);
    default:
      throw new PledgeError('dataset_not_configured', `datastore "${id}": the connection URL must start with postgres://, mysql://, mariadb://, sqlite: or https://`);
  }
}

/** better-sqlite3 binds neither booleans nor dates. */
function sqliteValue(value: unknown): unknown {
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (value instanceof Date) return value.toISOString();
  return value;
}

function openSqlite(id: string, url: string, options: SqlDatastoreOptions): SqlDatastore {
  const file = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
  type Connection = InstanceType<ReturnType<typeof loadSqlite>>;
  let connection: Connection | undefined;
  const statements = new Map<string, ReturnType<Connection['prepare']>>();
  const open = () => {
    if (connection) return connection;
    try {
      const SQLite = loadSqlite();
      // The company's file must exist: creating an empty one would hide a wrong path.
      connection = new SQLite(file, { fileMustExist: !options.create, timeout: options.timeoutMs });
      connection.pragma('foreign_keys = ON');
      return connection;
    } catch (error) {
      throw new PledgeError('dataset_unavailable', `datastore "${id}": the SQLite file cannot be opened (${(error as { code?: string }).code ?? 'error'})`, { cause: error, details: { datastore: id } });
    }
  };
  const prepare = (sql: string) => {
    let statement = statements.get(sql);
    if (!statement) {
      statement = open().prepare(sql);
      if (statements.size > 200) statements.clear();
      statements.set(sql, statement);
    }
    return statement;
  };
  const session: SqlSession = {
    dialect: DIALECTS.sqlite,
    query: async (sql, params) => prepare(sql).all(params.map(sqliteValue)) as Row[],
    execute: async (sql, params) => prepare(sql).run(params.map(sqliteValue)).changes,
  };
  // One connection, used by one unit of work at a time: interleaved awaits of two callers
  // must not end up inside each other's transaction.
  let tail: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const run = tail.then(work, work);
    tail = run.catch(() => {});
    return run;
  };
  return {
    id,
    dialect: DIALECTS.sqlite,
    read: (work) => serial(() => work(session)),
    write: (work) =>
      serial(async () => {
        // IMMEDIATE takes the write lock before the first read: what is read is what is written.
        open().exec('begin immediate');
        try {
          const result = await work(session);
          connection!.exec('commit');
          return result;
        } catch (error) {
          if (connection!.inTransaction) connection!.exec('rollback');
          throw error;
        }
      }),
    close: async () => {
      await tail;
      statements.clear();
      connection?.close();
      connection = undefined;
    },
  };
}

function openPostgres(id: string, url: string, options: SqlDatastoreOptions): SqlDatastore {
  type Pool = import('pg').Pool;
  type Client = import('pg').PoolClient;
  let pool: Promise<Pool> | undefined;
  const getPool = () =>
    (pool ??= import('pg').then(({ default: pg }) => {
      // Large integers come back as text so keys survive the round trip unchanged.
      const created = new pg.Pool({
        connectionString: url,
        max: 10,
        connectionTimeoutMillis: options.timeoutMs,
        statement_timeout: options.timeoutMs,
        query_timeout: options.timeoutMs + 1000,
        idleTimeoutMillis: 10_000,
      });
      created.on('error', () => {});
      return created;
    }));
  const sessionOf = (client: Client): SqlSession => ({
    dialect: DIALECTS.postgres,
    query: async (sql, params) => (await client.query(sql, params as unknown[])).rows as Row[],
    execute: async (sql, params) => (await client.query(sql, params as unknown[])).rowCount ?? 0,
  });
  const withClient = async <T>(work: (client: Client) => Promise<T>): Promise<T> => {
    const client = await (await getPool()).connect();
    let broken = false;
    try {
      return await work(client);
    } catch (error) {
      broken = true;
      throw error;
    } finally {
      // A client whose query failed may be mid-protocol; never hand it to the next caller.
      client.release(broken);
    }
  };
  return {
    id,
    dialect: DIALECTS.postgres,
    read: (work) => withClient((client) => work(sessionOf(client))),
    write: (work) =>
      withClient(async (client) => {
        await client.query('begin');
        try {
          const result = await work(sessionOf(client));
          await client.query('commit');
          return result;
        } catch (error) {
          await client.query('rollback').catch(() => {});
          throw error;
        }
      }),
    close: async () => {
      if (pool) await (await pool).end();
      pool = undefined;
    },
  };
}

function mysqlValue(value: unknown): any {
  if (value === undefined) return null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  return value;
}

function openMysql(id: string, url: string, options: SqlDatastoreOptions): SqlDatastore {
  type Pool = import('mysql2/promise').Pool;
  type Connection = import('mysql2/promise').PoolConnection;
  let pool: Promise<Pool> | undefined;
  const getPool = () =>
    (pool ??= import('mysql2/promise').then((mysql) => {
      const parsed = new URL(url.replace(/^mariadb:/, 'mysql:'));
      return mysql.createPool({
        host: parsed.hostname,
        port: parsed.port ? Number(parsed.port) : 3306,
        user: decodeURIComponent(parsed.username),
        password: decodeURIComponent(parsed.password),
        database: decodeURIComponent(parsed.pathname.slice(1)),
        connectionLimit: 10,
        connectTimeout: options.timeoutMs,
        // Dates travel as UTC, whatever the time zone of the machine running Pledge.
        timezone: 'Z',
        supportBigNumbers: true,
        bigNumberStrings: true,
      });
    }));
  const sessionOf = (connection: Connection): SqlSession => ({
    dialect: DIALECTS.mysql,
    // execute(): server-side prepared statements, so values travel apart from the SQL text.
    query: async (sql, params) => (await connection.execute({ sql, values: params.map(mysqlValue), timeout: options.timeoutMs }))[0] as Row[],
    execute: async (sql, params) => ((await connection.execute({ sql, values: params.map(mysqlValue), timeout: options.timeoutMs }))[0] as unknown as { affectedRows: number }).affectedRows,
  });
  const withConnection = async <T>(work: (connection: Connection) => Promise<T>): Promise<T> => {
    const connection = await (await getPool()).getConnection();
    let broken = false;
    try {
      return await work(connection);
    } catch (error) {
      broken = true;
      throw error;
    } finally {
      if (broken) connection.destroy();
      else connection.release();
    }
  };
  return {
    id,
    dialect: DIALECTS.mysql,
    read: (work) => withConnection((connection) => work(sessionOf(connection))),
    write: (work) =>
      withConnection(async (connection) => {
        await connection.query('start transaction');
        try {
          const result = await work(sessionOf(connection));
          await connection.query('commit');
          return result;
        } catch (error) {
          await connection.query('rollback').catch(() => {});
          throw error;
        }
      }),
    close: async () => {
      if (pool) await (await pool).end();
      pool = undefined;
    },
  };
}
