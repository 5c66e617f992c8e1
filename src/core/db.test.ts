import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { CompiledQuery, sql } from 'kysely';
import { createTestDatabase, testDialects, type TestDatabase } from '../../test/support/databases.js';
import type { Kysely } from 'kysely';
import type { Tables } from './db.tables.js';
import { startCheckpointer } from './sqlite-checkpointer.js';
import { loadSqlite } from './sqlite.js';
import { WRITE_LOCK_WAIT_MS } from './sqlite-writes.js';
import { batchedLookupSql, compiledOnce, insertRowsInSqliteTransaction, jsonRowFields, migrate, openDatabase, ping, preparedOnPostgres, rowsAsJson, textArrayLiteral, type Database } from './db.js';

const versionById = compiledOnce((db: Kysely<Tables>, id: string) => db.selectFrom('policy_versions').select(['id', 'version']).where('id', '=', id));
const versionByIdAndVersion = compiledOnce((db: Kysely<Tables>, id: string, version: string) => db.selectFrom('policy_versions').select(['id']).where('id', '=', id).where('version', '=', version));
const versionsByVersion = compiledOnce((db: Kysely<Tables>, version: string) => db.selectFrom('policy_versions').select(['id']).where('version', '=', version));
const auditEntryBySeq = compiledOnce((db: Kysely<Tables>, seq: string) => db.selectFrom('audit_entries').select(['seq']).where('seq', '=', seq as unknown as number));

