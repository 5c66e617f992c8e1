import { testDatabaseUrls } from '../../src/core/config.js';
import { newId } from '../../src/core/ids.js';
import { createTestDatabase, temporaryDirectory } from './databases.js';

/**
 * Connected-dataset tests run once per kind of company datastore: SQLite always, PostgreSQL
 * when PLEDGE_TEST_POSTGRES_URL is set, MariaDB/MySQL when PLEDGE_TEST_MARIADB_URL is set
 * (CI sets both; a test there fails — never skips — when the server cannot be reached).
 * Each test gets its own SQLite file, PostgreSQL schema or MariaDB database, dropped afterwards.
 *
 *   for (const kind of datastoreDialects()) {
 *     describe(`shop on ${kind}`, () => {
 *       let store: TestDatastore;
 *       before(async () => { store = await createTestDatastore(kind); });
 *       after(() => store.cleanup());
 *     });
 *   }
 */
export type DatastoreDialect = 'sqlite' | 'postgres' | 'mariadb';

export interface TestDatastore {
  dialect: DatastoreDialect;
  url: string;
  cleanup(): Promise<void>;
}

export function datastoreDialects(): DatastoreDialect[] {
  const urls = testDatabaseUrls();
  return ['sqlite', ...(urls.postgres ? (['postgres'] as const) : []), ...(urls.mariadb ? (['mariadb'] as const) : [])];
}

/** Like testDialects (test/support/databases.ts), for MariaDB alone. */
export function mariadbEnabled(): boolean {
  return testDatabaseUrls().mariadb !== undefined;
}

export async function createTestDatastore(dialect: DatastoreDialect): Promise<TestDatastore> {
  if (dialect === 'sqlite') {
    const directory = temporaryDirectory('pledge-datastore-');
    return { dialect, url: `sqlite:${directory.path}/shop.db`, cleanup: async () => directory.remove() };
  }
  if (dialect === 'postgres') {
    const database = await createTestDatabase('postgres');
    return { dialect, url: database.url, cleanup: database.cleanup };
  }
  const base = testDatabaseUrls().mariadb;
  if (!base) throw new Error('PLEDGE_TEST_MARIADB_URL is not set');
  const name = `t_${newId('job').slice(4)}`;
  const mysql = await import('mysql2/promise');
  const admin = await mysql.createConnection({ uri: base.replace(/^mariadb:/, 'mysql:') });
  try {
    await admin.query(`create database \`${name}\``);
  } finally {
    await admin.end();
  }
  const url = new URL(base.replace(/^mariadb:/, 'mysql:'));
  url.pathname = `/${name}`;
  return {
    dialect,
    url: url.toString(),
    cleanup: async () => {
      const connection = await mysql.createConnection({ uri: base.replace(/^mariadb:/, 'mysql:') });
      try {
        await connection.query(`drop database if exists \`${name}\``);
      } finally {
        await connection.end();
      }
    },
  };
}
