import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { manualClock, type ManualClock } from '../core/clock.js';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { createEngine, type Engine } from '../engine.js';
import { rotateMasterKey } from '../subjects/keys.commands.js';
import { createTestDatabase, temporaryDirectory, testDialects, type TestDatabase, type TestDialect } from '../../test/support/databases.js';
import { startSmtpSink, type ReceivedMail, type SmtpSink } from '../../test/support/smtp.js';
import { rewrapPart } from './comms.sealing.js';
import { commsStore } from './comms.store.js';
import { writeMailPolicies } from './comms.test-support.js';

/**
 * The outbox across a master key rotation: what is queued, waiting to retry or failed when the
 * key changes is still delivered, intact, by servers that hold only the new key; and a message
 * sealed under a key no server holds any more fails on its own without holding up the others.
 */
const SYSTEM = { type: 'system', id: 'test' } as const;

/** The decoded text of a part (quoted-printable soft breaks and escapes undone). */
function decodedBody(raw: string): string {
  return raw.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_match, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** Several `pledge serve` processes (engines) over one database and one SMTP sink, each with its own keys. */
interface Shared {
  database: TestDatabase;
  directory: { path: string; remove(): void };
  policy: string;
  sink: SmtpSink;
  clock: ManualClock;
  open(masterKey: Buffer, previousMasterKeys?: readonly Buffer[], extraEnv?: NodeJS.ProcessEnv): Promise<Engine>;
  cleanup(): Promise<void>;
}

async function shared(dialect: TestDialect): Promise<Shared> {
  const database = await createTestDatabase(dialect);
  const directory = temporaryDirectory('pledge-comms-rotation-');
  const { v1 } = writeMailPolicies(directory.path);
  const sink = await startSmtpSink();
  const clock = manualClock(new Date());
  const engines: Engine[] = [];
  return {
    database,
    directory,
    policy: v1,
    sink,
    clock,
    async open(masterKey, previousMasterKeys = [], extraEnv = {}) {
      const { config } = loadConfig(
        {
          PLEDGE_MASTER_KEY: masterKey.toString('hex'),
          ...(previousMasterKeys.length > 0 ? { PLEDGE_PREVIOUS_MASTER_KEYS: previousMasterKeys.map((key) => key.toString('hex')).join(',') } : {}),
          PLEDGE_PUBLIC_URL: 'https://privacy.example.test',
          PLEDGE_SMTP_URL: sink.url,
          PLEDGE_SMTP_TIMEOUT_MS: '400',
          PLEDGE_OUTBOX_BACKOFF_MS: '1000',
          PLEDGE_OUTBOX_MAX_ATTEMPTS: '2',
          ...extraEnv,
        },
        { dataDir: path.join(directory.path, 'data'), databaseUrl: database.url, policy: v1 },
      );
      const engine = await createEngine(config, { clock, logger: createLogger('silent') });
      engines.push(engine);
      return engine;
    },
    async cleanup() {
      for (const engine of engines) await engine.close().catch(() => {});
      await sink.close();
      await database.cleanup();
      directory.remove();
    },
  };
}

async function createSubject(engine: Engine, email: string): Promise<string> {
  return (await engine.subjects.create(SYSTEM, { kinds: ['customer'], identities: [{ kind: 'email', value: email }] })).id;
}

/** The KEK each of a message's sealed values is under (`<kek id>.<wrapped>`); null when cleared. */
async function sealedUnder(engine: Engine, id: string): Promise<{ to: string | null; data: string | null }> {
  const row = await engine.database.db.selectFrom('comms_outbox').select(['to_sealed', 'data_sealed']).where('id', '=', id).executeTakeFirstOrThrow();
  const kek = (sealed: string | null) => (sealed ? sealed.slice(0, sealed.indexOf('.')) : null);
  return { to: kek(row.to_sealed), data: kek(row.data_sealed) };
}

function receivedFor(sink: SmtpSink, id: string): ReceivedMail[] {
  return sink.received.filter((mail) => mail.messageId.includes(id));
}

for (const dialect of testDialects()) {
  describe(`the outbox across a master key rotation on ${dialect}`, () => {
    let env: Shared;
    beforeEach(async () => {
      env = await shared(dialect);
    });
    afterEach(() => env?.cleanup());

    test('queued, retrying and failed mail is re-wrapped by pledge keys rotate, then delivered with its address and data by a server holding only the new key', async () => {
      const oldKey = randomBytes(32);
      const newKey = randomBytes(32);
      const { sink, clock } = env;

      // Before the rotation: a server with the old key alone queues mail of every kind.
      const before = await env.open(oldKey);
      const reader = await createSubject(before, 'reader@example.test');
      const buyer = await createSubject(before, 'buyer@example.test');
      const expected = new Map<string, { to: string; subject: string; body: string }>();
      const queue = async (engine: Engine, input: Parameters<Engine['comms']['enqueue']>[0], to: string) => {
        const { id } = await engine.comms.enqueue(input);
        expected.set(id, { to, subject: String(input.data!.subject ?? 'Your verification code'), body: String(input.data!.body ?? input.data!.code) });
        return id;
      };
      // Due in an hour: not claimed before the rotation.
      const later = new Date(clock.now().getTime() + 3_600_000).toISOString();
      const marketing = await queue(before, { topic: 'newsletter', subjectId: reader, template: 'message', data: { subject: 'Autumn titles', body: 'Ten new books for autumn.' }, idempotencyKey: 'autumn', sendAt: later }, 'reader@example.test');
      const service = await queue(before, { topic: 'order_updates', subjectId: buyer, template: 'message', data: { subject: 'Your order shipped', body: 'Order 1187 is on its way.' }, idempotencyKey: 'order-1187', sendAt: later }, 'buyer@example.test');
      const code = await queue(before, { topic: 'request_notice', to: { address: 'Visitor@Example.test', name: 'A Visitor' }, template: 'verification_code', data: { code: '482913' }, idempotencyKey: 'verify-1', sendAt: later }, 'visitor@example.test');
      // Two messages the SMTP server refused before the rotation: one waits for its second attempt, one failed for good.
      const retrying = await queue(before, { topic: 'request_notice', to: { address: 'retry@example.test' }, template: 'message', data: { subject: 'Your request', body: 'We received it.' }, idempotencyKey: 'notice-1' }, 'retry@example.test');
      const failed = await queue(before, { topic: 'order_updates', subjectId: buyer, template: 'message', data: { subject: 'Your invoice', body: 'Invoice 77 is attached.' }, idempotencyKey: 'invoice-77' }, 'buyer@example.test');
      sink.mode = 'refuse';
      try {
        assert.equal((await before.comms.deliverBatch()).retried, 2);
        // Only the invoice is due again before the rotation.
        await before.database.db.updateTable('comms_outbox').set({ next_attempt_at: clock.now().toISOString() }).where('id', '=', failed).execute();
        assert.equal((await before.comms.deliverBatch()).failed, 1);
      } finally {
        sink.mode = 'ok';
      }
      assert.equal((await before.comms.get(retrying)).status, 'queued');
      assert.equal((await before.comms.get(retrying)).attempts, 1);
      assert.equal((await before.comms.get(failed)).status, 'failed');
      assert.equal(sink.received.length, 0);

      // Every server restarted with both keys; one queues a message before the rotation (under the old key: the database still names it).
      const restarted = await env.open(newKey, [oldKey]);
      const duringRestart = await queue(restarted, { topic: 'request_notice', to: { address: 'late@example.test' }, template: 'message', data: { subject: 'Request received', body: 'Request req_1 is in.' }, idempotencyKey: 'notice-2' }, 'late@example.test');
      assert.equal((await sealedUnder(restarted, duringRestart)).to, before.keyring.kekId);
      await before.close();

      const rotator = await env.open(newKey, [oldKey]);
      const result = await rotateMasterKey(rotator, { batch: 2 });
      assert.equal(result.outboxMessages, 6, 'every message not yet delivered was re-wrapped');
      assert.equal(result.outboxRemaining, 0);
      assert.equal(result.remaining, 0);
      assert.equal(result.dataKeys, 2);
      for (const id of expected.keys()) {
        const under = await sealedUnder(rotator, id);
        assert.equal(under.data, rotator.keyring.kekId, `${id}: data under the new key`);
        assert.ok(under.to === null || under.to === rotator.keyring.kekId, `${id}: address under the new key`);
      }
      // A server that last looked at the keyring before the rotation seals what it queues now under the new key.
      const afterRotation = await queue(restarted, { topic: 'request_notice', to: { address: 'after@example.test' }, template: 'message', data: { subject: 'Request done', body: 'Request req_2 is done.' }, idempotencyKey: 'notice-3' }, 'after@example.test');
      assert.deepEqual(await sealedUnder(restarted, afterRotation), { to: rotator.keyring.kekId, data: rotator.keyring.kekId });
      assert.equal((await rotateMasterKey(rotator, { batch: 2 })).outboxMessages, 0, 'a second run finds nothing left');
      await restarted.close();
      await rotator.close();

      // The old key is dropped: a server holding only the new one sends everything.
      const fresh = await env.open(newKey);
      clock.advance(3_600_000 + 1000);
      assert.deepEqual(await fresh.comms.retryFailed(SYSTEM, [failed]), [failed]);
      const report = await fresh.comms.deliverBatch();
      assert.equal(report.delivered, expected.size, JSON.stringify(report));
      assert.deepEqual(await fresh.comms.counts(), { sent: expected.size });
      for (const [id, mail] of expected) {
        const received = receivedFor(sink, id);
        assert.equal(received.length, 1, `${id} was delivered once`);
        assert.deepEqual(received[0]!.to, [mail.to]);
        assert.ok(decodedBody(received[0]!.raw).includes(mail.body), `${id} carries its data`);
        if (id !== code) assert.deepEqual(received[0]!.headers.get('subject'), [mail.subject]);
      }
      assert.match(receivedFor(sink, code)[0]!.headers.get('to')![0]!, /A Visitor/, 'the name sealed with the address survived');
      assert.ok(receivedFor(sink, marketing)[0]!.headers.get('list-unsubscribe'), 'marketing still carries its unsubscribe link');
      await fresh.close();
    });

    test('mail a server is sending while the rotation runs is re-wrapped too: its attempt failing afterwards loses nothing, and the new key alone sends it', async () => {
      const oldKey = randomBytes(32);
      const newKey = randomBytes(32);
      const { sink, clock } = env;
      const first = await env.open(oldKey);
      const subjects = await Promise.all(Array.from({ length: 3 }, (_, index) => createSubject(first, `busy${index}@example.test`)));
      const bodies = new Map<string, string>();
      for (let index = 0; index < 30; index++) {
        const body = `message number ${index} ends here`;
        const input =
          index % 2 === 0
            ? { topic: 'order_updates', subjectId: subjects[index % subjects.length]!, template: 'message', data: { subject: `Order ${index}`, body }, idempotencyKey: `busy-${index}` }
            : { topic: 'request_notice', to: { address: `plain${index}@example.test` }, template: 'message', data: { subject: `Notice ${index}`, body }, idempotencyKey: `busy-${index}` };
        bodies.set((await first.comms.enqueue(input)).id, body);
      }
      await first.close();

      // The SMTP server accepts the connection and says nothing: the server's attempt hangs until its timeout.
      const server = await env.open(newKey, [oldKey], { PLEDGE_SMTP_TIMEOUT_MS: '1500' });
      const rotator = await env.open(newKey, [oldKey]);
      sink.mode = 'stall';
      let attemptOver = false;
      const attempt = server.comms.deliverBatch(10).finally(() => (attemptOver = true));
      const deadline = Date.now() + 5000;
      while (((await rotator.comms.counts()).sending ?? 0) < 10) {
        assert.ok(Date.now() < deadline, 'the server claimed its batch');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const result = await rotateMasterKey(rotator, { batch: 4, settleMs: 0 });
      const duringAttempt = !attemptOver;
      const report = await attempt;
      assert.ok(duringAttempt, 'the rotation ran while the messages were being sent');
      assert.equal(result.outboxMessages, 30, 'the messages being sent were re-wrapped with the others');
      assert.equal(result.remaining, 0);
      assert.equal(report.retried, 10);
      sink.mode = 'ok';
      await server.close();
      await rotator.close();

      const fresh = await env.open(newKey);
      clock.advance(60_000);
      while ((await fresh.comms.deliverBatch()).claimed > 0);
      assert.deepEqual(await fresh.comms.counts(), { sent: bodies.size });
      for (const [id, body] of bodies) {
        const received = receivedFor(sink, id);
        assert.equal(received.length, 1, `${id} was delivered once`);
        assert.ok(decodedBody(received[0]!.raw).includes(body), `${id} carries its own data`);
      }
    });

    test('a delivery that clears a message while the rotation holds an older read of it wins: the re-wrapped values are not written back', async () => {
      const oldKey = randomBytes(32);
      const newKey = randomBytes(32);
      const old = await env.open(oldKey);
      const { id } = await old.comms.enqueue({ topic: 'request_notice', to: { address: 'raced@example.test' }, template: 'message', data: { subject: 'Raced', body: 'once' }, idempotencyKey: 'raced' });
      const server = await env.open(newKey, [oldKey]);
      const read = await server.database.db.selectFrom('comms_outbox').select(['to_sealed', 'data_sealed']).where('id', '=', id).executeTakeFirstOrThrow();
      const rewrapped = { to_sealed: rewrapPart(server.keyring, id, 'to', read.to_sealed!), data_sealed: rewrapPart(server.keyring, id, 'data', read.data_sealed) };
      assert.equal((await server.comms.deliverBatch()).delivered, 1);
      assert.equal(await commsStore.replaceSealed(server.database.db, id, read, rewrapped), false);
      assert.deepEqual(await sealedUnder(server, id), { to: null, data: null }, 'nothing sealed came back after the delivery');
      // Unchanged since it was read, a message is replaced.
      const other = await server.comms.enqueue({ topic: 'request_notice', to: { address: 'calm@example.test' }, template: 'message', data: { subject: 'Calm', body: 'once' }, idempotencyKey: 'calm', sendAt: new Date(env.clock.now().getTime() + 60_000).toISOString() });
      const current = await server.database.db.selectFrom('comms_outbox').select(['to_sealed', 'data_sealed']).where('id', '=', other.id).executeTakeFirstOrThrow();
      assert.equal(await commsStore.replaceSealed(server.database.db, other.id, current, { to_sealed: rewrapPart(server.keyring, other.id, 'to', current.to_sealed!), data_sealed: current.data_sealed }), true);
    });

    test('a message whose sealed data cannot be opened is marked failed with a code, and the rest of the outbox is still delivered', async () => {
      const lostKey = randomBytes(32);
      const newKey = randomBytes(32);
      const { sink } = env;
      const lost = await env.open(lostKey);
      const subject = await createSubject(lost, 'kept@example.test');
      const address = await lost.comms.enqueue({ topic: 'request_notice', to: { address: 'stranded@example.test' }, template: 'verification_code', data: { code: '111222' }, idempotencyKey: 'stranded-address' });
      const data = await lost.comms.enqueue({ topic: 'order_updates', subjectId: subject, template: 'message', data: { subject: 'Stranded', body: 'sealed under a lost key' }, idempotencyKey: 'stranded-data' });
      await lost.close();
      // What a rotation made before the outbox was part of it: the keyring and the data keys move to the new key, the outbox stays.
      const rotator = await env.open(newKey, [lostKey]);
      await rotator.keyring.rewrapSecrets(rotator.database);
      await rotator.keystore.rotateAll();
      await rotator.close();

      const server = await env.open(newKey);
      const good = await Promise.all(
        ['one', 'two', 'three'].map(async (name) => (await server.comms.enqueue({ topic: 'request_notice', to: { address: `${name}@example.test` }, template: 'message', data: { subject: `For ${name}`, body: 'readable' }, idempotencyKey: name })).id),
      );
      // Mail to a person whose data key cannot be opened (wrapped under a key no one holds) fails too, not the mail to others.
      const orphan = await createSubject(server, 'orphan@example.test');
      await server.keystoreDatabase.db.updateTable('subject_keys').set({ kek_id: '000000000000' }).where('subject_id', '=', orphan).execute();
      const toOrphan = (await server.comms.enqueue({ topic: 'order_updates', subjectId: orphan, template: 'message', data: { subject: 'Lost', body: 'x' }, idempotencyKey: 'orphan' })).id;
      good.push((await server.comms.enqueue({ topic: 'order_updates', subjectId: subject, template: 'message', data: { subject: 'Kept', body: 'readable' }, idempotencyKey: 'kept' })).id);
      // A value moved to another message does not open either (its context names the message).
      const tampered = (await server.comms.enqueue({ topic: 'order_updates', subjectId: subject, template: 'message', data: { subject: 'Moved', body: 'x' }, idempotencyKey: 'moved' })).id;
      const { data_sealed: moved } = await server.database.db.selectFrom('comms_outbox').select('data_sealed').where('id', '=', good[0]!).executeTakeFirstOrThrow();
      await server.database.db.updateTable('comms_outbox').set({ data_sealed: moved }).where('id', '=', tampered).execute();

      const report = await server.comms.deliverBatch();
      assert.equal(report.delivered, 4, JSON.stringify(report));
      assert.equal(report.failed, 4);
      for (const id of good) assert.equal(receivedFor(sink, id).length, 1);
      for (const id of [address.id, data.id, toOrphan]) {
        const message = await server.comms.get(id);
        assert.equal(message.status, 'failed', id);
        assert.equal(message.lastError, 'master_key_missing', id);
        assert.equal(receivedFor(sink, id).length, 0);
      }
      assert.equal((await server.comms.get(tampered)).status, 'failed');
      assert.equal((await server.comms.get(tampered)).lastError, 'data_integrity_failed');
      assert.equal((await server.comms.deliverBatch()).claimed, 0, 'nothing is left claimed or due');
      // Their sealed values are kept: with the lost key back in PLEDGE_PREVIOUS_MASTER_KEYS, rotation and a retry would still send them.
      assert.deepEqual(await sealedUnder(server, address.id), { to: lost.keyring.kekId, data: lost.keyring.kekId });
      // A rotation without that key re-wraps what it can and reports the rest apart: no old key it holds is needed for them.
      await server.keystoreDatabase.db.updateTable('subject_keys').set({ kek_id: server.keyring.kekId }).where('subject_id', '=', orphan).execute();
      const result = await rotateMasterKey(server, { batch: 10 });
      assert.equal(result.outboxUnreadable, 2);
      assert.equal(result.outboxRemaining, 0);
      assert.equal(result.remaining, 0);
    });
  });
}
