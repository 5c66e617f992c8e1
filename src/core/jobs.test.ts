import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTestDatabase, testDialects, type TestDatabase } from '../../test/support/databases.js';
import { manualClock } from './clock.js';
import { migrate, openDatabase, type Database } from './db.js';
import { PledgeError } from './errors.js';
import { backoffDelay, JobRunner, PermanentJobError, type Job } from './jobs.js';

test('backoff doubles from the base, is capped, and jitters within ±20 %', () => {
  assert.equal(backoffDelay(1, 1000, 60_000, () => 0.5), 1000);
  assert.equal(backoffDelay(2, 1000, 60_000, () => 0.5), 2000);
  assert.equal(backoffDelay(4, 1000, 60_000, () => 0.5), 8000);
  assert.equal(backoffDelay(20, 1000, 60_000, () => 0.5), 60_000);
  assert.equal(backoffDelay(1, 1000, 60_000, () => 0), 800);
  assert.equal(backoffDelay(1, 1000, 60_000, () => 1), 1200);
});

for (const dialect of testDialects()) {
  describe(`durable jobs on ${dialect}`, () => {
    let testDb: TestDatabase;
    let database: Database;
    const clock = manualClock('2026-05-01T10:00:00Z');

    before(async () => {
      testDb = await createTestDatabase(dialect);
      database = openDatabase(testDb.url);
      await migrate(database);
    });
    after(async () => {
      await database.close();
      await testDb.cleanup();
    });

    test('a job runs once, is marked done, and a dedupe key enqueues it only once', async () => {
      const runner = new JobRunner(database, clock, undefined, { owner: 'a' });
      const seen: Job[] = [];
      runner.register('t.once', { run: async (job) => void seen.push(job) });
      const first = await runner.enqueue(database.db, { kind: 't.once', payload: { thing: 'x1' }, dedupeKey: 'once:x1' });
      const again = await runner.enqueue(database.db, { kind: 't.once', payload: { thing: 'x1' }, dedupeKey: 'once:x1' });
      assert.ok(first);
      assert.equal(again, undefined);
      assert.equal(await runner.runDue(), 1);
      assert.equal(await runner.runDue(), 0);
      assert.deepEqual(seen.map((job) => [job.payload.thing, job.attempt]), [['x1', 1]]);
      assert.equal((await runner.get(first!))?.state, 'done');
    });

    test('a job not yet due waits; a failing job is retried with backoff, then exhausted once', async () => {
      const runner = new JobRunner(database, clock, undefined, { owner: 'b', backoffMs: 1000, maxBackoffMs: 10_000 });
      let failures = 0;
      const exhausted: string[] = [];
      runner.register('t.flaky', {
        run: async () => {
          failures++;
          throw new PledgeError('datastore_unavailable', 'down');
        },
        exhausted: async (_job, code) => void exhausted.push(code),
      });
      const id = (await runner.enqueue(database.db, { kind: 't.flaky', payload: {}, maxAttempts: 3, runAt: new Date(clock.now().getTime() + 5000) }))!;
      assert.equal(await runner.runDue(), 0, 'not due yet');
      clock.advance(5000);
      assert.equal(await runner.runDue(), 1);
      let row = (await runner.get(id))!;
      assert.equal(row.state, 'queued');
      assert.equal(row.last_error, 'datastore_unavailable');
      assert.ok(row.run_at > clock.now().toISOString(), 'the retry waits for its backoff');
      assert.equal(await runner.runDue(), 0);
      clock.advance(1300);
      assert.equal(await runner.runDue(), 1);
      clock.advance(2500);
      assert.equal(await runner.runDue(), 1);
      row = (await runner.get(id))!;
      assert.equal(row.state, 'failed');
      assert.equal(row.attempts, 3);
      assert.equal(failures, 3);
      assert.deepEqual(exhausted, ['datastore_unavailable']);
      clock.advance(60_000);
      assert.equal(await runner.runDue(), 0, 'a failed job stays failed');
    });

    test('done jobs are purged after their keeping period; failed ones stay', async () => {
      const runner = new JobRunner(database, clock, undefined, { owner: 'purge' });
      runner.register('t.purge', { run: async () => {} });
      const id = (await runner.enqueue(database.db, { kind: 't.purge', payload: {} }))!;
      await runner.runDue();
      await runner.purgeDone(new Date(clock.now().getTime() - 1000));
      assert.equal((await runner.get(id))?.state, 'done', 'kept while recent');
      clock.advance(2000);
      assert.ok((await runner.purgeDone(new Date(clock.now().getTime() - 1000))) >= 1);
      assert.equal(await runner.get(id), undefined);
      assert.ok((await database.db.selectFrom('jobs').select('id').where('state', '=', 'failed').execute()).length >= 1);
    });

    test('a permanent error fails at once', async () => {
      const runner = new JobRunner(database, clock, undefined, { owner: 'c' });
      runner.register('t.permanent', {
        run: async () => {
          throw new PermanentJobError('bad_payload');
        },
      });
      const id = (await runner.enqueue(database.db, { kind: 't.permanent', payload: {} }))!;
      await runner.runDue();
      const row = (await runner.get(id))!;
      assert.equal(row.state, 'failed');
      assert.equal(row.attempts, 1);
      assert.equal(row.last_error, 'bad_payload');
    });

    test('a job whose process died is claimed again once its lease runs out, and the dead owner cannot complete it', async () => {
      const dead = new JobRunner(database, clock, undefined, { owner: 'dead', leaseMs: 30_000 });
      const alive = new JobRunner(database, clock, undefined, { owner: 'alive', leaseMs: 30_000 });
      const ran: string[] = [];
      dead.register('t.lease', { run: async () => void ran.push('dead') });
      alive.register('t.lease', { run: async () => void ran.push('alive') });
      const id = (await dead.enqueue(database.db, { kind: 't.lease', payload: {} }))!;
      const claimed = await dead.claim();
      assert.equal(claimed?.id, id);
      // The owner "dies" here: it never completes.
      assert.equal(await alive.runDue(), 0, 'the lease still holds');
      clock.advance(30_001);
      assert.equal(await alive.runDue(), 1);
      assert.deepEqual(ran, ['alive']);
      const row = (await alive.get(id))!;
      assert.equal(row.state, 'done');
      assert.equal(row.attempts, 2);
      assert.equal(await dead.complete(claimed!), false, 'a process that lost its lease cannot complete the job');
    });

    test('periodic jobs are enqueued once per period however many runners poll', async () => {
      const runs: string[] = [];
      const one = new JobRunner(database, clock, undefined, { owner: 'p1', pollMs: 10 });
      const two = new JobRunner(database, clock, undefined, { owner: 'p2', pollMs: 10 });
      for (const runner of [one, two]) {
        runner.register('t.every', { run: async () => void runs.push('tick') });
        runner.every('t.every', 60_000);
        runner.start();
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      await Promise.all([one.stop(), two.stop()]);
      assert.deepEqual(runs, ['tick']);
    });

    test('two runners with their own connections never run the same job twice', async () => {
      const otherConnection = openDatabase(testDb.url);
      try {
        const runs = new Map<string, number>();
        const make = (db: Database, owner: string) => {
          const runner = new JobRunner(db, clock, undefined, { owner });
          runner.register('t.race', {
            run: async (job) => {
              runs.set(String(job.payload.n), (runs.get(String(job.payload.n)) ?? 0) + 1);
              await new Promise((resolve) => setImmediate(resolve));
            },
          });
          return runner;
        };
        const a = make(database, 'race-a');
        const b = make(otherConnection, 'race-b');
        const total = 60;
        for (let n = 0; n < total; n++) await a.enqueue(database.db, { kind: 't.race', payload: { n } });
        const [ranA, ranB] = await Promise.all([a.runDue(), b.runDue()]);
        assert.equal(ranA + ranB, total);
        assert.equal(runs.size, total);
        assert.ok([...runs.values()].every((count) => count === 1), 'every job ran exactly once');
        const states = await database.db.selectFrom('jobs').select(['state', 'lease_owner']).where('kind', '=', 't.race').execute();
        assert.ok(states.every((row) => row.state === 'done' && row.lease_owner === null));
      } finally {
        await otherConnection.close();
      }
    });
  });
}