/** A policy_versions row for tests that only need some row. */
function policyVersionRow(id: string, version = id, document = '{}') {
  return { id, version, hash: `hash-${id}`, effective_date: '2026-01-01', document, recorded_at: '2026-01-01T00:00:00.000Z' };
}

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

    test('lookups made together each get exactly their own rows, and see what was committed before them', async () => {
      await database.db.insertInto('policy_versions').values([policyVersionRow('pv_a', '1'), policyVersionRow('pv_b', '2'), policyVersionRow('pv_c', '2'), policyVersionRow('pv_d', '3')]).execute();
      const ids = ['pv_a', 'pv_b', 'pv_missing', 'pv_c', 'pv_a', 'pv_d'];
      // Asked in one turn of the event loop: on PostgreSQL they travel as one query.
      const answers = await Promise.all(ids.map((id) => versionById(database.db, id)));
      assert.deepEqual(answers, [[{ id: 'pv_a', version: '1' }], [{ id: 'pv_b', version: '2' }], [], [{ id: 'pv_c', version: '2' }], [{ id: 'pv_a', version: '1' }], [{ id: 'pv_d', version: '3' }]]);
      // Several rows for one caller, none for another.
      const byVersion = await Promise.all(['2', '9', '1'].map((version) => versionsByVersion(database.db, version)));
      assert.deepEqual(byVersion.map((rows) => rows.map((found) => found.id).sort()), [['pv_b', 'pv_c'], [], ['pv_a']]);
      // Nothing is cached: a row written after the last batch is found by the next.
      await database.db.insertInto('policy_versions').values(policyVersionRow('pv_e', '4')).execute();
      const [fresh, again] = await Promise.all([versionById(database.db, 'pv_e'), versionById(database.db, 'pv_a')]);
      assert.deepEqual([fresh, again], [[{ id: 'pv_e', version: '4' }], [{ id: 'pv_a', version: '1' }]]);
    });

    test('callers asking the same thing at once each get the rows, as objects of their own', async () => {
      await database.db.insertInto('policy_versions').values([policyVersionRow('pv_same_1', '7'), policyVersionRow('pv_same_2', '7')]).execute();
      // Only one distinct question (sent as the plain statement on PostgreSQL), several rows each.
      const answers = await Promise.all(Array.from({ length: 5 }, () => versionsByVersion(database.db, '7')));
      for (const rows of answers) assert.deepEqual(rows.map((found) => found.id).sort(), ['pv_same_1', 'pv_same_2']);
      (answers[0]![0] as { id: string }).id = 'changed by the first caller';
      assert.notEqual(answers[1]![0]!.id, 'changed by the first caller', 'another caller\'s row is not the same object');
      // Repeated questions among different ones.
      const mixed = await Promise.all(['pv_same_1', 'pv_same_2', 'pv_same_1', 'pv_none', 'pv_same_1'].map((id) => versionById(database.db, id)));
      assert.deepEqual(mixed.map((rows) => rows.map((found) => found.id)), [['pv_same_1'], ['pv_same_2'], ['pv_same_1'], [], ['pv_same_1']]);
    });

    test('values with quotes, backslashes, commas, braces, spaces or the word NULL are looked up exactly', async () => {
      const tricky = ['say "hi"', 'back\\slash', 'a,b', '{braces}', ' padded ', 'NULL', '', 'ünïcödé ✓', '\\"', 'plain'];
      await database.db.insertInto('policy_versions').values(tricky.map((version, index) => policyVersionRow(`pv_tricky_${index}`, version))).execute();
      // Together in one turn: on PostgreSQL one batch, every value an element of a text[] literal.
      const answers = await Promise.all(tricky.map((version, index) => versionByIdAndVersion(database.db, `pv_tricky_${index}`, version)));
      assert.deepEqual(answers, tricky.map((_, index) => [{ id: `pv_tricky_${index}` }]));
      const swapped = await Promise.all([versionByIdAndVersion(database.db, 'pv_tricky_0', 'say "hi'), versionByIdAndVersion(database.db, 'pv_tricky_5', 'null')]);
      assert.deepEqual(swapped, [[], []], 'a near miss finds nothing');
      if (dialect === 'postgres') {
        const { rows } = await database.db.executeQuery<{ value: string }>(CompiledQuery.raw('select unnest($1::text[]) as value', [textArrayLiteral(tricky)]));
        assert.deepEqual(rows.map((row) => row.value), tricky);
      }
    });

    test('a lookup on a column that is not text still answers when asked together with others', async () => {
      // The batched form compares text; PostgreSQL refuses it for a number column, and the
      // statement then runs once per caller, as it would alone.
      const answers = await Promise.all(['1', '2', '3'].map((seq) => auditEntryBySeq(database.db, seq)));
      assert.deepEqual(answers, [[], [], []]);
      const later = await Promise.all(['1', '2'].map((seq) => auditEntryBySeq(database.db, seq)));
      assert.deepEqual(later, [[], []]);
    });

    if (dialect === 'postgres') {
      test('lookups asked while a batch of the same statement is on its way go together in the next one, after it', async () => {
        // Answers with when its query was sent; "slow" keeps its query on its way for a while.
        const lookup = compiledOnce((db: Kysely<Tables>, id: string) =>
          db.selectNoFrom([
            sql<string>`${id}::text`.as('id'),
            sql<string>`to_char(statement_timestamp(), 'HH24:MI:SS.US')`.as('sent'),
            sql<string>`pg_sleep(case when ${id}::text = 'slow' then 0.3 else 0 end)::text`.as('slept'),
          ]),
        );
        const slow = lookup(database.db, 'slow');
        await new Promise((resolve) => setTimeout(resolve, 100));
        const later: Array<ReturnType<typeof lookup>> = [];
        // Asked in three turns of the event loop, each of which would have sent a query of its own.
        for (const id of ['a', 'b', 'c']) {
          later.push(lookup(database.db, id));
          await new Promise((resolve) => setImmediate(resolve));
        }
        const [[first], ...rest] = await Promise.all([slow, ...later]);
        assert.deepEqual(rest.map(([row]) => row!.id), ['a', 'b', 'c'], 'each caller got its own row');
        assert.equal(new Set(rest.map(([row]) => row!.sent)).size, 1, 'the three went as one query');
        assert.ok(rest[0]![0]!.sent > first!.sent, 'sent after the first batch');
        // With nothing on its way, a lookup goes at once.
        const [alone] = await lookup(database.db, 'd');
        assert.equal(alone!.id, 'd');
      });

      test('a text marked for preparation is prepared once per connection, in and out of transactions', async () => {
        const text = preparedOnPostgres("select $1::text || '-prepared' as answer");
        const other = "select $1::text || '-unprepared' as answer";
        await database.db.connection().execute(async (connection) => {
          for (const value of ['a', 'b']) {
            assert.deepEqual((await connection.executeQuery(CompiledQuery.raw(text, [value]))).rows, [{ answer: `${value}-prepared` }]);
            await connection.executeQuery(CompiledQuery.raw(other, [value]));
          }
          const prepared = await sql<{ statement: string }>`select statement from pg_prepared_statements`.execute(connection);
          const statements = prepared.rows.map((row) => row.statement);
          assert.equal(statements.filter((statement) => statement === text).length, 1);
          assert.ok(!statements.includes(other), 'an unmarked text stays unnamed');
        });
        const inTransaction = await database.db.transaction().execute((trx) => trx.executeQuery(CompiledQuery.raw(text, ['c'])));
        assert.deepEqual(inTransaction.rows, [{ answer: 'c-prepared' }]);
      });

      test('rows sent as one JSON parameter come back field by field, text as it was and nulls as nulls', async () => {
        const rows = [
          { id: 'one', note: 'quotes " and \\ backslashes, {braces}, commas, ünïcödé 🙂' },
          { id: 'two', note: undefined },
          { id: 'three', note: 'line\nbreak\ttab' },
        ];
        const result = await sql<{ fields: Array<string | null> }>`select array[${sql.raw(jsonRowFields('r', 2))}] as fields from jsonb_array_elements(${rowsAsJson(rows, ['id', 'note'])}::jsonb) as r`.execute(database.db);
        assert.deepEqual(
          result.rows.map((row) => row.fields),
          rows.map((row) => [row.id, row.note ?? null]),
        );
      });
    }
  });
}

