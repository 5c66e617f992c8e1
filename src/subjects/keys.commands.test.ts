import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { testDialects } from '../../test/support/databases.js';
import { createTestVault, temporaryDirectory, type TestVault } from '../../test/support/vault.js';
import type { CommandIO } from '../cli/io.js';
import { loadConfig, type Config } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { createEngine } from '../engine.js';
import { loadPolicyFile, requirePolicy } from '../policy/policy.load.js';
import type { Actor } from '../staff/permissions.js';
import { keysRotateCommand, rotateMasterKey } from './keys.commands.js';

const officer: Actor = { type: 'staff', id: 'stf_officer', role: 'privacy_officer' };

let people = 0;
const person = () => ({
  kinds: ['customer'],
  identities: [{ kind: 'email' as const, value: `rotation${people++}@example.com` }],
  data: { purpose: 'order_fulfilment', source: 'person' as const, fields: { 'user.name': 'Jane Doe' } },
});

const nameOf = async (vault: Pick<TestVault, 'subjects'>, id: string) => (await vault.subjects.readData(officer, id, 'order_fulfilment')).fields['user.name']?.value;

/** A CommandIO that keeps what a command writes to stdout and stderr. */
function capturedIO(cwd: string): { out: string[]; err: string[]; io: CommandIO } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { cwd, out: (text) => out.push(text), err: (text) => err.push(text) } };
}

/** Opens an engine on `dataDir` (demo policy) with a master key given outright, and previous ones. */
function engineOpener(dataDir: string): (masterKey: Buffer, previous?: Buffer[]) => ReturnType<typeof createEngine> {
  const policy = requirePolicy(loadPolicyFile(path.resolve('examples/demo/pledge.yaml')));
  return (masterKey, previous = []) =>
    createEngine(
      loadConfig({ PLEDGE_MASTER_KEY: masterKey.toString('hex'), ...(previous.length > 0 ? { PLEDGE_PREVIOUS_MASTER_KEYS: previous.map((key) => key.toString('hex')).join(',') } : {}) }, { dataDir }, dataDir).config,
      { policy, logger: createLogger('silent') },
    );
}

