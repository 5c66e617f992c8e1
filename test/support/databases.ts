import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { testDatabaseUrls } from '../../src/core/config.js';
import { newId } from '../../src/core/ids.js';

/**
 * Every storage test runs once per database: SQLite always, PostgreSQL when
 * PLEDGE_TEST_POSTGRES_URL is set (CI sets it, and a test there fails — never skips — when
 * the server cannot be reached). Each test database is isolated: a temporary SQLite file,
 * or a fresh PostgreSQL schema selected through the connection's search_path.
 *
 *   for (const dialect of testDialects()) {
 *     describe(`store on ${dialect}`, () => {
 *       let database: TestDatabase;
 *       before(async () => { database = await createTestDatabase(dialect); });
 *       after(() => database.cleanup());
 *       …
 *     });
 *   }
 */
export type TestDialect = 'sqlite' | 'postgres';

export interface TestDatabase {
  dialect: TestDialect;
  url: string;
  cleanup(): Promise<void>;
}

export function testDialects(): TestDialect[] {
  return testDatabaseUrls().postgres ? ['sqlite', 'postgres'] : ['sqlite'];
}

export async function createTestDatabase(dialect: TestDialect): Promise<TestDatabase> {
  if (dialect === 'sqlite') {
    const directory = mkdtempSync(path.join(os.tmpdir(), 'pledge-test-'));
    return {
      dialect,
      url: `sqlite:${path.join(directory, 'pledge.db')}`,
      cleanup: async () => rmSync(directory, { recursive: true, force: true }),
    };
  }
  const base = testDatabaseUrls().postgres;
  if (!base) throw new Error('PLEDGE_TEST_POSTGRES_URL is not set');
  const schema = `t_${newId('job').slice(4)}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  try {
    await admin.query(`create schema "${schema}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(base);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    dialect,
    url: url.toString(),
    cleanup: async () => {
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      try {
        await client.query(`drop schema if exists "${schema}" cascade`);
      } finally {
        await client.end();
      }
    },
  };
}

/** A temporary directory removed by the returned function. */
export function temporaryDirectory(prefix = 'pledge-'): { path: string; remove(): void } {
  const directory = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { path: directory, remove: () => rmSync(directory, { recursive: true, force: true }) };
}