/** A migrated SQLite database of its own for `work` (with its file's path), closed and removed afterwards. */
async function withSqliteDatabase(work: (database: Database, file: string) => Promise<void>): Promise<void> {
  const testDatabase = await createTestDatabase('sqlite');
  const database = openDatabase(testDatabase.url);
  try {
    await migrate(database);
    await work(database, testDatabase.url.slice('sqlite:'.length));
  } finally {
    await database.close();
    await testDatabase.cleanup();
  }
}

test('SQLite: reads asked together are answered one by one, a failing one alone failing, and none is dropped by closing', async () => {
  await withSqliteDatabase(async (database) => {
    await database.db.insertInto('policy_versions').values([policyVersionRow('pv_1', '1'), policyVersionRow('pv_2', '2')]).execute();
    // Asked in one turn, they share one read transaction; a value SQLite cannot bind fails its
    // own read only.
    const answers = await Promise.allSettled([versionById(database.db, 'pv_1'), versionById(database.db, { not: 'bindable' } as unknown as string), versionById(database.db, 'pv_2')]);
    assert.deepEqual(answers[0], { status: 'fulfilled', value: [{ id: 'pv_1', version: '1' }] });
    assert.equal(answers[1]!.status, 'rejected');
    assert.deepEqual(answers[2], { status: 'fulfilled', value: [{ id: 'pv_2', version: '2' }] });
    // The reader is usable after a failed read, and its transaction was ended: a write of
    // the other connection is seen by the next turn's reads.
    await database.db.insertInto('policy_versions').values(policyVersionRow('pv_3', '3')).execute();
    assert.deepEqual(await Promise.all([versionById(database.db, 'pv_3'), versionById(database.db, 'pv_1')]), [[{ id: 'pv_3', version: '3' }], [{ id: 'pv_1', version: '1' }]]);
    // Values that only a separator would tell apart are different questions (SQLite text may
    // hold NUL; PostgreSQL's cannot).
    await database.db.insertInto('policy_versions').values([policyVersionRow('pv_x\u0000y', 'z'), policyVersionRow('pv_x', 'y\u0000z')]).execute();
    const split = await Promise.all([versionByIdAndVersion(database.db, 'pv_x\u0000y', 'z'), versionByIdAndVersion(database.db, 'pv_x', 'y\u0000z')]);
    assert.deepEqual(split.map((rows) => rows.map((found) => found.id)), [['pv_x\u0000y'], ['pv_x']]);
    // Reads asked just before the database is closed are answered, not left hanging.
    const asked = [versionById(database.db, 'pv_2'), versionById(database.db, 'pv_3')];
    await database.close();
    assert.deepEqual(await Promise.all(asked), [[{ id: 'pv_2', version: '2' }], [{ id: 'pv_3', version: '3' }]]);
  });
});

