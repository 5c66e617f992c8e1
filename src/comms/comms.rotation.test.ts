import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { manualClock, type ManualClock } from '../core/clock.js';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { createEngine, type Engine } from '../engine.js';
import { createTestDatabase, temporaryDirectory, testDialects, type TestDatabase, type TestDialect } from '../../test/support/databases.js';
import { startSmtpSink, type ReceivedMail, type SmtpSink } from '../../test/support/smtp.js';
import { writeMailPolicies } from './comms.test-support.js';

/**
 * The outbox across a change of master key: a message sealed under a key no server holds any
 * more fails on its own without holding up the others.
 */
const SYSTEM = { type: 'system', id: 'test' } as const;

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
    });
  });
}
