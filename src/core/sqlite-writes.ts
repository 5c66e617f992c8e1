/**
 * Write transactions on a SQLite file several processes share, taken without blocking the
 * event loop (beginWrite): Kysely's transactions open through it (WriteWaitingSqliteDialect),
 * and so do the synchronous ones of Database.sqlite.exclusive (inWriteTransaction).
 */
import { SqliteDialect, SqliteDriver, type Driver, type SqliteDialectConfig } from 'kysely';
import type { SqliteConnection } from './db.js';

/** How long a write waits for another process to let go of the file's write lock, as busy_timeout. */
export const WRITE_LOCK_WAIT_MS = 5000;

const RESTORE_BUSY_TIMEOUT = `PRAGMA busy_timeout = ${WRITE_LOCK_WAIT_MS}`;

/** Statements without parameters. */
type BareStatement = { run(): unknown };
const writeStatementsByConnection = new WeakMap<SqliteConnection, Record<'begin' | 'commit' | 'rollback', BareStatement>>();

function writeStatements(connection: SqliteConnection) {
  let statements = writeStatementsByConnection.get(connection);
  if (!statements) {
    const prepare = (text: string) => connection.prepare(text) as unknown as BareStatement;
    statements = {
      begin: prepare('begin immediate'),
      commit: prepare('commit'),
      rollback: prepare('rollback'),
    };
    writeStatementsByConnection.set(connection, statements);
  }
  return statements;
}

/**
 * Opens a write transaction: BEGIN IMMEDIATE, which takes the file's write lock before anything
 * is read. (A deferred BEGIN that read before another process committed could not take the
 * lock later: under WAL, SQLite fails it at once instead of waiting.) While another process
 * holds the lock, SQLite's busy_timeout would sleep inside the call, freezing the whole event
 * loop: no request read, no answer sent. Here the attempt does not wait, and a busy lock is
 * tried again once the loop has run — promptly, and for as long as busy_timeout would have.
 */
export async function beginWrite(connection: SqliteConnection): Promise<void> {
  const statements = writeStatements(connection);
  const deadline = Date.now() + WRITE_LOCK_WAIT_MS;
  for (let attempt = 1; ; attempt++) {
    // Set anew each time: a prepared PRAGMA busy_timeout takes effect when prepared, not when run.
    // exec() prepares, runs and finalises in C; pragma() builds a statement object and a result
    // array around the same work, at five times the cost (once per write transaction).
    connection.exec('PRAGMA busy_timeout = 0');
    try {
      statements.begin.run();
      return;
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw error;
    } finally {
      connection.exec(RESTORE_BUSY_TIMEOUT);
    }
    await new Promise<void>((resolve) => (attempt <= 2 ? setImmediate(resolve) : setTimeout(resolve, 1)));
  }
}

/** `work` run synchronously in a write transaction: committed when it returns, rolled back when it throws. */
export async function inWriteTransaction<R>(connection: SqliteConnection, work: (connection: SqliteConnection) => R): Promise<R> {
  await beginWrite(connection);
  const statements = writeStatements(connection);
  try {
    const result = work(connection);
    statements.commit.run();
    return result;
  } catch (error) {
    if (connection.inTransaction) statements.rollback.run();
    throw error;
  }
}

/** Kysely's SQLite dialect, its transactions opened by beginWrite. */
export class WriteWaitingSqliteDialect extends SqliteDialect {
  constructor(
    private readonly driverConfig: SqliteDialectConfig,
    private readonly connection: SqliteConnection,
  ) {
    super(driverConfig);
  }

  override createDriver(): Driver {
    const connection = this.connection;
    return new (class extends SqliteDriver {
      override async beginTransaction(): Promise<void> {
        await beginWrite(connection);
      }
    })(this.driverConfig);
  }
}