test('SQLite: rows inserted by prepared statement inside a transaction commit and roll back with it; outside one nothing is written', async () => {
  await withSqliteDatabase(async (database) => {
    const columns = ['id', 'version', 'hash', 'effective_date', 'document', 'recorded_at'] as const;
    const quoted = (id: string) => policyVersionRow(id, id, '{"quote":"it\'s"}');
    assert.equal(insertRowsInSqliteTransaction(database.db, 'policy_versions', columns, [quoted('outside')]), false, 'the root instance is no transaction');
    await database.db.transaction().execute(async (trx) => {
      assert.equal(insertRowsInSqliteTransaction(trx, 'policy_versions', columns, [quoted('kept_1'), quoted('kept_2')]), true);
    });
    await assert.rejects(
      database.db.transaction().execute(async (trx) => {
        insertRowsInSqliteTransaction(trx, 'policy_versions', columns, [quoted('rolled_back')]);
        // The same key again: the statement fails, and the transaction takes the first row with it.
        insertRowsInSqliteTransaction(trx, 'policy_versions', columns, [quoted('kept_1')]);
      }),
      /UNIQUE constraint failed/,
    );
    const stored = await database.db.selectFrom('policy_versions').select(['id', 'document']).orderBy('id').execute();
    assert.deepEqual(stored, [{ id: 'kept_1', document: '{"quote":"it\'s"}' }, { id: 'kept_2', document: '{"quote":"it\'s"}' }]);
  });
});

test('SQLite: a write waiting for another connection\'s write lock leaves the event loop running, then goes through', async () => {
  const testDatabase = await createTestDatabase('sqlite');
  const first = openDatabase(testDatabase.url);
  const second = openDatabase(testDatabase.url);
  try {
    await migrate(first);
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let locked: () => void = () => {};
    const lockTaken = new Promise<void>((resolve) => {
      locked = resolve;
    });
    // The first connection takes the write lock and keeps it until released.
    const holder = first.db.transaction().execute(async (trx) => {
      await trx.insertInto('policy_versions').values(policyVersionRow('pv_held')).execute();
      locked();
      await held;
    });
    await lockTaken;
    const order: string[] = [];
    const waiting = second.db.transaction().execute(async (trx) => {
      order.push('second wrote');
      await trx.insertInto('policy_versions').values(policyVersionRow('pv_waited')).execute();
    });
    const audited = second.sqlite!.exclusive((connection) => {
      order.push('second appended');
      connection.prepare("insert into policy_versions (id, version, hash, effective_date, document, recorded_at) values ('pv_sync', 's', 'h', '2026-01-01', '{}', 'now')").run();
    });
    // Timers keep firing while both writes wait: the process is not frozen inside SQLite.
    for (let tick = 0; tick < 5; tick++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      order.push('timer');
    }
    assert.deepEqual(order, ['timer', 'timer', 'timer', 'timer', 'timer'], 'nothing of the second connection ran while the lock was held');
    release();
    await Promise.all([holder, waiting, audited]);
    assert.deepEqual(order.slice(5).sort(), ['second appended', 'second wrote']);
    const ids = (await first.db.selectFrom('policy_versions').select('id').orderBy('id').execute()).map((found) => found.id);
    assert.deepEqual(ids, ['pv_held', 'pv_sync', 'pv_waited']);
    // Only taking the lock does not wait; every other statement waits as busy_timeout says.
    assert.equal(await second.sqlite!.exclusive((connection) => connection.pragma('busy_timeout', { simple: true })), WRITE_LOCK_WAIT_MS);
  } finally {
    await first.close();
    await second.close();
    await testDatabase.cleanup();
  }
});

test('SQLite: a failing write inside sqlite.exclusive keeps nothing and leaves the connection usable', async () => {
  await withSqliteDatabase(async (database) => {
    await assert.rejects(
      database.sqlite!.exclusive((connection) => {
        connection.prepare("insert into policy_versions (id, version, hash, effective_date, document, recorded_at) values ('pv_x', 'x', 'h', '2026-01-01', '{}', 'now')").run();
        throw new Error('the append failed');
      }),
      /the append failed/,
    );
    assert.equal((await database.db.selectFrom('policy_versions').select('id').execute()).length, 0);
    await database.sqlite!.exclusive((connection) => connection.prepare("insert into policy_versions (id, version, hash, effective_date, document, recorded_at) values ('pv_y', 'y', 'h', '2026-01-01', '{}', 'now')").run());
    assert.deepEqual((await database.db.selectFrom('policy_versions').select('id').execute()).map((found) => found.id), ['pv_y']);
  });
});

