import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTestDatabase, temporaryDirectory, testDialects, type TestDatabase } from '../../test/support/databases.js';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { createEngine, type Engine } from '../engine.js';
import { loadPolicyFile, requirePolicy } from '../policy/policy.load.js';
import type { Actor } from '../staff/permissions.js';
import { createShopDatabase, readShop, RecordingNotifier, ShopHandler } from './requests.test-support.js';

const WORKER = path.resolve('dist/src/requests/requests.test-worker.js');
const officer: Actor = { type: 'staff', id: 'stf_officer', role: 'privacy_officer' };

/** Starts the worker; resolves with its output once `line` is printed, or rejects when it exits first. */
function startWorker(settings: Record<string, unknown>, line: string) {
  const child = spawn(process.execPath, [WORKER, JSON.stringify(settings)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const reached = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not print ${line} in 30 s\n${stdout}\n${stderr}`)), 30_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.split('\n').includes(line)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    exited.then(() => {
      clearTimeout(timer);
      if (!stdout.split('\n').includes(line)) reject(new Error(`worker exited before printing ${line}\n${stdout}\n${stderr}`));
    });
  });
  return { child, reached, exited };
}

for (const dialect of testDialects()) {
  describe(`request execution survives kill -9 on ${dialect}`, () => {
    let main: TestDatabase;
    let keys: TestDatabase;
    let directory: { path: string; remove(): void };
    const masterKey = randomBytes(32).toString('hex');

    before(async () => {
      main = await createTestDatabase(dialect);
      keys = await createTestDatabase(dialect);
      directory = temporaryDirectory('pledge-crash-');
    });
    after(async () => {
      await main.cleanup();
      await keys.cleanup();
      directory.remove();
    });

    test('an erasure killed in the middle completes after a restart without redoing the finished datastore', async () => {
      const shopFile = path.join(directory.path, 'shop.db');
      createShopDatabase(shopFile, [{ email: 'jane.doe@example.com', name: 'Jane Doe', phone: '+12075550199', invoices: [{ amount: 4200, card: '4242' }] }]);
      const { config } = loadConfig({ PLEDGE_MASTER_KEY: masterKey, PLEDGE_KEYSTORE_URL: keys.url }, { dataDir: directory.path, databaseUrl: main.url });
      const open = () =>
        createEngine(config, {
          policy: requirePolicy(loadPolicyFile(path.resolve('examples/demo/pledge.yaml'))),
          logger: createLogger('silent'),
          requestNotifier: new RecordingNotifier(),
          requestSystems: (systems) => systems.register(new ShopHandler(shopFile)),
        });
      let engine: Engine = await open();
      let requestId: string;
      let subjectId: string;
      try {
        subjectId = (await engine.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: 'jane.doe@example.com' }], data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': 'Jane Doe' } } })).id;
        const request = await engine.requests.create(officer, { type: 'erasure', identities: [{ kind: 'email', value: 'jane.doe@example.com' }] });
        requestId = request.id;
        await engine.requests.overrideVerification(officer, requestId, 'Confirmed by phone call-back');
        await engine.requests.approve(officer, requestId);
        await engine.requests.run(officer, requestId);
      } finally {
        await engine.close();
      }

      const settings = { dataDir: directory.path, databaseUrl: main.url, keystoreUrl: keys.url, masterKey, shopFile, requestId, leaseMs: 1500 };
      const crashing = startWorker({ ...settings, mode: 'crash' }, 'erasing');
      await crashing.reached;
      crashing.child.kill('SIGKILL');
      assert.equal((await crashing.exited).signal, 'SIGKILL');

      engine = await open();
      try {
        const midway = await engine.requests.get(requestId);
        assert.equal(midway.status, 'in_progress');
        assert.deepEqual(midway.tasks.map((task) => [task.datastore, task.state, task.attempts]), [['vault', 'done', 1], ['shop', 'pending', 1]]);
        assert.equal((await engine.subjects.get(subjectId)).status, 'erased');
        // The shop's transaction died with the process: nothing half-done remains.
        const shopMidway = readShop(shopFile);
        assert.equal(shopMidway.customers.length, 1);
        assert.notEqual(shopMidway.invoices[0]!.customer_id, null);
      } finally {
        await engine.close();
      }

      const resuming = startWorker({ ...settings, mode: 'resume' }, 'completed');
      await resuming.reached;
      assert.equal((await resuming.exited).code, 0);

      engine = await open();
      try {
        const done = await engine.requests.get(requestId);
        assert.equal(done.status, 'completed');
        assert.deepEqual(done.tasks.map((task) => [task.datastore, task.state, task.attempts]), [['vault', 'done', 1], ['shop', 'done', 2]]);
        const shop = readShop(shopFile);
        assert.equal(shop.customers.length, 0);
        assert.equal(shop.invoices[0]!.customer_id, null);
        assert.equal(shop.invoices[0]!.card_last4, '4242');
        const entries = await engine.database.db.selectFrom('audit_entries').select(['action', 'target_id']).execute();
        assert.equal(entries.filter((entry) => entry.action === 'subject.erased' && entry.target_id === subjectId).length, 1, 'the vault was erased once');
        assert.equal(entries.filter((entry) => entry.action === 'request.task_completed' && entry.target_id === requestId).length, 2);
        assert.equal(entries.filter((entry) => entry.action === 'request.completed' && entry.target_id === requestId).length, 1);
        const verification = await engine.audit.verify();
        assert.equal(verification.ok, true);
      } finally {
        await engine.close();
      }
    });
  });
}
