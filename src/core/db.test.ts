import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { createTestDatabase, testDialects, type TestDatabase } from '../../test/support/databases.js';
import { migrate, openDatabase, ping, type Database } from './db.js';

for (const dialect of testDialects()) {
  describe(`database on ${dialect}`, () => {
    let testDatabase: TestDatabase;
    let database: Database;

    before(async () => {
      testDatabase = await createTestDatabase(dialect);
      database = openDatabase(testDatabase.url);
    });
    after(async () => {
      await database.close();
      await testDatabase.cleanup();
    });

    test('migrations create the schema once and are idempotent', async () => {
      const first = await migrate(database);
      assert.ok(first.includes('0001-policy-versions'), 'first run applies the initial migration');
      const second = await migrate(database);
      assert.deepEqual(second, [], 'a second run applies nothing');
      const rows = await database.db.selectFrom('policy_versions').selectAll().execute();
      assert.deepEqual(rows, []);
    });

    test('concurrent migrations from two connections do not collide', async () => {
      const other = openDatabase(testDatabase.url);
      try {
        const results = await Promise.all([migrate(database), migrate(other)]);
        assert.deepEqual(results, [[], []]);
      } finally {
        await other.close();
      }
    });

    test('first-time migrations from several processes at once do not collide', async () => {
      const fresh = await createTestDatabase(dialect);
      const connections = [0, 1, 2].map(() => openDatabase(fresh.url));
      try {
        const results = await Promise.all(connections.map((connection) => migrate(connection)));
        assert.equal(results.filter((applied) => applied.length > 0).length, 1, 'exactly one of them applied the migrations');
      } finally {
        await Promise.all(connections.map((connection) => connection.close()));
        await fresh.cleanup();
      }
    });

    test('ping reports a live database, and the dialect is the one asked for', async () => {
      assert.equal(database.dialect, dialect);
      assert.equal(await ping(database), true);
      const result = await sql<{ one: number }>`select 1 as one`.execute(database.db);
      assert.equal(Number(result.rows[0]?.one), 1);
    });
  });
}

test('ping is false when the database server cannot be reached', async () => {
  // Nothing listens on port 1 of the loopback: the connection is refused at once.
  const database = openDatabase('postgres://pledge@127.0.0.1:1/pledge');
  try {
    assert.equal(await ping(database), false);
  } finally {
    await database.close();
  }
});
