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
      try {
        created = [(await server.subjects.create(officer, person())).id];
        const oldKey = readFileSync(keyFile, 'utf8');
        const out: string[] = [];
        const io: CommandIO = { cwd: directory.path, out: (text) => out.push(text), err: (text) => out.push(text) };
        assert.equal(await keysRotateCommand(['--json'], io, open), 0, out.join('\n'));
        assert.equal(JSON.parse(out[0]!).dataKeys, 1);
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
      } finally {
        await restarted.close();
      }
    } finally {
      directory.remove();
    }
  });
});
