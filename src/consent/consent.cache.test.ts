import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { createTestDatabase, temporaryDirectory, testDialects, type TestDatabase } from '../../test/support/databases.js';
import { until } from '../../test/support/wait.js';
import { loadConfig } from '../core/config.js';
import { LISTENER_APPLICATION_NAME, openDatabase, type Database } from '../core/db.js';
import { createLogger } from '../core/logger.js';
import { FENCE_TIMEOUT_MS } from '../core/pg-changes.js';
import { createEngine, type Engine } from '../engine.js';
import { ConsentStateCache, type RecordedState } from './consent.cache.js';
import { consentStore } from './consent.store.js';

/**
 * PostgreSQL: each process remembers the consent states it read and answers from memory only
 * behind a fence on its listening connection. Two engines on one database stand for two
 * `pledge serve` processes (each has its own pool and listening connection).
 */
describe('consent states remembered on PostgreSQL', { skip: testDialects().includes('postgres') ? undefined : 'PLEDGE_TEST_POSTGRES_URL is not set' }, () => {
  let database: TestDatabase;
  let directory: { path: string; remove(): void };
  let one: Engine;
  let two: Engine;
  let admin: pg.Client;
  let subjects: string[];
  let env: NodeJS.ProcessEnv;
  const system = { type: 'system' as const, id: 'test' };

  before(async () => {
    database = await createTestDatabase('postgres');
    directory = temporaryDirectory('pledge-consent-cache-');
    env = {
      PLEDGE_MASTER_KEY: randomBytes(32).toString('hex'),
      PLEDGE_DATA_DIR: path.join(directory.path, 'data'),
      PLEDGE_POLICY: path.resolve('examples/demo/pledge.yaml'),
      PLEDGE_DATABASE_URL: database.url,
    };
    one = await createEngine(loadConfig(env).config, { logger: createLogger('silent') });
    two = await createEngine(loadConfig(env).config, { logger: createLogger('silent') });
    subjects = (await one.subjects.createMany(system, Array.from({ length: 3 }, () => ({ kinds: ['customer'] })))).map((subject) => subject.id);
    admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
  });
  after(async () => {
    await admin.end();
    await one.close();
    await two.close();
    await database.cleanup();
    directory.remove();
  });

  const allowed = async (engine: Engine, subject: string) => (await engine.consent.decision(subject, 'marketing')).allowed;
  const choose = (engine: Engine, subject: string, action: 'granted' | 'withdrawn') => engine.consent.record(system, { holder: subject, source: 'api', choices: [{ purpose: 'marketing', action }] });
  /** Asks until the process answers from memory (its listening connection is up and the state remembered). */
  const remembered = async (engine: Engine, subject: string): Promise<boolean> => {
    for (let attempt = 0; attempt < 100; attempt++) {
      const hits = engine.consent.cachedDecisions;
      const answer = await allowed(engine, subject);
      if (engine.consent.cachedDecisions > hits) return answer;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.fail('the decision was never answered from memory');
  };

  test('a change made through one process is the answer of the other on its next question, every time', async () => {
    const [subject] = subjects as [string];
    let expected = false;
    for (let round = 0; round < 200; round++) {
      // The other process has the current state in memory before each change.
      assert.equal(await remembered(two, subject), expected, `round ${round}: remembered`);
      expected = round % 2 === 0;
      await choose(one, subject, expected ? 'granted' : 'withdrawn');
      assert.equal(await allowed(two, subject), expected, `round ${round}: the question right after the change`);
    }
  });

  test('a change made with plain SQL, and a truncation, are heard too', async () => {
    const [, subject] = subjects as [string, string];
    await choose(one, subject, 'granted');
    assert.equal(await remembered(two, subject), true);
    await admin.query(`update consent_state set action = 'withdrawn' where holder = $1 and target = 'marketing'`, [subject]);
    assert.equal(await allowed(two, subject), false);
    await admin.query(`update consent_state set action = 'granted' where holder = $1 and target = 'marketing'`, [subject]);
    assert.equal(await remembered(two, subject), true);
    await admin.query('truncate consent_state');
    assert.equal(await allowed(two, subject), false, 'nothing recorded: marketing needs consent');
    assert.equal((await two.consent.decision(subject, 'marketing')).decision, null);
  });

  test('one statement changing the states of hundreds of people makes each of them forgotten', async () => {
    const visitors = Array.from({ length: 450 }, () => two.consent.newVisitorId());
    for (const visitor of visitors) assert.equal((await two.consent.decision(visitor, 'marketing')).decision, null);
    const hits = two.consent.cachedDecisions;
    assert.equal((await two.consent.decision(visitors[0]!, 'marketing')).decision, null);
    assert.equal(two.consent.cachedDecisions, hits + 1, 'the states are remembered');
    await admin.query(
      `insert into consent_state (holder, target_kind, target, action, source, policy_version, event_id, decided_at)
       select v, 'purpose', 'marketing', 'granted', 'import', '1.0', 'cns_' || md5(v), $2 from unnest($1::text[]) as v`,
      [visitors, new Date().toISOString()],
    );
    for (const visitor of visitors) assert.equal((await two.consent.decision(visitor, 'marketing')).decision, 'granted', visitor);
  });

  test('while its listening connection is lost, a process reads the database; once back, it remembers again', async () => {
    const [, , subject] = subjects as [string, string, string];
    await choose(one, subject, 'granted');
    assert.equal(await remembered(two, subject), true);
    assert.equal(await remembered(one, subject), true);
    // Both engines' listening connections are cut (this test cannot tell them apart): changes
    // made meanwhile are missed by the listeners, and must not be missed by the answers.
    const cut = await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1 and datname = current_database() and query not like 'select pg_terminate_backend%' and pid <> pg_backend_pid()`, [LISTENER_APPLICATION_NAME]);
    assert.ok(cut.rowCount! >= 2, 'the listening connections were found');
    await choose(one, subject, 'withdrawn');
    assert.equal(await allowed(two, subject), false);
    await choose(two, subject, 'granted');
    assert.equal(await allowed(one, subject), true);
    assert.equal(await remembered(two, subject), true, 'listening again, the process answers from memory');
    await choose(one, subject, 'withdrawn');
    assert.equal(await allowed(two, subject), false);
  });

  test('a listening connection that goes silent counts as lost after the fence timeout: the question reads the database', async (t) => {
    const [, subject] = subjects as [string, string];
    await choose(one, subject, 'granted');
    assert.equal(await remembered(two, subject), true);
    // The backends of both engines' listening connections stop answering (SIGSTOP: a connection
    // dropped by a firewall without a word looks the same from here).
    const { rows } = await admin.query<{ pid: number }>(`select pid from pg_stat_activity where application_name = $1 and datname = current_database()`, [LISTENER_APPLICATION_NAME]);
    assert.ok(rows.length >= 2);
    try {
      for (const { pid } of rows) process.kill(pid, 'SIGSTOP');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EPERM') return t.skip('the database server runs as another user: its processes cannot be stopped from here');
      throw error;
    }
    try {
      await choose(one, subject, 'withdrawn');
      const started = Date.now();
      assert.equal(await allowed(two, subject), false);
      assert.ok(Date.now() - started < FENCE_TIMEOUT_MS * 4, 'answered once the fence timed out');
    } finally {
      for (const { pid } of rows) process.kill(pid, 'SIGCONT');
    }
    await choose(one, subject, 'granted');
    assert.equal(await remembered(two, subject), true, 'listening again on a new connection');
  });

  for (const [setting, listenUrl] of [
    ['off', () => 'off'],
    ['a connection to another database', () => Object.assign(new URL(database.url), { pathname: '/postgres' }).toString()],
  ] as const) {
    test(`with PLEDGE_DATABASE_LISTEN_URL set to ${setting}, every decision is read from the database`, async () => {
      const [subject] = subjects as [string];
      const reading = await createEngine(loadConfig({ ...env, PLEDGE_DATABASE_LISTEN_URL: listenUrl() }).config, { logger: createLogger('silent') });
      try {
        for (const action of ['granted', 'withdrawn', 'granted'] as const) {
          await choose(one, subject, action);
          for (let question = 0; question < 20; question++) {
            assert.equal(await allowed(reading, subject), action === 'granted');
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        }
        assert.equal(reading.consent.cachedDecisions, 0);
      } finally {
        await reading.close();
      }
    });
  }

  describe('a read that was out while a change came', () => {
    let own: Database;
    before(() => {
      own = openDatabase(database.url);
    });
    after(() => own.close());

    test('is answered but not remembered: the next question reads the database again', async () => {
      const [subject] = subjects as [string];
      await choose(one, subject, 'granted');
      let interfere = false;
      let reads = 0;
      let generation = 0;
      const cache = new ConsentStateCache(own.changes!, async (holder, kind, target): Promise<RecordedState | undefined> => {
        reads++;
        const state = await consentStore.stateOf(own.db, holder, kind, target);
        if (interfere) {
          // The state moves after this read saw it, and the listener hears of it before the read lands.
          interfere = false;
          await admin.query(`update consent_state set action = 'withdrawn', decided_at = $2 where holder = $1 and target = 'marketing'`, [holder, new Date().toISOString()]);
          await until(() => cache.changes.generation !== generation, 5_000, 'the listener to hear the change', 5);
        }
        return state;
      });
      // Let the listener start, then note its generation to see a change arrive.
      await cache.stateOf(subject, 'purpose', 'marketing');
      await until(() => cache.changes.isListening(), 5_000, 'the listener to listen', 5);
      generation = cache.changes.generation;
      interfere = true;
      const stale = await cache.stateOf(subject, 'purpose', 'marketing');
      assert.equal(stale?.action, 'granted', 'the read answers what it saw');
      const readsBefore = reads;
      const next = await cache.stateOf(subject, 'purpose', 'marketing');
      assert.equal(next?.action, 'withdrawn', 'and the next question is not answered from the stale read');
      assert.equal(reads, readsBefore + 1);
    });
  });
});