for (const dialect of testDialects()) {
  describe(`master key rotation on ${dialect}, with servers running`, () => {
    test('processes restarted with the new key write what the others still read; rotation meanwhile breaks no read or write; then the new key alone opens everything', async () => {
      const oldKey = randomBytes(32);
      const newKey = randomBytes(32);
      // A server still running with the old key alone: not restarted yet.
      const running = await createTestVault(dialect, { masterKey: oldKey });
      const opened: TestVault[] = [];
      try {
        const ids = (await running.subjects.createMany(officer, Array.from({ length: 30 }, person))).map((subject) => subject.id);
        const restarted = await createTestVault(dialect, { sharing: running, masterKey: newKey, previousMasterKeys: [oldKey] });
        opened.push(restarted);
        const written = await restarted.subjects.create(officer, person());
        ids.push(written.id);
        assert.equal(await nameOf(running, written.id), 'Jane Doe', 'a server not yet restarted reads what a restarted one wrote');

        // Every server restarted; two keep reading and creating while the rotation runs.
        const other = await createTestVault(dialect, { sharing: running, masterKey: newKey, previousMasterKeys: [oldKey] });
        const rotator = await createTestVault(dialect, { sharing: running, masterKey: newKey, previousMasterKeys: [oldKey] });
        opened.push(other, rotator);
        const errors: unknown[] = [];
        let rotating = true;
        let served = 0;
        const serve = async (vault: TestVault) => {
          while (rotating) {
            try {
              ids.push((await vault.subjects.create(officer, person())).id);
              assert.equal(await nameOf(vault, ids[Math.floor(Math.random() * ids.length)]!), 'Jane Doe');
              served++;
            } catch (error) {
              errors.push(error);
            }
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        };
        const servers = [serve(restarted), serve(other)];
        const result = await rotateMasterKey(rotator, { batch: 7 });
        rotating = false;
        await Promise.all(servers);
        assert.deepEqual(errors, []);
        assert.ok(served > 10, `the servers kept serving (${served} rounds)`);
        assert.equal(result.remaining, 0);
        assert.equal(result.secrets, 3);
        assert.ok(result.dataKeys >= 31, `${result.dataKeys} data keys re-wrapped`);
        // A subject created after the rotation ended is under the new key too.
        ids.push((await other.subjects.create(officer, person())).id);

        const fresh = await createTestVault(dialect, { sharing: running, masterKey: newKey });
        opened.push(fresh);
        for (const id of ids) assert.equal(await nameOf(fresh, id), 'Jane Doe', `${id} opens with the new key alone`);
      } finally {
        for (const vault of opened.reverse()) await vault.close();
        await running.close();
      }
    });
  });
}

describe('master key rotation in development (the key in the data directory)', () => {
  test('writes the new key to master.key (mode 600) once everything is re-wrapped; a server running meanwhile and a plain start afterwards both work', async () => {
    const directory = temporaryDirectory('pledge-dev-rotate-');
    const policy = requirePolicy(loadPolicyFile(path.resolve('examples/demo/pledge.yaml')));
    const open = (flags: { dataDir?: string } = {}, adjust: (config: Config) => Config = (config) => config) =>
      createEngine(adjust(loadConfig({}, { dataDir: directory.path, ...flags }, directory.path).config), { policy, logger: createLogger('silent') });
    const keyFile = path.join(directory.path, 'master.key');
    try {
      const server = await open();
      let created: string[];
      let queued: string;
      try {
        created = [(await server.subjects.create(officer, person())).id];
        // Mail waiting to go out: its address and data are sealed under the key being replaced.
        queued = (await server.comms.enqueue({ topic: 'request_notice', to: { address: 'waiting@example.com' }, template: 'verification_code', data: { code: '737373' }, idempotencyKey: 'waiting' })).id;
        const oldKey = readFileSync(keyFile, 'utf8');
        const out: string[] = [];
        const io: CommandIO = { cwd: directory.path, out: (text) => out.push(text), err: (text) => out.push(text) };
        assert.equal(await keysRotateCommand(['--json'], io, open), 0, out.join('\n'));
        const result = JSON.parse(out[0]!);
        assert.equal(result.dataKeys, 1);
        assert.equal(result.outboxMessages, 1);
        assert.equal(result.remaining, 0);
        assert.equal(result.outboxRemaining, 0);
        assert.equal(result.outboxUnreadable, 0);
        assert.notEqual(readFileSync(keyFile, 'utf8'), oldKey, 'master.key holds the new key');
        assert.equal(statSync(keyFile).mode & 0o777, 0o600);
        assert.ok(!existsSync(path.join(directory.path, 'master.key.next')), 'the next key was moved into place');

        // The server started with the old key reads what was re-wrapped, and wraps under the new key.
        assert.equal(await nameOf(server, created[0]!), 'Jane Doe');
        created.push((await server.subjects.create(officer, person())).id);
      } finally {
        await server.close();
      }
      const restarted = await open();
      try {
        for (const id of created) assert.equal(await nameOf(restarted, id), 'Jane Doe');
        assert.equal(await restarted.keystore.countToRotate(), 0, 'nothing is left under the old key');
        assert.deepEqual(await restarted.comms.countSealedToRewrap(), { remaining: 0, unreadable: 0 });
        assert.equal((await restarted.comms.deliverBatch()).delivered, 1, 'the queued mail opens with the new key alone');
        const eml = readFileSync(restarted.comms.emlPath(queued), 'utf8');
        assert.match(eml, /^To: waiting@example\.com$/m);
        assert.ok(eml.includes('737373'));
      } finally {
        await restarted.close();
      }
    } finally {
      directory.remove();
    }
  });
});

const notice = (name: string) => ({ topic: 'request_notice', to: { address: `${name}@example.com` }, template: 'message', data: { subject: name, body: name }, idempotencyKey: name });

/**
 * Mail 'stranded' sealed under `gone`; then the keyring moved to `old` before mail was part of a
 * rotation, and `gone` was dropped. Returns the engine on `old` (the caller closes it).
 */
async function strandMailUnderGoneKey(open: ReturnType<typeof engineOpener>, gone: Buffer, old: Buffer): Promise<Awaited<ReturnType<typeof createEngine>>> {
  const first = await open(gone);
  await first.comms.enqueue(notice('stranded'));
  await first.close();
  const second = await open(old, [gone]);
  await second.keyring.rewrapSecrets(second.database);
  return second;
}

describe('what pledge keys rotate says about the outbox', () => {
  test('mail still under the old key keeps it needed (exit 1); mail under a key already gone is a warning of its own', async () => {
    const directory = temporaryDirectory('pledge-rotate-outbox-');
    const [gone, old, next] = [randomBytes(32), randomBytes(32), randomBytes(32)];
    const open = engineOpener(directory.path);
    try {
      const second = await strandMailUnderGoneKey(open, gone, old);
      await second.comms.enqueue(notice('movable'));
      const altered = await second.comms.enqueue(notice('altered'));
      const { data_sealed: moved } = await second.database.db.selectFrom('comms_outbox').select('data_sealed').where('idempotency_key', 'like', '%:movable').executeTakeFirstOrThrow();
      // Its data replaced by another message's: it opens under no key, and counts as needing the old one.
      await second.database.db.updateTable('comms_outbox').set({ data_sealed: moved }).where('id', '=', altered.id).execute();
      await second.close();

      const { out, err, io } = capturedIO(directory.path);
      const code = await keysRotateCommand([], io, () => open(next, [old]));
      assert.equal(code, 1, [...out, ...err].join('\n'));
      assert.match(out[0]!, /^re-wrapped 0 data key\(s\), 1 outbox message\(s\) and 3 keyring secret\(s\) under key [0-9a-f]{12} in \d+\.\d s$/);
      assert.match(err.join('\n'), /^1 outbox message\(s\) are sealed under a master key that is neither PLEDGE_MASTER_KEY nor one of PLEDGE_PREVIOUS_MASTER_KEYS/m);
      assert.match(err.join('\n'), /^0 data key\(s\) and 1 outbox message\(s\) are still under another master key: .* Keep the old key until it reports none left/m);
    } finally {
      directory.remove();
    }
  });

  test('mail sealed under a key no process holds is reported with exit 1 even when nothing else is left, and the old key is no longer needed', async () => {
    const directory = temporaryDirectory('pledge-rotate-stranded-');
    const [gone, old, next] = [randomBytes(32), randomBytes(32), randomBytes(32)];
    const open = engineOpener(directory.path);
    try {
      await (await strandMailUnderGoneKey(open, gone, old)).close();

      const { out, err, io } = capturedIO(directory.path);
      const code = await keysRotateCommand([], io, () => open(next, [old]));
      assert.equal(code, 1, [...out, ...err].join('\n'));
      assert.match(out[0]!, /^re-wrapped 0 data key\(s\), 0 outbox message\(s\) and 3 keyring secret\(s\) under key [0-9a-f]{12} in \d+\.\d s$/);
      assert.equal(out[1], 'every process may now be restarted without PLEDGE_PREVIOUS_MASTER_KEYS');
      assert.match(err.join('\n'), /^1 outbox message\(s\) are sealed under a master key that is neither PLEDGE_MASTER_KEY nor one of PLEDGE_PREVIOUS_MASTER_KEYS/m);
      assert.doesNotMatch(err.join('\n'), /still under another master key/);
    } finally {
      directory.remove();
    }
  });
});

describe('data keys pledge keys rotate cannot open', () => {
  test('are left as they are and named, the rest is re-wrapped; the run ends with exit 1 and the old key file stays', async () => {
    const directory = temporaryDirectory('pledge-rotate-unopened-');
    const [gone, old, next] = [randomBytes(32), randomBytes(32), randomBytes(32)];
    const open = engineOpener(directory.path);
    try {
      // A subject whose key is under a master key that was dropped before keys were rotated.
      const first = await open(gone);
      const stranded = (await first.subjects.create(officer, person())).id;
      await first.close();
      const second = await open(old, [gone]);
      await second.keyring.rewrapSecrets(second.database);
      const ids = (await second.subjects.createMany(officer, Array.from({ length: 6 }, person))).map((subject) => subject.id);
      // One key's stored row altered: it fails its integrity check under any key.
      const damaged = ids[2]!;
      const { wrapped } = await second.keystoreDatabase.db.selectFrom('subject_keys').select('wrapped').where('subject_id', '=', damaged).executeTakeFirstOrThrow();
      const flipped = `${wrapped.slice(0, 20)}${wrapped[20] === 'A' ? 'B' : 'A'}${wrapped.slice(21)}`;
      await second.keystoreDatabase.db.updateTable('subject_keys').set({ wrapped: flipped }).where('subject_id', '=', damaged).execute();
      await second.close();

      const { out, err, io } = capturedIO(directory.path);
      const code = await keysRotateCommand(['--json', '--batch', '2'], io, () => open(next, [old]));
      assert.equal(code, 1, [...out, ...err].join('\n'));
      const result = JSON.parse(out[0]!);
      assert.equal(result.dataKeys, 5, 'every key it could open was re-wrapped, after and before the ones it could not');
      assert.equal(result.remaining, 0);
      assert.equal(result.dataKeysUnreadable, 1);
      assert.equal(result.dataKeysDamaged, 1);
      assert.deepEqual(result.unopenedSubjects, { unreadable: [stranded], damaged: [damaged] });
      const said = err.join('\n');
      assert.match(said, new RegExp(`^1 data key\\(s\\) are wrapped by a master key that is neither PLEDGE_MASTER_KEY nor one of PLEDGE_PREVIOUS_MASTER_KEYS .*\\(${stranded}\\)`, 'm'));
      assert.match(said, new RegExp(`^1 data key\\(s\\) fail their integrity check .*\\(${damaged}\\)\\. Keep the old master key`, 'm'));

      const fresh = await open(next);
      try {
        for (const id of ids.filter((id) => id !== damaged)) assert.equal(await nameOf(fresh, id), 'Jane Doe', `${id} opens with the new key alone`);
        assert.equal(await fresh.keystore.countToRotate(), 2, 'the two keys it could not open are as they were');
        const entries = await fresh.database.db.selectFrom('audit_entries').select('details').where('action', '=', 'keys.rotated').execute();
        const details = JSON.parse(String(entries.at(-1)!.details));
        assert.equal(details.dataKeysDamaged, 1);
        assert.equal(details.unopenedSubjects, undefined, 'the audit entry counts, it does not list subjects');
      } finally {
        await fresh.close();
      }
    } finally {
      directory.remove();
    }
  });
});
