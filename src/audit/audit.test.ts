import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { createTestDatabase, testDialects, type TestDatabase } from '../../test/support/databases.js';
import { UsageError, type CommandIO } from '../cli/io.js';
import { manualClock, type ManualClock } from '../core/clock.js';
import { migrate, openDatabase, type Database } from '../core/db.js';
import { isPledgeError } from '../core/errors.js';
import { Keyring } from '../core/keyring.js';
import type { Actor } from '../staff/permissions.js';
import { entryMiddle, entryRowJson, GENESIS_HASH, hashEntry, linksTo, serializeEntry, signCheckpoint, signingKeyFromSeed, validateAuditEvent } from './audit.chain.js';
import { auditVerifyCommand } from './audit.commands.js';
import { AuditService, type AuditProblem, type AuditVerifyResult } from './audit.service.js';
import type { AuditEvent } from './audit.types.js';
import { auditStore } from './audit.store.js';
import { appendWorkload } from './audit.test-worker.js';

const WORKER = fileURLToPath(new URL('./audit.test-worker.js', import.meta.url));

/** Starts audit.test-worker.js; `ready` resolves once it is connected, `go()` lets it append, `done` gives its last stdout line. */
function startWorker(args: string[]): { ready: Promise<void>; go(): void; done: Promise<string> } {
  const child = spawn(process.execPath, [WORKER, ...args], { stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
  let stdout = '';
  let stderr = '';
  let signalReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    signalReady = resolve;
  });
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (stdout.startsWith('ready\n')) signalReady();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<string>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      signalReady();
      if (code === 0) resolve(stdout.trim().split('\n').pop() ?? '');
      else reject(new Error(`audit worker exited with ${code}: ${stderr}`));
    });
  });
  done.catch(() => {}); // awaited by the test; this only keeps an early failure from being reported as unhandled
  return { ready, go: () => child.stdin.end('go\n'), done };
}

const staff: Actor = { type: 'staff', id: 'stf_01jd3xq8m2v7k9r4t6w8y0z2b4', role: 'support' };

function event(index: number): AuditEvent {
  return {
    actor: staff,
    action: index % 3 === 0 ? 'data.write' : 'data.read',
    target: { type: 'subject', id: `sub_${String(index).padStart(26, '0')}` },
    purpose: 'support',
    details: { categories: ['user.contact.email', 'user.name'], count: index, justified: true, ticket: null },
  };
}

/** What a verification counted, without where it ended (head, unsigned). */
function verifiedCounts(result: AuditVerifyResult): Pick<AuditVerifyResult, 'ok' | 'entries' | 'checkpoints'> {
  return { ok: result.ok, entries: result.entries, checkpoints: result.checkpoints };
}

function bufferIO(): CommandIO & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, cwd: process.cwd(), out: (text) => stdout.push(text), err: (text) => stderr.push(text) };
}

