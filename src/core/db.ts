import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type MigrationProvider } from 'kysely';
import { PledgeError } from './errors.js';
import type { Tables } from './db.tables.js';
import { MIGRATIONS } from './migrations/index.js';
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

export interface Database {
  readonly db: Kysely<Tables>;
  readonly dialect: DialectName;
  close(): Promise<void>;
}

export function openDatabase(url: string): Database {
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length);
    if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const SQLite = loadSqlite();
    const connection = new SQLite(file);
    // WAL lets readers proceed during a write; busy_timeout waits instead of failing when
    // another process (a second CLI, a backup) holds the lock for a moment.
    connection.pragma('journal_mode = WAL');
    connection.pragma('synchronous = NORMAL');
    connection.pragma('foreign_keys = ON');
    connection.pragma('busy_timeout = 5000');
    const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: connection }) });
    return { db, dialect: 'sqlite', close: () => db.destroy() };
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    // pg is loaded on first use: SQLite installs never pay for it at start.
    const pool = async () => {
      const { default: pg } = await import('pg');
      const created = new pg.Pool({ connectionString: url, max: 10 });
      // An idle client losing its connection must not crash the process; the next query reconnects.
      created.on('error', () => {});
      return created;
    };
    const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
    return { db, dialect: 'postgres', close: () => db.destroy() };
  }
  throw new PledgeError('config_invalid', 'the database URL must start with sqlite: or postgres://');
}

const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };

/**
 * Brings the schema up to date. Safe to run from several processes at once: Kysely's
 * migrator takes a lock (an advisory lock on PostgreSQL) around the run.
 */
export async function migrate(database: Database): Promise<string[]> {
  const migrator = new Migrator({ db: database.db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    throw new PledgeError('database_unavailable', `database migration failed: ${(error as Error).message ?? String(error)}`, { cause: error });
  }
  return (results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName);
}

/** Cheap liveness probe for /health. */
export async function ping(database: Database): Promise<boolean> {
  try {
    await sql`select 1`.execute(database.db);
    return true;
  } catch {
    return false;
  }
}