test('SQLite: a thread of its own moves the write-ahead log into the file while the process runs', async () => {
  await withSqliteDatabase(async (database, file) => {
    const before = statSync(file).size;
    for (let index = 0; index < 100; index++) {
      await database.db.insertInto('policy_versions').values({ id: `pv_${index}`, version: String(index), hash: `h${index}`, effective_date: '2026-01-01', document: 'x'.repeat(20_000), recorded_at: 'now' }).execute();
    }
    // Two megabytes written: in the log only, until a checkpoint copies them into the file.
    assert.ok(statSync(`${file}-wal`).size > 2_000_000);
    assert.ok(statSync(file).size < before + 1_000_000, 'the writes are still in the log');
    const deadline = Date.now() + 10_000;
    while (statSync(file).size < before + 2_000_000 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(statSync(file).size >= before + 2_000_000, 'the checkpointer copied the log into the file without any commit doing it');
  });
});

test('SQLite: under reads and writes that never pause, the checkpointer still makes the log start over', async () => {
  const testDatabase = await createTestDatabase('sqlite');
  const file = testDatabase.url.slice('sqlite:'.length);
  const SQLite = loadSqlite();
  const writer = new SQLite(file);
  writer.pragma('journal_mode = WAL');
  writer.pragma('synchronous = NORMAL');
  writer.pragma('journal_size_limit = 1048576');
  writer.pragma('wal_autocheckpoint = 0');
  writer.exec('create table notes (id integer primary key, body text not null)');
  const reader = new SQLite(file, { readonly: true });
  // Restarts with a 2 MB log here (4 KB pages); the log file is cut back to 1 MB when it starts over.
  const checkpointer = startCheckpointer(file, 20, () => {}, 512);
  try {
    const insert = writer.prepare('insert into notes (body) values (?)');
    const latest = reader.prepare('select id from notes order by id desc limit 1');
    const writeSome = writer.transaction(() => {
      for (let row = 0; row < 5; row++) insert.run('x'.repeat(4000));
    });
    let written = 0;
    let largest = 0;
    while (written < 24 * 1024 * 1024) {
      writeSome();
      written += 5 * 4000;
      latest.get();
      largest = Math.max(largest, statSync(`${file}-wal`).size);
      // A busy server's pace: a group commit every millisecond or so.
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    assert.ok(largest < 8 * 1024 * 1024, `the log stayed short while 24 MB went through it (largest: ${largest} bytes)`);
  } finally {
    await checkpointer.stop();
    reader.close();
    writer.close();
    await testDatabase.cleanup();
  }
});

test('SQLite: a checkpointer thread that cannot work says so, so the automatic checkpoint takes over again', async () => {
  let failed = false;
  const checkpointer = startCheckpointer('/nonexistent/pledge.db', 50, () => {
    failed = true;
  });
  const deadline = Date.now() + 10_000;
  while (!failed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(failed, true);
  await checkpointer.stop();
});

test('ping is false when the database server cannot be reached', async () => {
  // Nothing listens on port 1 of the loopback: the connection is refused at once.
  const database = openDatabase('postgres://pledge@127.0.0.1:1/pledge');
  try {
    assert.equal(await ping(database), false);
  } finally {
    await database.close();
  }
});

test('a batched lookup runs the statement once per row of its parameter arrays, tagged with the caller', () => {
  const text = 'select "id" from "policy_versions" where "version" = $1 and "hash" = $2';
  assert.equal(
    batchedLookupSql(text, 2),
    'select k.ordinality::int4 as pledge_batch_ordinal, q.* from unnest($1::text[], $2::text[]) with ordinality as k(p1, p2, ordinality) cross join lateral (select "id" from "policy_versions" where "version" = k.p1 and "hash" = k.p2) as q',
  );
});