for (const dialect of testDialects()) {
  describe(`audit chain on ${dialect}`, () => {
    let testDatabase: TestDatabase;
    let database: Database;
    let keyring: Keyring;
    let clock: ManualClock;
    let audit: AuditService;
    const masterKey = randomBytes(32);

    before(async () => {
      testDatabase = await createTestDatabase(dialect);
      database = openDatabase(testDatabase.url);
      await migrate(database);
      clock = manualClock('2026-03-01T09:00:00Z');
      keyring = await Keyring.open(database, masterKey, [], clock);
      audit = new AuditService(database, keyring, clock, { checkpointEvery: 10, checkpointIntervalMs: 0 });
    });
    after(async () => {
      await audit.close();
      await database.close();
      await testDatabase.cleanup();
    });

    /** Empties the chain and writes `count` entries in batches of varied size, through both write paths. */
    async function freshChain(count = 50): Promise<void> {
      await database.db.deleteFrom('audit_entries').execute();
      await database.db.deleteFrom('audit_checkpoints').execute();
      await database.db.updateTable('audit_head').set({ seq: 0, hash: GENESIS_HASH }).where('id', '=', 1).execute();
      let written = 0;
      let size = 1;
      while (written < count) {
        const events = Array.from({ length: Math.min(size, count - written) }, (_, i) => event(written + i + 1));
        if (size % 2) await audit.record(events);
        else await database.db.transaction().execute((trx) => audit.appendWithin(trx, events));
        written += events.length;
        size = (size % 7) + 1;
        clock.advance(1000);
      }
    }

    /** Verifies with the default batch size and with a tiny one (every batch boundary), which must agree. */
    async function verifyBoth(): Promise<AuditVerifyResult> {
      const whole = await audit.verify();
      const batched = await audit.verify({ batchSize: 7 });
      assert.deepEqual(batched, whole, 'batch size changes nothing');
      return whole;
    }

    async function expectProblem(seq: number, problem: AuditProblem): Promise<AuditVerifyResult> {
      const result = await verifyBoth();
      assert.equal(result.ok, false, 'verification fails');
      assert.deepEqual({ seq: result.firstProblem?.seq, problem: result.firstProblem?.problem }, { seq, problem }, result.firstProblem?.message);
      return result;
    }

    async function entryRow(seq: number) {
      return database.db.selectFrom('audit_entries').selectAll().where('seq', '=', seq).executeTakeFirstOrThrow();
    }

    test('an untouched chain verifies: contiguous seqs, links, checkpoints every 10 entries', async () => {
      await freshChain(50);
      const result = await verifyBoth();
      assert.deepEqual(verifiedCounts(result), { ok: true, entries: 50, checkpoints: 5 });
      const seqs = (await database.db.selectFrom('audit_entries').select('seq').orderBy('seq').execute()).map((row) => row.seq);
      assert.deepEqual(seqs, Array.from({ length: 50 }, (_, i) => i + 1));
      assert.equal(typeof seqs[0], 'number', 'seq comes back as a number');
      const checkpoints = await audit.listCheckpoints();
      assert.deepEqual(checkpoints.map((checkpoint) => checkpoint.seq), [10, 20, 30, 40, 50]);
      assert.equal(checkpoints[0]!.hash, (await entryRow(10)).hash);
      assert.equal(checkpoints[0]!.keyId, audit.keyId);
      const first = await entryRow(1);
      assert.equal(first.prev_hash, GENESIS_HASH);
      assert.match(first.id, /^aud_[0-9a-z]{26}$/);
      assert.equal(first.details, '{"categories":["user.contact.email","user.name"],"count":1,"justified":true,"ticket":null}', 'details are canonical JSON');
      assert.deepEqual(await database.db.selectFrom('audit_head').select(['seq', 'hash']).executeTakeFirst(), { seq: 50, hash: (await entryRow(50)).hash });
    });

    test('entries with quotes, backslashes and non-ASCII text hash alike however they are read back', async () => {
      await freshChain(0);
      await audit.record([
        { actor: { type: 'system', id: 'import/ünïcödé' }, action: 'data.import', target: { type: 'subject', id: 'sub_😀_\u2028' }, details: { quote: 'a"b\\c', slash: '/x/', emoji: '✓😀', mixed: ['\u2029', 'é'] } },
      ]);
      assert.deepEqual(verifiedCounts(await verifyBoth()), { ok: true, entries: 1, checkpoints: 0 });
      const row = await entryRow(1);
      assert.equal(hashEntry(row), row.hash);
      assert.deepEqual((await audit.list()).entries[0]!.details, { emoji: '✓😀', mixed: ['\u2029', 'é'], quote: 'a"b\\c', slash: '/x/' });
    });

    test('an empty chain verifies', async () => {
      await freshChain(0);
      assert.deepEqual(verifiedCounts(await verifyBoth()), { ok: true, entries: 0, checkpoints: 0 });
    });

    test('a changed details or action value: hash_mismatch at that entry', async () => {
      await freshChain();
      await sql`update audit_entries set details = ${'{"categories":["user.financial"],"count":17,"justified":true,"ticket":null}'} where seq = ${17}`.execute(database.db);
      const result = await expectProblem(17, 'hash_mismatch');
      assert.equal(result.entries, 16);
      await freshChain();
      await sql`update audit_entries set action = ${'data.export'} where seq = ${33}`.execute(database.db);
      await expectProblem(33, 'hash_mismatch');
      await freshChain();
      await sql`update audit_entries set actor_id = ${'stf_someoneelse'} where seq = ${1}`.execute(database.db);
      await expectProblem(1, 'hash_mismatch');
    });

    test('a deleted middle entry: missing_entry at its seq', async () => {
      await freshChain();
      await sql`delete from audit_entries where seq = ${25}`.execute(database.db);
      await expectProblem(25, 'missing_entry');
      await freshChain();
      await sql`delete from audit_entries where seq = ${1}`.execute(database.db);
      await expectProblem(1, 'missing_entry');
    });

    test('a forged entry inserted in the middle (later entries shifted up, head moved): hash_mismatch at the entry after it', async () => {
      await freshChain();
      // Make room at 25: move 25…50 to 26…51 in two steps (no transient primary-key clash).
      await sql`update audit_entries set seq = seq + 1000 where seq >= ${25}`.execute(database.db);
      await sql`update audit_entries set seq = seq - 999 where seq >= ${1000}`.execute(database.db);
      const forged = { ...(await entryRow(26)), seq: 25, id: 'aud_forged', prev_hash: (await entryRow(24)).hash, details: '{"count":0}' };
      forged.hash = hashEntry(forged);
      await database.db.insertInto('audit_entries').values(forged).execute();
      await sql`update audit_head set seq = ${51} where id = 1`.execute(database.db);
      // The forgery itself hashes and links correctly; the shifted original entry 25, now at
      // 26, hashed its own seq (25), so it no longer matches.
      await expectProblem(26, 'hash_mismatch');
    });

    test('a forged entry appended past the head: unexpected_entry', async () => {
      await freshChain();
      const forged = { ...(await entryRow(50)), seq: 51, id: 'aud_forged', prev_hash: (await entryRow(50)).hash };
      forged.hash = hashEntry(forged);
      await database.db.insertInto('audit_entries').values(forged).execute();
      await expectProblem(51, 'unexpected_entry');
    });

    test('two entries swapped: hash_mismatch at the lower seq', async () => {
      await freshChain();
      await sql`update audit_entries set seq = ${-1} where seq = ${12}`.execute(database.db);
      await sql`update audit_entries set seq = ${12} where seq = ${13}`.execute(database.db);
      await sql`update audit_entries set seq = ${13} where seq = ${-1}`.execute(database.db);
      await expectProblem(12, 'hash_mismatch');
    });

    test('a truncated tail: head_mismatch at the first removed entry', async () => {
      await freshChain();
      await sql`delete from audit_entries where seq > ${45}`.execute(database.db);
      const result = await expectProblem(46, 'head_mismatch');
      assert.equal(result.entries, 45);
    });

    test('a truncated tail with the head moved back: the later signed checkpoint reports missing_entry', async () => {
      await freshChain();
      await sql`delete from audit_entries where seq > ${45}`.execute(database.db);
      await database.db.updateTable('audit_head').set({ seq: 45, hash: (await entryRow(45)).hash }).where('id', '=', 1).execute();
      await expectProblem(46, 'missing_entry');
    });

    test('a tail cut back, with the head, to after the last checkpoint verifies: the report names the unsigned entries, and --expect catches the cut', async () => {
      await freshChain(47);
      const before = await verifyBoth();
      assert.deepEqual(before.head, { seq: 47, hash: (await entryRow(47)).hash });
      assert.deepEqual(before.unsigned, { fromSeq: 41, toSeq: 47, lastCheckpointSeq: 40 }, 'entries 41–47 are not covered by a signature');
      assert.deepEqual((await audit.verify({ fromSeq: 45 })).unsigned, { fromSeq: 41, toSeq: 47, lastCheckpointSeq: 40 }, 'also when verifying from past the checkpoint');

      await sql`delete from audit_entries where seq > ${43}`.execute(database.db);
      await database.db.updateTable('audit_head').set({ seq: 43, hash: (await entryRow(43)).hash }).where('id', '=', 1).execute();
      const cut = await verifyBoth();
      assert.equal(cut.ok, true, 'the chain alone cannot show this cut');
      assert.deepEqual(cut.unsigned, { fromSeq: 41, toSeq: 43, lastCheckpointSeq: 40 });

      const expect = before.head!;
      const caught = await audit.verify({ expect });
      assert.deepEqual({ ok: caught.ok, ...caught.firstProblem, message: undefined }, { ok: false, seq: 47, problem: 'missing_entry', message: undefined });
      await database.db.transaction().execute((trx) => audit.appendWithin(trx, [event(1), event(2), event(3), event(4)]));
      const rewritten = await audit.verify({ expect });
      assert.equal(rewritten.firstProblem?.problem, 'expected_mismatch', 'entries written again up to the same seq have other hashes');

      const engine = async () => ({ audit, close: async () => {} });
      const io = bufferIO();
      assert.equal(await auditVerifyCommand(['--expect', `${expect.seq}:${expect.hash}`], io, engine), 1);
      assert.match(io.stderr.join('\n'), /^audit chain broken at entry 47: expected_mismatch/);
      await freshChain(25);
      const intact = bufferIO();
      assert.equal(await auditVerifyCommand([], intact, engine), 0);
      assert.match(intact.stdout.join('\n'), /not yet signed: entries 21–25, after the last signed checkpoint \(entry 20\);.* --expect 25:[A-Za-z0-9_-]{43}$/);
      await assert.rejects(auditVerifyCommand(['--expect', '25'], bufferIO(), engine), UsageError);
    });

    test('a head whose hash differs from the last entry: head_mismatch at the last entry', async () => {
      await freshChain();
      await database.db.updateTable('audit_head').set({ hash: GENESIS_HASH }).where('id', '=', 1).execute();
      await expectProblem(50, 'head_mismatch');
    });

    test("an altered checkpoint hash: checkpoint_mismatch; an altered signature or key id: bad_signature", async () => {
      await freshChain();
      await sql`update audit_checkpoints set hash = ${(await entryRow(19)).hash} where seq = ${20}`.execute(database.db);
      await expectProblem(20, 'checkpoint_mismatch');

      await freshChain();
      const tenth = await database.db.selectFrom('audit_checkpoints').select('signature').where('seq', '=', 10).executeTakeFirstOrThrow();
      await sql`update audit_checkpoints set signature = ${tenth.signature} where seq = ${20}`.execute(database.db);
      await expectProblem(20, 'bad_signature');

      await freshChain();
      await sql`update audit_checkpoints set signature = ${'not-a-signature'} where seq = ${30}`.execute(database.db);
      await expectProblem(30, 'bad_signature');

      await freshChain();
      await sql`update audit_checkpoints set key_id = ${'000000000000'} where seq = ${40}`.execute(database.db);
      await expectProblem(40, 'bad_signature');
    });

    test('a checkpoint signed with another key: bad_signature', async () => {
      await freshChain();
      const other = signingKeyFromSeed(randomBytes(32));
      const row = await database.db.selectFrom('audit_checkpoints').selectAll().where('seq', '=', 30).executeTakeFirstOrThrow();
      await sql`update audit_checkpoints set signature = ${signCheckpoint(other, 30, row.hash)} where seq = ${30}`.execute(database.db);
      await expectProblem(30, 'bad_signature');
    });

    test("a forged entry with its own hash recomputed: broken_link at the next entry", async () => {
      await freshChain();
      const forged = { ...(await entryRow(30)), details: '{"count":0}' };
      forged.hash = hashEntry(forged);
      await sql`update audit_entries set details = ${forged.details}, hash = ${forged.hash} where seq = ${30}`.execute(database.db);
      // Its checkpoint (30) would catch it too; drop it to show the link check on its own.
      await sql`delete from audit_checkpoints where seq = ${30}`.execute(database.db);
      await expectProblem(31, 'broken_link');
    });

    test('the chain rewritten consistently from entry 15 on (head too): checkpoint_mismatch at the next checkpoint', async () => {
      await freshChain();
      let prev = (await entryRow(14)).hash;
      for (let seq = 15; seq <= 50; seq++) {
        const row = { ...(await entryRow(seq)), prev_hash: prev };
        if (seq === 15) row.details = '{"count":0}';
        row.hash = hashEntry(row);
        await sql`update audit_entries set details = ${row.details}, prev_hash = ${row.prev_hash}, hash = ${row.hash} where seq = ${seq}`.execute(database.db);
        prev = row.hash;
      }
      await database.db.updateTable('audit_head').set({ hash: prev }).where('id', '=', 1).execute();
      await expectProblem(20, 'checkpoint_mismatch');
    });

    test('verify from a seq, with progress reports', async () => {
      await freshChain(50);
      const progress: number[] = [];
      const result = await audit.verify({ fromSeq: 31, batchSize: 8, onProgress: (report) => progress.push(report.seq) });
      assert.deepEqual(verifiedCounts(result), { ok: true, entries: 20, checkpoints: 2 });
      assert.deepEqual(progress, [38, 46, 50]);
      assert.deepEqual(verifiedCounts(await audit.verify({ fromSeq: 80 })), { ok: true, entries: 0, checkpoints: 0 });
      await sql`update audit_entries set action = ${'data.export'} where seq = ${10}`.execute(database.db);
      assert.equal((await audit.verify({ fromSeq: 31 })).ok, true, 'entries before fromSeq are not verified');
    });

    test('group commit: 200 concurrent record() calls make 200 contiguous entries in fewer transactions', async () => {
      await freshChain(0);
      const before = audit.stats();
      await Promise.all(Array.from({ length: 200 }, (_, i) => audit.record([event(i + 1)])));
      const stats = audit.stats();
      assert.equal(stats.records - before.records, 200);
      assert.equal(stats.events - before.events, 200);
      const transactions = stats.transactions - before.transactions;
      assert.ok(transactions >= 1 && transactions < 200, `${transactions} transactions for 200 calls`);
      assert.deepEqual(verifiedCounts(await verifyBoth()), { ok: true, entries: 200, checkpoints: 20 });
      const counts = await database.db.selectFrom('audit_entries').select((eb) => [eb.fn.countAll().as('n'), eb.fn.max('seq').as('max')]).executeTakeFirstOrThrow();
      assert.deepEqual([Number(counts.n), Number(counts.max)], [200, 200]);
    });

    test('a batch larger than maxBatch is split into several transactions, each resolving its callers', async () => {
      await freshChain(0);
      const small = new AuditService(database, keyring, clock, { checkpointEvery: 10, checkpointIntervalMs: 0, maxBatch: 25 });
      try {
        const before = small.stats();
        await Promise.all(Array.from({ length: 40 }, (_, i) => small.record([event(2 * i + 1), event(2 * i + 2)])));
        assert.ok(small.stats().transactions - before.transactions >= 4, 'at most 25 events per transaction');
      } finally {
        await small.close();
      }
      assert.deepEqual(verifiedCounts(await verifyBoth()), { ok: true, entries: 80, checkpoints: 8 });
    });

    test('with a flush delay, a full batch commits without waiting for it', async () => {
      await freshChain(0);
      const delayed = new AuditService(database, keyring, clock, { checkpointEvery: 10, checkpointIntervalMs: 0, flushDelayMs: 3_600_000, maxBatch: 10 });
      try {
        // Would hang for an hour if the full batch waited for the delay.
        await Promise.all(Array.from({ length: 5 }, (_, i) => delayed.record([event(2 * i + 1), event(2 * i + 2)])));
        assert.equal(delayed.stats().transactions, 1);
      } finally {
        await delayed.close();
      }
      assert.deepEqual(verifiedCounts(await verifyBoth()), { ok: true, entries: 10, checkpoints: 1 });
    });

    test('a record() whose transaction fails rejects, and nothing is written', async () => {
      await freshChain(0);
      const other = openDatabase(testDatabase.url);
      const failing = new AuditService(other, keyring, clock, { checkpointIntervalMs: 0 });
      await failing.record([event(1)]);
      await other.close();
      const calls = [failing.record([event(1)]), failing.record([event(2)])];
      for (const call of calls) await assert.rejects(call);
      assert.equal(failing.stats().transactions, 1);
      await failing.close();
      await assert.rejects(failing.record([event(3)]), (error: unknown) => isPledgeError(error) && error.code === 'internal');
      assert.deepEqual(verifiedCounts(await verifyBoth()), { ok: true, entries: 1, checkpoints: 0 }, 'only the entry committed before the failure');
    });

    test('close() commits what is pending before it returns', async () => {
      await freshChain(0);
      const closing = new AuditService(database, keyring, clock, { checkpointEvery: 10, flushDelayMs: 60_000 });
      let settled = false;
      const pending = closing.record([event(1), event(2)]).then(() => {
        settled = true;
      });
      await closing.close();
      assert.equal(settled, true, 'the caller was answered before close() returned');
      await pending;
      assert.deepEqual(verifiedCounts(await verifyBoth()), { ok: true, entries: 2, checkpoints: 0 });
    });

    test('appendWithin rolls back with the transaction it is in', async () => {
      await freshChain(5);
      await assert.rejects(
        database.db.transaction().execute(async (trx) => {
          await audit.appendWithin(trx, [event(6), event(7)]);
          throw new Error('the change failed');
        }),
        /the change failed/,
      );
      assert.deepEqual(verifiedCounts(await verifyBoth()), { ok: true, entries: 5, checkpoints: 0 });
      await audit.record([event(6)]);
      assert.deepEqual(verifiedCounts(await verifyBoth()), { ok: true, entries: 6, checkpoints: 0 });
    });

    test('details that could carry personal data are refused before anything is written', async () => {
      await freshChain(0);
      const refused: AuditEvent[] = [
        { ...event(1), details: { note: `Customer called about her order: ${'x'.repeat(200)}` } },
        { ...event(1), details: { contact: 'jane.doe@example.com' } },
        { ...event(1), details: { categories: ['user.name', 'y'.repeat(201)] } },
        { ...event(1), details: { nested: { name: 'Jane' } } as never },
        { ...event(1), details: { list: [1, 2] } as never },
        { ...event(1), details: { nul: 'a\u0000b' } },
        { ...event(1), details: { infinite: Number.POSITIVE_INFINITY } },
        { ...event(1), target: { type: 'subject', id: 'jane.doe@example.com' } },
        { ...event(1), action: 'Jane Doe read her file' },
        { ...event(1), purpose: 'p'.repeat(201) },
        { ...event(1), target: null as never },
      ];
      for (const bad of refused) {
        await assert.rejects(audit.record([bad]), (error: unknown) => {
          assert.ok(isPledgeError(error) && error.code === 'internal', String(error));
          assert.doesNotMatch(error.message, /jane|Customer called|Jane/i, 'the refused value is not echoed');
          return true;
        });
        await assert.rejects(database.db.transaction().execute((trx) => audit.appendWithin(trx, [event(1), bad])));
      }
      assert.doesNotThrow(() => validateAuditEvent({ actor: { type: 'system', id: 'retention' }, action: 'retention.sweep', details: { deleted: 3, categories: [], ok: true, code: 'x'.repeat(200) } }));
      assert.deepEqual(verifiedCounts(await verifyBoth()), { ok: true, entries: 0, checkpoints: 0 });
    });

    test('checkpoints: forced, on the interval when entries were added, and the public key', async () => {
      await freshChain(0);
      const timed = new AuditService(database, keyring, clock, { checkpointEvery: 1000, checkpointIntervalMs: 60_000 });
      try {
        assert.equal(await timed.checkpoint(), null, 'nothing to sign in an empty chain');
        await timed.record([event(1), event(2), event(3)]);
        assert.equal(await timed.maybeCheckpoint(), null, 'the interval has not passed');
        clock.advance(61_000);
        const checkpoint = await timed.maybeCheckpoint();
        assert.equal(checkpoint?.seq, 3);
        clock.advance(61_000);
        assert.equal(await timed.maybeCheckpoint(), null, 'no new entries since the last checkpoint');
        await timed.record([event(4)]);
        const forced = await timed.checkpoint();
        assert.equal(forced?.seq, 4);
        assert.equal(forced.keyId, audit.keyId, 'the key comes from the keyring: every instance signs with the same one');
        assert.match(timed.publicKeyPem(), /^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/);
        assert.deepEqual(verifiedCounts(await verifyBoth()), { ok: true, entries: 4, checkpoints: 2 });
      } finally {
        await timed.close();
      }
    });

    test('list pages in chain order and filters by target and action', async () => {
      await freshChain(30);
      const first = await audit.list({ limit: 12 });
      assert.deepEqual(first.entries.map((entry) => entry.seq), Array.from({ length: 12 }, (_, i) => i + 1));
      assert.equal(first.nextSeq, 13);
      const entry = first.entries[0]!;
      assert.deepEqual(
        { actor: entry.actor, action: entry.action, target: entry.target, purpose: entry.purpose, details: entry.details },
        { actor: { type: 'staff', id: staff.id }, action: 'data.read', target: { type: 'subject', id: `sub_${'1'.padStart(26, '0')}` }, purpose: 'support', details: event(1).details },
      );
      const last = await audit.list({ fromSeq: 25, limit: 500 });
      assert.deepEqual([last.entries.length, last.nextSeq], [6, null]);
      const writes = await audit.list({ action: 'data.write' });
      assert.deepEqual(writes.entries.map((item) => item.seq), [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]);
      const byTarget = await audit.list({ targetId: `sub_${'7'.padStart(26, '0')}` });
      assert.deepEqual(byTarget.entries.map((item) => item.seq), [7]);
      assert.equal((await audit.list({ limit: 10_000 })).entries.length, 30, 'the limit is capped at 500');
    });

    test('pledge audit verify: exit 0 when intact, 1 with the first problem, --json', async () => {
      await freshChain(20);
      const engine = async () => ({ audit, close: async () => {} });
      const io = bufferIO();
      assert.equal(await auditVerifyCommand([], io, engine), 0);
      assert.match(io.stdout.join('\n'), /^audit chain intact: 20 entries, 2 signed checkpoints/);
      const json = bufferIO();
      assert.equal(await auditVerifyCommand(['--json'], json, engine), 0);
      assert.deepEqual(JSON.parse(json.stdout.join('')).entries, 20);
      await sql`update audit_entries set action = ${'data.export'} where seq = ${12}`.execute(database.db);
      const broken = bufferIO();
      assert.equal(await auditVerifyCommand([], broken, engine), 1);
      assert.match(broken.stderr.join('\n'), /^audit chain broken at entry 12: hash_mismatch — entry 12 /);
      const brokenJson = bufferIO();
      assert.equal(await auditVerifyCommand(['--json'], brokenJson, engine), 1);
      assert.deepEqual(JSON.parse(brokenJson.stdout.join('')).firstProblem.seq, 12);
      await assert.rejects(auditVerifyCommand(['--from', 'abc'], bufferIO(), engine), UsageError);
      await assert.rejects(auditVerifyCommand(['extra'], bufferIO(), engine), UsageError);
    });

    if (dialect === 'postgres') {
      test('two engines on separate connections appending concurrently keep one perfect chain', async () => {
        await freshChain(0);
        const first = openDatabase(testDatabase.url);
        const second = openDatabase(testDatabase.url);
        const a = new AuditService(first, keyring, clock, { checkpointEvery: 10, checkpointIntervalMs: 0 });
        const b = new AuditService(second, keyring, clock, { checkpointEvery: 10, checkpointIntervalMs: 0 });
        try {
          const written = await Promise.all([appendWorkload(a, first, 25, 'a'), appendWorkload(b, second, 25, 'b')]);
          assert.deepEqual(written, [200, 200]);
        } finally {
          await a.close();
          await b.close();
          await first.close();
          await second.close();
        }
        assert.deepEqual(verifiedCounts(await verifyBoth()), { ok: true, entries: 400, checkpoints: 40 });
      });

      test('an append is one statement: chained in the database (checked against Pledge\'s hashing), or after the process\'s own last head while it still is', async () => {
        await freshChain(0);
        const own = new AuditService(database, keyring, clock, { checkpointEvery: 4, checkpointIntervalMs: 0 });
        const mode = () => (own as unknown as { chainInDatabase: string }).chainInDatabase;
        const statements: string[] = [];
        const original = { appendPostgres: auditStore.appendPostgres, appendAfter: auditStore.appendAfter };
        auditStore.appendPostgres = async (...args) => {
          statements.push('chained in the database');
          return original.appendPostgres(...args);
        };
        auditStore.appendAfter = async (...args) => {
          const written = await original.appendAfter(...args);
          statements.push(written ? 'after its own head' : 'head moved');
          return written;
        };
        try {
          assert.equal(mode(), 'unchecked');
          await own.record([event(1), event(2), event(3)]);
          assert.equal(mode(), 'checked', 'the first append, checked in a transaction, turned it on');
          await Promise.all([own.record([event(4)]), own.record([event(5), { ...event(6), details: { note: 'Grüße 😀 "x" \\ \u2028' } }])]);
          await database.db.transaction().execute((trx) => own.appendWithin(trx, [event(7), event(8), event(9)]));
          // appendWithin moved the head the group commits expected: the next one finds out and chains in the database.
          await own.record([event(10)]);
          await own.record([event(11)]);
        } finally {
          Object.assign(auditStore, original);
          await own.close();
        }
        assert.deepEqual(
          statements,
          ['chained in the database', 'after its own head', 'chained in the database', 'head moved', 'chained in the database', 'chained in the database'],
          'one statement for each group commit and each appendWithin, plus one for a head that moved',
        );
        assert.deepEqual(verifiedCounts(await verifyBoth()), { ok: true, entries: 11, checkpoints: 2 });
        for (let seq = 1; seq <= 11; seq++) {
          const row = await entryRow(seq);
          assert.equal(hashEntry(row), row.hash, `entry ${seq} hashes as serializeEntry says`);
        }
      });

      test('a database that hashes other bytes is caught before anything is kept; appends go back to hashing in Pledge', async () => {
        await freshChain(2);
        const own = new AuditService(database, keyring, clock, { checkpointEvery: 10, checkpointIntervalMs: 0 });
        const original = auditStore.appendPostgres;
        // A database converting text to other bytes than UTF-8 before hashing: its hashes differ.
        auditStore.appendPostgres = async (...args) => (await original(...args)).map((link, index) => (index === 0 ? link : { ...link, hash: link.hash.split('').reverse().join('') }));
        try {
          await own.record([event(3), event(4)]);
          assert.equal((own as unknown as { chainInDatabase: string }).chainInDatabase, 'off');
          await database.db.transaction().execute((trx) => own.appendWithin(trx, [event(5)]));
        } finally {
          auditStore.appendPostgres = original;
          await own.close();
        }
        assert.deepEqual(verifiedCounts(await verifyBoth()), { ok: true, entries: 5, checkpoints: 0 }, 'the checked attempt left nothing; the entries came through the other path');
      });
    }

    test('two processes appending concurrently keep one perfect chain', async () => {
      await freshChain(0);
      const rounds = 25;
      const workers = ['one', 'two'].map((label) => startWorker([testDatabase.url, masterKey.toString('hex'), String(rounds), label]));
      await Promise.all(workers.map((worker) => worker.ready));
      for (const worker of workers) worker.go();
      const results = await Promise.all(workers.map((worker) => worker.done));
      assert.deepEqual(results.map((result) => JSON.parse(result).written), [rounds * 8, rounds * 8]);
      assert.deepEqual(verifiedCounts(await verifyBoth()), { ok: true, entries: rounds * 16, checkpoints: (rounds * 16) / 10 });
      const labels = await database.db.selectFrom('audit_entries').select('actor_id').distinct().orderBy('actor_id').execute();
      assert.deepEqual(labels.map((row) => row.actor_id), ['one', 'two']);
    });
  });
}

