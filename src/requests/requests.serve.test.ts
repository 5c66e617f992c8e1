import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startServer, type RunningServer } from '../../test/support/cli.js';
import { createTestDatabase, temporaryDirectory, testDialects, type TestDatabase } from '../../test/support/databases.js';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { createEngine, type Engine } from '../engine.js';
import { loadPolicyFile, requirePolicy } from '../policy/policy.load.js';
import type { Actor } from '../staff/permissions.js';

const officer: Actor = { type: 'staff', id: 'stf_officer', role: 'privacy_officer' };

for (const dialect of testDialects()) {
  describe(`two pledge serve processes on one ${dialect} database`, () => {
    let main: TestDatabase;
    let keys: TestDatabase;
    let directory: { path: string; remove(): void };
    const servers: RunningServer[] = [];
    before(async () => {
      main = await createTestDatabase(dialect);
      keys = await createTestDatabase(dialect);
      directory = temporaryDirectory('pledge-serve-requests-');
    });
    after(async () => {
      await Promise.all(servers.map((server) => server.stop()));
      await main.cleanup();
      await keys.cleanup();
      directory.remove();
    });

    test('share the request tasks: every task runs once, and every request completes', async () => {
      const masterKey = randomBytes(32).toString('hex');
      const env = { PLEDGE_MASTER_KEY: masterKey, PLEDGE_KEYSTORE_URL: keys.url, DATABASE_URL: main.url, PLEDGE_DATA_DIR: directory.path };
      const { config } = loadConfig(env, {});
      const engine: Engine = await createEngine(config, { policy: requirePolicy(loadPolicyFile(path.resolve('examples/demo/pledge.yaml'))), logger: createLogger('silent') });
      const ids: string[] = [];
      try {
        for (let n = 0; n < 12; n++) {
          const email = `person${n}@example.com`;
          await engine.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: email }], data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': `Person ${n}` } } });
          const request = await engine.requests.create(officer, { type: n % 2 === 0 ? 'access' : 'erasure', identities: [{ kind: 'email', value: email }] });
          await engine.requests.overrideVerification(officer, request.id, 'Verified in the shop account');
          await engine.requests.approve(officer, request.id);
          await engine.requests.run(officer, request.id);
          ids.push(request.id);
        }
      } finally {
        await engine.close();
      }
      const cwd = directory.path;
      servers.push(...(await Promise.all([startServer([], { cwd, env }), startServer([], { cwd, env })])));

      const check = await createEngine(config, { policy: requirePolicy(loadPolicyFile(path.resolve('examples/demo/pledge.yaml'))), logger: createLogger('silent') });
      try {
        const deadline = Date.now() + 60_000;
        let views = await Promise.all(ids.map((id) => check.requests.get(id)));
        while (views.some((view) => view.status !== 'completed') && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          views = await Promise.all(ids.map((id) => check.requests.get(id)));
        }
        assert.deepEqual(views.map((view) => view.status), ids.map(() => 'completed'));
        assert.ok(views.every((view) => view.tasks.length === 1 && view.tasks[0]!.attempts === 1), 'no task ran twice');
        const entries = await check.database.db.selectFrom('audit_entries').select(['action', 'target_id']).where('action', 'in', ['request.task_completed', 'request.completed']).execute();
        for (const id of ids) {
          assert.equal(entries.filter((entry) => entry.target_id === id && entry.action === 'request.task_completed').length, 1);
          assert.equal(entries.filter((entry) => entry.target_id === id && entry.action === 'request.completed').length, 1);
        }
        assert.equal((await check.audit.verify()).ok, true);
      } finally {
        await check.close();
      }
    });
  });
}