describe('chain serialisation and keys', () => {
  const base = {
    seq: 7,
    id: 'aud_01jd3xq8m2v7k9r4t6w8y0z2b4',
    at: '2026-01-01T00:00:00.000Z',
    actor_type: 'staff',
    actor_id: 'stf_1',
    action: 'data.read',
    target_type: null,
    target_id: null,
    purpose: null,
    details: '{}',
    prev_hash: GENESIS_HASH,
  };

  test('different entries never serialise alike: null is not "null", a boundary cannot move', () => {
    assert.notEqual(serializeEntry(base), serializeEntry({ ...base, purpose: 'null' }));
    assert.notEqual(serializeEntry({ ...base, actor_type: 'staff', actor_id: 'x' }), serializeEntry({ ...base, actor_type: 'staffx', actor_id: '' }));
    assert.notEqual(serializeEntry({ ...base, target_type: 'a","b' }), serializeEntry({ ...base, target_type: 'a', target_id: 'b' }));
    assert.equal(hashEntry(base), hashEntry({ ...base }), 'deterministic');
    assert.match(hashEntry(base), /^[A-Za-z0-9_-]{43}$/);
  });

  test('entryRowJson is the stored row, column by column, made from the text the hash covers', () => {
    const row = { ...base, target_type: 'subject', target_id: 'sub_1', details: '{"categories":["user.name"],"note":"a \\"quoted\\" code"}', hash: hashEntry(base) };
    const columns = [row.seq, row.id, row.at, row.actor_type, row.actor_id, row.action, row.target_type, row.target_id, row.purpose, row.details, row.prev_hash, row.hash];
    assert.deepEqual(JSON.parse(entryRowJson(row.seq, entryMiddle(row), row.prev_hash, row.hash)), columns);
    assert.deepEqual(JSON.parse(entryRowJson(base.seq, entryMiddle(base), base.prev_hash, 'h'))[7], null, 'a missing target stays null, not "null"');
  });

  test('a string passes validation only when both checks pass it: control characters, lone surrogates and e-mail addresses are refused', () => {
    const withDetail = (value: string): AuditEvent => ({ actor: { type: 'system', id: 'test' }, action: 'test.run', details: { value } });
    for (const fine of ['user.contact.email', 'ok \u{1F44D}', 'team@home', 'a-b_c:d']) assert.doesNotThrow(() => validateAuditEvent(withDetail(fine)), fine);
    for (const bad of ['a\u007fb', 'tab\there', 'lone \uD800 surrogate', 'x \uDC00', 'jane@example.com', 'line\nbreak']) {
      assert.throws(() => validateAuditEvent(withDetail(bad)), (error: unknown) => isPledgeError(error) && error.code === 'internal');
    }
  });

  test('linksTo reads prev_hash off the serialisation exactly', () => {
    const other = hashEntry(base);
    assert.equal(linksTo(serializeEntry(base), GENESIS_HASH), true);
    assert.equal(linksTo(serializeEntry(base), other), false);
    assert.equal(linksTo(serializeEntry({ ...base, prev_hash: other }), other), true);
    // A quote inside the field is escaped, so the text cannot fake the field boundary.
    assert.equal(linksTo(serializeEntry({ ...base, prev_hash: `x","${other}` }), other), false);
    assert.equal(linksTo(serializeEntry({ ...base, prev_hash: `${other}x` }), other), false);
  });

  test('the signing key is derived from the seed: same seed, same key', () => {
    const seed = randomBytes(32);
    const one = signingKeyFromSeed(seed);
    const two = signingKeyFromSeed(Buffer.from(seed));
    assert.equal(one.keyId, two.keyId);
    assert.match(one.keyId, /^[0-9a-f]{12}$/);
    assert.equal(signCheckpoint(one, 10, GENESIS_HASH), signCheckpoint(two, 10, GENESIS_HASH), 'Ed25519 signatures are deterministic');
    assert.notEqual(signingKeyFromSeed(randomBytes(32)).keyId, one.keyId);
    assert.throws(() => signingKeyFromSeed(randomBytes(16)));
  });
});
